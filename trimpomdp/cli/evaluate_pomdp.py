"""`trimpomdp evaluate-pomdp FILE POLICY`: simulated mean discounted return with a 95 % CI."""
from __future__ import annotations

import argparse
import json

from trimpomdp.errors import InputError
from trimpomdp.policies.alpha_vector import AlphaVectorPolicy
from trimpomdp.pomdp.cassandra import read_pomdp
from trimpomdp.solvers.evaluate import evaluate_policy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="model file: Cassandra .pomdp / .pomdp.gz or POMDPX .pomdpx")
    p.add_argument("policy", help="policy file written by `trimpomdp solve-pomdp --out`")
    p.add_argument("--runs", type=int, default=1000, help="simulated runs (default: %(default)s)")
    p.add_argument("--horizon", type=int, default=None,
                   help="steps per run (default: until γ^H·max|R|/(1−γ) < 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed >= 0 (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    if args.runs < 2:
        raise InputError(f"--runs must be an integer >= 2. Got {args.runs} instead.",
                         field="runs")
    if args.horizon is not None and args.horizon < 1:
        raise InputError(f"--horizon must be a positive integer. Got {args.horizon} instead.",
                         field="horizon")
    if args.seed < 0:
        raise InputError(f"--seed must be an integer >= 0. Got {args.seed} instead.",
                         field="seed")
    pomdp = read_pomdp(args.file)
    policy = AlphaVectorPolicy.load(args.policy, pomdp=pomdp)
    res = evaluate_policy(pomdp, policy, runs=args.runs, horizon=args.horizon, seed=args.seed)
    print(json.dumps(res.as_dict()))
    return 0
