"""`trimpomdp sweep`: one policy per λ (or the λ for a strong-token budget) into a folder."""
from __future__ import annotations

import argparse
import json

from trimpomdp.cli._common import parse_lambdas
from trimpomdp.model import load_model
from trimpomdp.policies.policy_set import solve_sweep
from trimpomdp.tuning import lambda_for_budget


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--lambdas", help="'start:stop:count' (e.g. 0.05:0.85:50) or 'a,b,c'")
    g.add_argument("--budget", type=float, help="strong-token share of strong-only (0..1): "
                   "solve only the λ whose simulated share meets it")
    p.add_argument("--model", default=None, help="TRIM model JSON (default: bundled model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:

    model = load_model(args.model)
    if args.budget is not None:

        lams = [lambda_for_budget(model, args.budget)]
    else:
        lams = parse_lambdas(args.lambdas)
    pset = solve_sweep(model, lams, tol=args.tol, progress=not args.quiet)
    pset.save(args.out)
    cols = list(pset.summary[0])
    print(" | ".join(cols))
    for row in pset.summary:
        print(" | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
                         for c in cols))
    total = sum(r["seconds"] for r in pset.summary)
    print(json.dumps({"out": args.out, "n_lambdas": len(lams), "solve_seconds": round(total, 3)}))
    return 0
