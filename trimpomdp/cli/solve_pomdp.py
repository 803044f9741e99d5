"""`trimpomdp solve-pomdp FILE.pomdp`: solve a Cassandra POMDP, save the alpha-vector policy."""
from __future__ import annotations

import argparse
import json
import sys

SOLVERS = ("sarsop", "pbvi", "perseus", "qmdp", "fib")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="Cassandra .pomdp (or .pomdp.gz) file")
    p.add_argument("--solver", choices=SOLVERS, default="sarsop")
    p.add_argument("--precision", type=float, default=1e-3, help="target gap at b0 (sarsop)")
    p.add_argument("--timeout", type=float, default=60.0, help="CPU seconds")
    p.add_argument("--out", help="write the policy here (versioned JSON)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _progress(secs: float, lower: float, upper: float, n_alpha: int) -> None:
    print(f"[solve-pomdp] {secs:7.1f} s  lower {lower:.6g}  upper {upper:.6g}  "
          f"alphas {n_alpha}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from trimpomdp.pomdp.cassandra import read_cassandra
    from trimpomdp.solvers.bounds import FIBSolver, QMDPSolver
    from trimpomdp.solvers.point_based import PointBasedSolver
    from trimpomdp.solvers.sarsop import SARSOPSolver

    pomdp = read_cassandra(args.file)
    if args.solver == "sarsop":
        solver = SARSOPSolver(precision=args.precision, timeout=args.timeout,
                              progress=None if args.quiet else _progress)
    elif args.solver in ("pbvi", "perseus"):
        solver = PointBasedSolver(method=args.solver, timeout=args.timeout)
    else:
        solver = (QMDPSolver if args.solver == "qmdp" else FIBSolver)(max_seconds=args.timeout)
    policy, info = solver.solve_info(pomdp)
    if args.out:
        policy.save(args.out)
    print(json.dumps({"lower": float(info.lower), "upper": float(info.upper),
                      "seconds": round(float(info.seconds), 4), "alphas": int(info.n_alpha)}))
    return 0
