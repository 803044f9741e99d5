"""`trimpomdp evaluate-pomdp FILE.pomdp POLICY`: simulated mean discounted return with a 95 % CI."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="Cassandra .pomdp (or .pomdp.gz) file")
    p.add_argument("policy", help="policy file written by `trimpomdp solve-pomdp --out`")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--horizon", type=int, default=None,
                   help="steps per run (default: until γ^H·max|R|/(1−γ) < 1e-3)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from trimpomdp.policies.alpha_vector import AlphaVectorPolicy
    from trimpomdp.pomdp.cassandra import read_cassandra
    from trimpomdp.solvers.evaluate import evaluate_policy

    pomdp = read_cassandra(args.file)
    policy = AlphaVectorPolicy.load(args.policy, pomdp=pomdp)
    res = evaluate_policy(pomdp, policy, runs=args.runs, horizon=args.horizon, seed=args.seed)
    print(json.dumps(res.as_dict()))
    return 0
