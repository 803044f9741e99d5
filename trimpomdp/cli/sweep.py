"""`trimpomdp sweep`: one policy per λ (or the λ for a strong-token budget) into a folder."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trimpomdp._validate import check_number
from trimpomdp.cli._common import parse_lambdas
from trimpomdp.cli.solve import LAMBDA_MAX
from trimpomdp.errors import InputError
from trimpomdp.model import load_model
from trimpomdp.policies.policy_set import solve_sweep
from trimpomdp.tuning import search_budget


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--lambdas", help="'start:stop:count' (e.g. 0.05:0.85:50) or 'a,b,c'")
    g.add_argument("--budget", type=float, help="strong-token share of strong-only (0..1): "
                   "solve only the λ whose simulated share meets it")
    p.add_argument("--model", default=None, help="TRIM model JSON (default: bundled model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tol", type=float, default=1e-5,
                   help="pruning tolerance × reward, in (0, 1] (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table on stderr")


def _check_folder(out: str) -> None:
    p = Path(out)
    if not out.strip():
        raise InputError(f"--out must be a folder path. Got {out!r} instead.", field="out")
    if p.exists() and not p.is_dir():
        raise InputError("--out must be a folder. Got an existing file instead.", path=out,
                         field="out")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError("--out lies under a regular file.", path=out, field="out")
            break


def run(args: argparse.Namespace) -> int:
    """Solve every λ, write the folder, print the table (stderr) and one JSON line (stdout)."""
    tol = check_number(args.tol, "--tol", lo=0.0, lo_open=True, hi=1.0, field="tol")
    _check_folder(args.out)
    model = load_model(args.model)
    info: dict[str, object] = {}
    if args.budget is not None:
        b = check_number(args.budget, "--budget", lo=0.0, hi=1.0, field="budget")
        say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
        res = search_budget(model, b, progress=say)
        lams = [res.lam]
        info = {"budget": b, "simulated_share": round(res.share, 4), "simulator": res.simulator}
    else:
        lams = parse_lambdas(args.lambdas)
        if max(lams) > LAMBDA_MAX:
            raise InputError(f"--lambdas must be in [0, {LAMBDA_MAX:g}]. Got {max(lams):g} "
                             "instead.", field="lambdas")
    pset = solve_sweep(model, lams, tol=tol, progress=not args.quiet)
    pset.save(args.out)
    if not args.quiet:
        cols = list(pset.summary[0])
        print(" | ".join(cols), file=sys.stderr)
        for row in pset.summary:
            print(" | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
                             for c in cols), file=sys.stderr)
    total = sum(float(r["seconds"]) for r in pset.summary)
    print(json.dumps({"out": args.out, "n_lambdas": len(lams), "solve_seconds": round(total, 3),
                      **info}))
    return 0
