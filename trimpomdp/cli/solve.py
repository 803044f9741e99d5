"""`trimpomdp solve`: solve the TRIM POMDP for one λ (or a strong-token budget) → policy file."""
from __future__ import annotations

import argparse
import json
import sys
import time

from trimpomdp._validate import check_number, check_output_path
from trimpomdp.model import load_model
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.tuning import search_budget

#: λ beyond this is "never regenerate" many times over (R = 100 per answer); larger values only
#: overflow the value functions
LAMBDA_MAX = 1e6


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--lambda", dest="lam", type=float,
                   help=f"cost per strong token, reward units (R = 100), in [0, {LAMBDA_MAX:g}]")
    g.add_argument("--budget", type=float, help="target strong-token share of strong-only "
                   "(0..1); λ is picked by simulating the loaded model")
    p.add_argument("--model", default=None, help="TRIM model JSON (default: the bundled model)")
    p.add_argument("--out", required=True, help="output policy file (JSON)")
    p.add_argument("--tol", type=float, default=1e-5,
                   help="pruning tolerance × reward, in (0, 1] (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--search", choices=["fast", "bisect"], default="fast", help="with --budget: "
                   "the λ search (fast: cached simulated problems, coarse bracketing solves; "
                   "bisect: the former search, for benchmarks/budget_speed.py)")


def run(args: argparse.Namespace) -> int:
    tol = check_number(args.tol, "--tol", lo=0.0, lo_open=True, hi=1.0, field="tol")
    check_output_path(args.out, suffixes=(".json",))
    model = load_model(args.model)
    out: dict[str, object] = {"out": args.out}
    if args.budget is not None:
        b = check_number(args.budget, "--budget", lo=0.0, hi=1.0, field="budget")
        say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
        res = search_budget(model, b, progress=say, method=args.search)
        lam = res.lam
        out.update(budget=b, simulated_share=round(res.share, 4), simulator=res.simulator,
                   search_seconds=round(res.seconds, 3),
                   search_cpu_seconds=round(res.cpu_seconds, 3), search_evaluations=res.evaluations,
                   search_fine_solves=res.fine_solves, simulated_problems=res.scenario_source)
    else:
        lam = check_number(args.lam, "--lambda", lo=0.0, hi=LAMBDA_MAX, field="lambda")
    c0 = time.process_time()
    policy, info = FiniteHorizonSolver(tol=tol).solve_info(TrimPOMDP(model=model, lam=lam))
    solve_cpu = time.process_time() - c0
    policy.save(args.out)
    v0 = policy.value(0, model.future_tokens, [1, 0, 0])
    out.update({"lambda": lam, "seconds": round(info.seconds, 4),
                "solve_cpu_seconds": round(solve_cpu, 4),
                "alpha_vectors": info.n_alpha, "value_t0": v0})
    print(json.dumps(out))
    return 0
