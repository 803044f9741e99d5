"""Notebook studies: policies run in the simulator, learned checkpoints, release curves."""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trimpomdp.data.trim_release import read_release_results
from trimpomdp.evaluation.curves import family, point_from_run, references_from_runs, spec_param
from trimpomdp.evaluation.metrics import CurvePoint
from trimpomdp.evaluation.tracking import RULES
from trimpomdp.resources import resource_path
from trimpomdp.routing.spec import make_router, pomdp_router
from trimpomdp.sim import load_simulator, simulate

if TYPE_CHECKING:
    from trimpomdp.model import TrimModel


def simulate_policies(policies: Sequence[Any], specs: Sequence[str], *, n: int = 1000,
                      seed: int = 0, simulator: Any = None, model: TrimModel | None = None,
                      rules: Sequence[str] = RULES) -> tuple[dict[str, list[Any]], Any,
                                                             list[dict[str, Any]]]:
    """Cost–accuracy points of solved TRIM policies (each under every belief ``rule``) and of
    other policy ``specs`` (``make_router`` strings), all on one simulated scenario.

    Returns (curves by family, References from weak/strong/oracle, one summary row per run).
    """

    sim = simulator if simulator is not None else load_simulator()
    sc = sim.scenario(n, seed)
    runs = {s: simulate(make_router(s, model, record=False), sc) for s in
            ("weak", "strong", "oracle")}
    ref = references_from_runs(runs["weak"], runs["strong"], runs["oracle"])
    so = runs["strong"].mean_strong_tokens
    curves: dict[str, list[Any]] = {}
    rows = []
    names = {"filter": "TRIM-POMDP (Bayes filter)", "release": "TRIM-POMDP (release rule)"}
    for pol in policies:
        for rule in rules:
            t0 = time.perf_counter()
            res = simulate(pomdp_router(pol, belief=rule, record=False), sc)
            curves.setdefault(names[rule], []).append(point_from_run(res, pol.lam, names[rule]))
            rows.append({"family": names[rule], "param": pol.lam, **res.summary(so),
                         "seconds": time.perf_counter() - t0})
    for s in specs:
        t0 = time.perf_counter()
        res = simulate(make_router(s, model, record=False, seed=seed), sc)
        fam = family(s)
        curves.setdefault(fam, []).append(point_from_run(res, spec_param(s), fam))
        rows.append({"family": fam, "param": spec_param(s), **res.summary(so),
                     "seconds": time.perf_counter() - t0})
    for s in ("weak", "strong", "oracle"):
        rows.append({"family": s, "param": None, **runs[s].summary(so), "seconds": None})
    return curves, ref, rows


def learned_checkpoints(root: str | os.PathLike[str] = ".",
                        dirs: Sequence[str] = ("models/learned", "benchmarks/results/ckpt"), *,
                        tracked_only: bool = True) -> list[Any]:
    """TRIM-Agg / TRIM-Seq checkpoint files (``agg_*.json``, ``seq_*.json``) under ``root/dirs``.

    ``tracked_only`` keeps only files git tracks, so a notebook's committed output matches what a
    fresh checkout (CI) can reproduce; outside a git checkout every file present is used.
    """
    base = Path(root).resolve()
    files = sorted(p.resolve() for d in dirs if (base / d).is_dir()
                   for p in (base / d).glob("*.json") if p.name.startswith(("agg_", "seq_")))
    if not tracked_only or not files:
        return files
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", *dirs], cwd=base, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return files
    tracked = {(base / f).resolve() for f in out.split("\0") if f}
    return [p for p in files if p in tracked]


def release_measured_curves() -> dict[str, list[Any]]:
    """The release's measured MATH-500 points (TRIM-Thr, TRIM-POMDP; Qwen2.5-1.5B -> 7B)."""

    out: dict[str, list[Any]] = {}
    for name, file, key in (("release TRIM-Thr", "thr_results_math500_summary.jsonl",
                             "threshold"),
                            ("release TRIM-POMDP", "pomdp_results_math500_summary.jsonl",
                             "cost_per_token")):
        rows = read_release_results(resource_path("data", f"trim_release/{file}"))
        out[name] = [CurvePoint(policy=name, accuracy=float(r["accuracy"]),
                                strong_tokens=float(r["avg_target_tokens_per_question"]),
                                param=float(r[key])) for r in rows]
    return out


__all__ = ["learned_checkpoints", "release_measured_curves", "simulate_policies"]
