"""Per-decision overhead of StepRouter.decide: p50/p99 µs per call, per policy and belief mode.

    python benchmarks/controller_overhead.py [--decisions 30000]

Scores/tokens come from the calibrated simulator (threshold-0.5 trajectories), so the belief
visits realistic regions. Goal: ≤ 20 µs p50 for the POMDP policy with the Bayes filter.
Writes ``benchmarks/results/controller_overhead.{md,json}``.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from trimpomdp import load_model
from trimpomdp._io import write_json
from trimpomdp.routing.spec import make_router, pomdp_router
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.sim import load_simulator
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

OUT = Path(__file__).resolve().parent / "results"


def streams(n_problems: int) -> list[list[tuple[float, int]]]:
    sc = load_simulator().scenario(n_problems, 7)
    out = []
    for i in range(sc.n):
        ok, steps = True, []
        for t in range(int(sc.L[i])):
            wok = sc.u_w[i, t] < sc.p_w[i]
            s = (sc.sc_ok[i, t] if wok else sc.sc_err[i, t]) if ok else sc.sc_post[i, t]
            steps.append((float(s), int(sc.n_w[i, t])))
            ok = ok and wok
        out.append(steps)
    return out


def measure(router, data, budget: int) -> np.ndarray:
    times, done = [], 0
    pc = time.perf_counter_ns
    while done < budget:
        for steps in data:
            router.reset()
            last = len(steps) - 1
            for t, (s, n) in enumerate(steps):
                t0 = pc()
                router.decide(s, n, t, t == last)
                times.append(pc() - t0)
            done += len(steps)
            if done >= budget:
                break
    return np.asarray(times) / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=30000)
    args = ap.parse_args()
    model = load_model()
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=model, lam=0.25))
    data = streams(2000)
    cases = {
        "TRIM-Thr (k=0.5)": make_router("thr:0.5"),
        "TRIM-POMDP, Bayes filter, binned density": pomdp_router(pol, belief="filter",
                                                                 density="binned"),
        "TRIM-POMDP, Bayes filter, continuous density": pomdp_router(pol, belief="filter"),
        "TRIM-POMDP, release rule (single obs + gate), continuous": pomdp_router(
            pol, belief="release"),
        "TRIM-POMDP, Bayes filter, binned, record=False": pomdp_router(
            pol, belief="filter", density="binned", record=False),
    }
    try:
        from trimpomdp.routing.router import StepRouter
        from trimpomdp.routing.learned import AggRule
        from trimpomdp.training.ppo import PPOConfig, _build_net, _export

        cfg = PPOConfig(lam=0.25)
        cases["TRIM-Agg (numpy MLP 5-64-64-2)"] = StepRouter(AggRule(_export(
            _build_net("agg", cfg), "agg", cfg, {})))
    except ImportError:
        pass
    rows = []
    for name, router in cases.items():
        measure(router, data[:50], 2000)  # warm-up
        us = measure(router, data, args.decisions)
        rows.append({"case": name, "decisions": int(us.size), "p50_us": float(np.median(us)),
                     "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean())})
    lines = ["# StepRouter.decide overhead", "",
             (f"{platform.python_implementation()} {platform.python_version()}, "
              f"{platform.machine()}; {args.decisions} decisions per case; λ = 0.25."), "",
             "| case | p50 µs | p99 µs | mean µs |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['mean_us']:.1f} |"
              for r in rows]
    OUT.mkdir(exist_ok=True)
    (OUT / "controller_overhead.md").write_text("\n".join(lines) + "\n")
    write_json(OUT / "controller_overhead.json", {"rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
