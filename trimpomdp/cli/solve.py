"""`trimpomdp solve`: solve the TRIM POMDP for one λ (or a strong-token budget) → policy file."""
from __future__ import annotations

import argparse
import json

from trimpomdp.model import load_model
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.tuning import lambda_for_budget


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--lambda", dest="lam", type=float, help="cost per strong token (R = 100)")
    g.add_argument("--budget", type=float, help="target strong-token share of strong-only "
                   "(0..1); λ is picked by simulation")
    p.add_argument("--model", default=None, help="TRIM model JSON (default: bundled model)")
    p.add_argument("--out", required=True, help="output policy file (JSON)")
    p.add_argument("--tol", type=float, default=1e-5, help="pruning tolerance (× reward)")


def run(args: argparse.Namespace) -> int:

    model = load_model(args.model)
    lam = args.lam
    if args.budget is not None:

        lam = lambda_for_budget(model, args.budget)
    policy, info = FiniteHorizonSolver(tol=args.tol).solve_info(TrimPOMDP(model=model, lam=lam))
    policy.save(args.out)
    v0 = policy.value(0, model.future_tokens, [1, 0, 0])
    print(json.dumps({"out": args.out, "lambda": lam, "seconds": round(info.seconds, 4),
                      "alpha_vectors": info.n_alpha, "value_t0": v0}))
    return 0
