"""Issue 14: how long does `solve --budget X` take, before and after the faster λ search?

    python benchmarks/budget_speed.py            # writes results/budget_speed.{json,md}
    python benchmarks/budget_speed.py --quick    # one budget per model, no files

For each model (the bundled pair: calibrated MATH-500 simulator; the bundled Qwen3-8B pair: its
own model as simulator) and budget, side by side, each in a fresh process:

* ``old``: ``trimpomdp solve --budget X --search bisect`` with ``TRIMPOMDP_NO_CACHE=1`` (the
  former search: simulator built afresh, 13-15 solves at tol 1e-3, bisection from lam_max);
* ``new, cold``: ``--search fast`` with an empty cache folder (simulated problems built and
  written to the cache);
* ``new, warm``: the same again (simulated problems read from the cache);

plus, in one process, the search alone as serve's share target runs it (scenario in memory).
Wall seconds and CPU seconds (user + system of the child) of the whole command, the search's
own seconds, its evaluations and the λ found (old and new must agree within the search
tolerance, 2e-3).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MODELS = {"bundled (calibrated simulator)": None,
          "qwen3-8b pair (own model as simulator)":
              str(ROOT.parent / "models" / "qwen2.5-1.5b_to_qwen3-8b_math-train.json")}
TOL = 2e-3


def _cli(budget: float, model: str | None, search: str, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "trimpomdp", "solve", "--budget", str(budget), "--out",
               str(Path(d) / "p.json"), "--quiet", "--search", search]
        if model:
            cmd += ["--model", model]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc = json.loads(out.stdout)
    return {"wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "search_seconds": doc["search_seconds"], "search_cpu": doc["search_cpu_seconds"],
            "final_solve_seconds": doc["seconds"], "final_solve_cpu": doc["solve_cpu_seconds"],
            "evaluations": doc["search_evaluations"], "lambda": doc["lambda"],
            "share": doc["simulated_share"], "simulator": doc["simulator"],
            "problems": doc.get("simulated_problems")}


def _in_process(budget: float, model: str | None) -> dict:
    from trimpomdp.model import load_model
    from trimpomdp.tuning import search_budget

    m = load_model(model)
    search_budget(m, budget)  # first call fills the in-memory scenario
    c0, t0 = time.process_time(), time.perf_counter()
    r = search_budget(m, budget)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "evaluations": r.evaluations, "lambda": r.lam}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    budgets = (0.2,) if args.quick else (0.1, 0.2, 0.3)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for label, model in MODELS.items():
            for b in budgets:
                env_old = {**os.environ, "TRIMPOMDP_NO_CACHE": "1"}
                env_new = {k: v for k, v in os.environ.items() if k != "TRIMPOMDP_NO_CACHE"}
                env_new["TRIMPOMDP_CACHE_DIR"] = str(Path(cache) / f"{len(rows)}")
                old = _cli(b, model, "bisect", env_old)
                cold = _cli(b, model, "fast", env_new)
                warm = _cli(b, model, "fast", env_new)
                mem = _in_process(b, model)
                row = {"model": label, "budget": b, "old": old, "new_cold": cold,
                       "new_warm": warm, "in_process": mem,
                       "lambda_diff": warm["lambda"] - old["lambda"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    ok = all(abs(r["lambda_diff"]) <= TOL and abs(r["new_cold"]["lambda"] - r["old"]["lambda"])
             <= TOL for r in rows)
    if not args.quick:
        res = {"rows": rows, "lambda_tol": TOL, "all_within_tol": ok,
               "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end"}
        (ROOT / "results" / "budget_speed.json").write_text(json.dumps(res, indent=1) + "\n")
        (ROOT / "results" / "budget_speed.md").write_text(_markdown(res))
    return 0 if ok else 1


def _markdown(res: dict) -> str:
    lines = ["# `solve --budget` speed (issue 14)", "",
             ("`python benchmarks/budget_speed.py`. Each command in a fresh process; wall / CPU "
              "seconds (user + system) of the whole `trimpomdp solve --budget X` (imports, "
              "search, final solve at tol 1e-5, writing the policy); in parentheses the search "
              "alone (wall / CPU seconds of its own clock) and its evaluations; last columns: "
              "the final solve's CPU seconds (the same in every column: same λ and tolerance) "
              "and the rest of the command (imports, reading the model, writing the policy), "
              "CPU seconds of the warm run. `old` = `--search bisect` with "
              "`TRIMPOMDP_NO_CACHE=1`; `cold` = default search, empty cache; `warm` = default, "
              "simulated problems read from the cache; `serve` = the search alone in a process "
              "that ran it before (serve's share target), wall / CPU. "
              f"Machine: {res['machine']} (shared, noisy: compare CPU columns)."), "",
             ("| model | budget | old: command wall / CPU (search wall / CPU, evals) | cold | "
              "warm | serve: search wall / CPU | λ old → new (Δ) | final solve CPU | rest CPU |"),
             "|---|---|---|---|---|---|---|---|---|"]

    def cell(r: dict) -> str:
        return (f"{r['wall']:.2f} / {r['cpu']:.2f} ({r['search_seconds']:.2f} / "
                f"{r['search_cpu']:.2f}, {r['evaluations']})")

    def rest(r: dict) -> float:
        return r["cpu"] - r["search_cpu"] - r["final_solve_cpu"]

    for r in res["rows"]:
        m = r["in_process"]
        lines.append(f"| {r['model']} | {r['budget']:g} | {cell(r['old'])} | "
                     f"{cell(r['new_cold'])} | {cell(r['new_warm'])} | {m['wall']:.2f} / "
                     f"{m['cpu']:.2f} | {r['old']['lambda']:.4f} → {r['new_warm']['lambda']:.4f} "
                     f"({r['lambda_diff']:+.5f}) | {r['new_warm']['final_solve_cpu']:.2f} | "
                     f"{rest(r['new_warm']):.2f} |")
    old_s = [r["old"]["search_cpu"] for r in res["rows"]]
    new_s = [r["new_warm"]["search_cpu"] for r in res["rows"]]
    mem = [r["in_process"]["cpu"] for r in res["rows"]]
    lines += ["", (f"Search CPU seconds, old → warm → serve (in memory): median "
                   f"{sorted(old_s)[len(old_s) // 2]:.2f} → {sorted(new_s)[len(new_s) // 2]:.2f} "
                   f"→ {sorted(mem)[len(mem) // 2]:.2f}; max {max(old_s):.2f} → {max(new_s):.2f} "
                   f"→ {max(mem):.2f}.")]
    lines += ["", (f"All λ within the search tolerance ({res['lambda_tol']:g}) of the old ones: "
                   f"{'yes' if res['all_within_tol'] else 'NO'}.")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
