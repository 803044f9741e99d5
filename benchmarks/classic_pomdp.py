"""Classic POMDP benchmarks: our SARSOP-style solver at 10 s and 60 s CPU beside C++ SARSOP.

For every Cassandra file in ../shared/data/pomdp: lower / upper bound at b0, alpha vectors,
simulated value of the policy (95 % CI), SARSOP's published figures (issue 8) and pomdp-py's
POUCT where it finishes. Writes a Markdown table to stdout and benchmarks/results/classic_pomdp.md.

    nice python benchmarks/classic_pomdp.py [--budgets 10 60] [--only Tiger network]
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from trimpomdp.pomdp.cassandra import read_cassandra
from trimpomdp.resources import shared_data_dir
from trimpomdp.solvers.evaluate import evaluate_policy
from trimpomdp.solvers.sarsop import SARSOPSolver

#: C++ SARSOP (pomdpsol) on the same machine, CPU seconds: issue 8's target table.
SARSOP = {
    "Tiger": {10: "19.371 / 19.372 (<0.01 s)", 60: "19.371 / 19.372 (<0.01 s)"},
    "paint95": {10: "20.0 conv. (≤0.02 s)", 60: "20.0 conv."},
    "shuttle95": {10: "32.889 conv. (≤0.02 s)", 60: "32.889 conv."},
    "cheese95": {10: "3.485 conv. (≤0.02 s)", 60: "3.485 conv."},
    "mini-hall2": {10: "2.714 conv. (≤0.02 s)", 60: "2.714 conv."},
    "RockSample_4_4": {10: "17.9245 gap 0 (0.28 s)", 60: "17.9245 gap 0 (0.28 s)"},
    "network": {10: "247.11 / 247.80", 60: "gap 0.09"},
    "tiger-grid": {10: "2.147 / 2.543", 60: "2.250 / 2.532"},
    "Hallway": {10: "0.971 / 1.219", 60: "0.994 / 1.206"},
    "Hallway2": {10: "0.284 / 0.926", 60: "0.357 / 0.905"},
    "TagAvoid": {10: "−6.33 / −1.28", 60: "−6.20 / −1.91"},
    "RockSample_5_7": {10: "–", 60: "24.27 / 27.22"},
    "RockSample_7_8": {10: "19.09 / 25.75", 60: "20.04 / 25.54"},
}


def pomdp_py_pouct(m, *, episodes: int = 20, steps: int = 60, sims: int = 100,
                   wall: float = 10.0) -> str:
    """pomdp-py's POUCT (online MCTS, ``sims`` simulations per step) on small models."""
    try:
        import pomdp_py

        from trimpomdp.pomdp.pomdp_py_bridge import to_pomdp_py
    except ImportError:
        return "pomdp-py absent"
    if m.n_states > 100:
        return "not run (|S| > 100: dense pomdp-py tables)"
    br = to_pomdp_py(m)
    rng = np.random.default_rng(0)
    T = m.dense_T()
    t0 = time.time()
    rets = []
    for _ in range(episodes):
        agent = br.agent
        agent.set_belief(br.histogram(m.b0), prior=True)
        planner = pomdp_py.POUCT(max_depth=30, discount_factor=m.discount, num_sims=sims,
                                 exploration_const=float(np.abs(m.R).max()) or 1.0,
                                 rollout_policy=agent.policy_model, show_progress=False)
        s = int(rng.choice(m.n_states, p=m.b0))
        b, G, d = m.b0.copy(), 0.0, 1.0
        for _ in range(steps):
            act = planner.plan(agent)
            a = br.actions.index(act)
            G += d * m.R[a, s]
            d *= m.discount
            s = int(rng.choice(m.n_states, p=T[a, s] / T[a, s].sum()))
            o = int(rng.choice(m.n_observations, p=m.O[a, s] / m.O[a, s].sum()))
            agent.update_history(act, br.observations[o])
            planner.update(agent, act, br.observations[o])
            b = br.update(b, a, o)
            agent.set_belief(br.histogram(b))
        rets.append(G)
        if time.time() - t0 > wall:
            break
    r = np.array(rets)
    half = 1.96 * r.std(ddof=1) / math.sqrt(len(r)) if len(r) > 1 else float("nan")
    return (f"POUCT {r.mean():.3f} ± {half:.3f} ({len(r)} ep × {steps} steps, {sims} sims, "
            f"{time.time() - t0:.0f} s wall)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--only", nargs="*", help="problem names to run")
    ap.add_argument("--runs", type=int, default=1000, help="simulations per policy")
    ap.add_argument("--no-pomdp-py", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "classic_pomdp.md"))
    args = ap.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        print("../shared/data is absent (set TRIMPOMDP_SHARED_DATA)", file=sys.stderr)
        return 2
    files = sorted(glob.glob(os.path.join(data, "pomdp", "*.pomdp"))
                   + glob.glob(os.path.join(data, "pomdp", "*.pomdp.gz")),
                   key=lambda f: os.path.getsize(f))
    skipped = sorted(os.path.basename(f) for f in glob.glob(os.path.join(data, "pomdp", "*.pomdpx")))
    rows: list[dict] = []
    header = ("| problem | \\|S\\|,\\|A\\|,\\|O\\| | CPU budget | ours: lower | ours: upper | vectors "
              "| CPU s used | simulated value (95 % CI) | SARSOP (C++) lower / upper | pomdp-py |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    out = Path(args.out)
    for f in files:
        t_read = time.process_time()
        m = read_cassandra(f)
        t_read = time.process_time() - t_read
        name = m.name
        if args.only and name not in args.only:
            continue
        pp = "" if args.no_pomdp_py else pomdp_py_pouct(m)
        for budget in args.budgets:
            pol, info = SARSOPSolver(timeout=budget, precision=1e-3).solve_info(m)
            runs = args.runs if m.n_states < 5000 else max(100, args.runs // 5)
            ev = evaluate_policy(m, pol, runs=runs, seed=0)
            row = {"problem": name, "states": m.n_states, "actions": m.n_actions,
                   "observations": m.n_observations, "budget": budget, "read_s": t_read,
                   **info.as_dict(), "sim": ev.as_dict(),
                   "sarsop": SARSOP.get(name, {}).get(int(budget), ""), "pomdp_py": pp}
            rows.append(row)
            conv = " (conv.)" if info.converged else ""
            line = (f"| {name} | {m.n_states},{m.n_actions},{m.n_observations} | {budget:g} s | "
                    f"{info.lower:.4f} | {info.upper:.4f}{conv} | {info.n_alpha} | "
                    f"{info.seconds:.2f} | {ev.mean:.3f} ± {ev.half_width:.3f} (n={ev.runs}) | "
                    f"{row['sarsop']} | {pp if budget == args.budgets[0] else ''} |")
            lines.append(line)
            print(line, flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            body = "\n".join(lines)
            note = (f"\n\nNot run: {', '.join(skipped)} (POMDPX, factored; not supported).\n"
                    if skipped else "\n")
            from trimpomdp._io import atomic_write, write_json

            with atomic_write(out) as fh:
                fh.write("# Classic POMDPs: trimpomdp SARSOPSolver vs C++ SARSOP\n\n"
                         "CPU seconds (time.process_time), precision 1e-3, BLAS single-threaded. "
                         "Simulated value: mean discounted return of the policy over n runs "
                         "from b0 (seed 0), horizon until γ^H·max|R|/(1−γ) < 1e-3.\n\n"
                         + body + note)
            write_json(out.with_suffix(".json"), rows)
    print(f"\nwritten {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
