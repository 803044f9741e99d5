"""`trimpomdp solve-pomdp FILE`: solve a Cassandra or POMDPX model, save the alpha-vector policy."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from trimpomdp.errors import InputError
from trimpomdp.pomdp.cassandra import read_pomdp
from trimpomdp.solvers import REGISTRY, make_solver

SOLVERS = tuple(REGISTRY)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="model file: Cassandra .pomdp / .pomdp.gz or POMDPX .pomdpx")
    p.add_argument("--solver", choices=SOLVERS, default="sarsop",
                   help="pomdpsol runs SARSOP's C++ binary ($POMDPSOL or PATH) "
                        "(default: %(default)s)")
    p.add_argument("--precision", type=float, default=1e-3,
                   help="target gap at b0 (sarsop, pomdpsol) (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="CPU seconds (default: %(default)s)")
    p.add_argument("--out", help="write the policy here (versioned JSON)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _progress(secs: float, lower: float, upper: float, n_alpha: int) -> None:
    print(f"[solve-pomdp] {secs:7.1f} s  lower {lower:.6g}  upper {upper:.6g}  "
          f"alphas {n_alpha}", file=sys.stderr, flush=True)


def check_number(value: float, option: str, *, strict: bool) -> float:
    """``value`` if finite and > 0 (``strict``) or >= 0, else an InputError naming the option."""
    if not math.isfinite(value) or value < 0 or (strict and value == 0):
        rng = "> 0" if strict else ">= 0"
        raise InputError(f"{option} must be a finite number {rng}. Got {value!r} instead.",
                         field=option.lstrip("-"))
    return value


def check_out_path(out: str | None) -> None:
    """Refuse an output path that cannot be written, before any long work."""
    if out is None:
        return
    p = Path(out)
    if p.is_dir():
        raise InputError("--out must be a file path. Got a directory instead.", path=p,
                         field="out")
    if not p.parent.is_dir():
        raise InputError("--out must be in an existing folder. Got a parent that is not a "
                         "folder instead.", path=p, field="out")


def run(args: argparse.Namespace) -> int:
    timeout = check_number(args.timeout, "--timeout", strict=True)
    precision = check_number(args.precision, "--precision", strict=False)
    check_out_path(args.out)
    pomdp = read_pomdp(args.file)
    solver = make_solver(args.solver, timeout=timeout, precision=precision,
                         progress=None if args.quiet else _progress)
    policy, info = solver.solve_info(pomdp)
    if args.out:
        policy.save(args.out)
    print(json.dumps({"solver": args.solver, "lower": float(info.lower),
                      "upper": float(info.upper), "seconds": round(float(info.seconds), 4),
                      "alphas": int(info.n_alpha), "backups": int(info.backups)}))
    return 0
