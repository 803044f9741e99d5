"""Classic POMDPs: our SARSOP-style solver beside C++ SARSOP (pomdpsol), same CPU budgets.

For every model file in ../shared/data/pomdp (Cassandra .pomdp/.pomdp.gz and POMDPX .pomdpx),
at each CPU budget (default 10 s and 60 s), runs pomdpsol (``--timeout`` = CPU seconds, on the
original file; .gz files are unpacked first) concurrently with our ``SARSOPSolver`` (CPU seconds
by ``time.process_time``, in this process) and prints lower / upper bounds at b0, the ratios and
backups per CPU second. A second table gives our backups per CPU second with the numpy
reference kernels ("before") and the native kernels ("after") at the first budget.
Writes benchmarks/results/classic_pomdp.md and .json.

    nice python benchmarks/classic_pomdp.py                  # 10 s and 60 s, all problems
    python benchmarks/classic_pomdp.py --quick               # 2 s, the small problems
    python benchmarks/classic_pomdp.py --seconds 5 --only Hallway TagAvoid
"""
from __future__ import annotations

import argparse
import glob
import gzip
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from trimpomdp._io import atomic_write, read_json, write_json
from trimpomdp.errors import SolverError
from trimpomdp.pomdp.cassandra import read_pomdp
from trimpomdp.pomdp.tabular import TabularPOMDP
from trimpomdp.resources import shared_data_dir
from trimpomdp.solvers import _kernels
from trimpomdp.solvers.info import SolveInfo
from trimpomdp.solvers.pomdpsol import PomdpsolRun, find_pomdpsol, run_pomdpsol
from trimpomdp.solvers.sarsop import SARSOPSolver

QUICK = ["Tiger", "paint95", "shuttle95", "cheese95", "mini-hall2", "network", "tiger-grid",
         "Hallway"]
#: bounds reached when within this of pomdpsol's (its table prints 6 significant digits).
TOL = 1e-3


def _name(path: str) -> str:
    n = os.path.basename(path)
    for suf in (".gz", ".pomdpx", ".pomdp"):
        n = n.removesuffix(suf)
    return n


def _pomdpsol_file(path: str, tmp: str) -> str:
    """pomdpsol cannot read .gz: unpack to ``tmp``."""
    if not path.endswith(".gz"):
        return path
    out = os.path.join(tmp, os.path.basename(path).removesuffix(".gz"))
    if not os.path.exists(out):
        with gzip.open(path, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


def _ours(m: TabularPOMDP, budget: float, backend: str) -> SolveInfo:
    _kernels.use(backend)
    return SARSOPSolver(timeout=budget, precision=TOL).solve_info(m)[1]


def side_by_side(path: str, m: TabularPOMDP, budget: float, exe: str | None,
                 tmp: str) -> tuple[SolveInfo, PomdpsolRun | None, str]:
    """pomdpsol in a thread (a child process) while ours runs here; returns both."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["run"] = run_pomdpsol(_pomdpsol_file(path, tmp), timeout=budget, precision=TOL,
                                      executable=exe)
        except SolverError as exc:
            box["err"] = str(exc)

    th = threading.Thread(target=target) if exe else None
    if th is not None:
        th.start()
    ours = _ours(m, budget, "native" if _native_available() else "numpy")
    if th is not None:
        th.join()
    return ours, box.get("run"), box.get("err", "" if exe else "pomdpsol not found")


def _native_available() -> bool:
    try:
        _kernels.use("native")
    except SolverError:
        return False
    return True


def _f(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.4g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[10.0, 60.0],
                    help="CPU seconds per solve (default: 10 60)")
    ap.add_argument("--seconds", type=float, help="one budget (shorthand for --budgets S)")
    ap.add_argument("--quick", action="store_true",
                    help=f"2 s budget on {', '.join(QUICK)} (unless --only/--seconds given)")
    ap.add_argument("--only", nargs="*", help="problem names to run")
    ap.add_argument("--no-before", action="store_true",
                    help="skip the numpy-kernel ('before') runs")
    ap.add_argument("--pomdpsol", help="pomdpsol binary (default: $POMDPSOL, then PATH)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "classic_pomdp.md"))
    ap.add_argument("--render", metavar="JSON", help="only rewrite --out from a saved .json")
    ap.add_argument("--merge", metavar="JSON",
                    help="start from the rows of a saved .json: (problem, budget) pairs it has "
                         "with a pomdpsol result are not run again")
    args = ap.parse_args(argv)
    if args.render:
        doc = read_json(args.render)
        _write(Path(args.out), doc["rows"], doc["kernels_before_after"], sorted({r["budget"] for r in doc["rows"]}),
               any(r["kernels"] == "native" for r in doc["rows"]),
               "yes" if any(r["pomdpsol"] for r in doc["rows"]) else None,
               doc.get("wall_s", 0.0))
        return 0
    budgets = [args.seconds] if args.seconds else ([2.0] if args.quick and args.budgets ==
                                                   [10.0, 60.0] else args.budgets)
    only = args.only or (QUICK if args.quick else None)
    data = shared_data_dir()
    if data is None:
        print("../shared/data is absent (set TRIMPOMDP_SHARED_DATA)", file=sys.stderr)
        return 2
    exe = find_pomdpsol(args.pomdpsol)
    if exe is None:
        print("pomdpsol not found (bash .ci/sarsop.sh builds it; set POMDPSOL): only our "
              "solver runs", file=sys.stderr)
    native = _native_available()
    files = [f for pat in ("*.pomdp", "*.pomdp.gz", "*.pomdpx")
             for f in glob.glob(os.path.join(data, "pomdp", pat))]
    files = sorted((f for f in files if not only or _name(f) in only), key=os.path.getsize)
    rows: list[dict[str, Any]] = []
    before: list[dict[str, Any]] = []
    wall0 = 0.0
    if args.merge:
        doc = read_json(args.merge)
        rows = [r for r in doc["rows"] if r["pomdpsol"] is not None or exe is None]
        before = list(doc["kernels_before_after"])
        wall0 = float(doc.get("wall_s", 0.0))
    done = {(r["file"], r["budget"]) for r in rows}
    out = Path(args.out)
    t_start = time.time() - wall0
    with tempfile.TemporaryDirectory(prefix="classic_pomdp_") as tmp:
        for f in files:
            todo = [b for b in budgets if (os.path.basename(f), b) not in done]
            name = _name(f) + (" (pomdpx)" if f.endswith(".pomdpx") else "")
            want_before = not args.no_before and native and not any(
                b["problem"] == name for b in before)
            if not todo and not want_before:
                continue
            c0 = time.process_time()
            m = read_pomdp(f)
            read_s = time.process_time() - c0
            for budget in todo:
                ours, theirs, err = side_by_side(f, m, budget, exe, tmp)
                row: dict[str, Any] = {
                    "problem": name, "file": os.path.basename(f), "states": m.n_states,
                    "actions": m.n_actions, "observations": m.n_observations,
                    "budget": budget, "read_cpu_s": read_s, "kernels": _kernels.backend(),
                    "ours": {**ours.as_dict(), "backups_per_cpu_s": ours.backups / ours.seconds},
                    "pomdpsol": None if theirs is None else {
                        "lower": theirs.lower, "upper": theirs.upper,
                        "seconds": theirs.seconds, "cpu": theirs.cpu, "trials": theirs.trials,
                        "backups": theirs.backups, "alphas": theirs.n_alpha,
                        "converged": theirs.converged,
                        "backups_per_cpu_s": theirs.backups / theirs.seconds
                        if theirs.seconds >= 0.05 else None},
                    "pomdpsol_error": err}
                rows.append(row)
                rows.sort(key=lambda r: (os.path.getsize(os.path.join(data, "pomdp", r["file"])),
                                         r["file"], r["budget"]))
                print(_row_line(row), flush=True)
            if want_before:
                nb = _ours(m, budgets[0], "numpy")
                na = next(r["ours"] for r in rows if r["problem"] == name
                          and r["budget"] == budgets[0])
                before.append({"problem": name, "budget": budgets[0],
                               "numpy_backups_per_cpu_s": nb.backups / nb.seconds,
                               "numpy_lower": nb.lower, "numpy_upper": nb.upper,
                               "native_backups_per_cpu_s": na["backups_per_cpu_s"],
                               "native_lower": na["lower"], "native_upper": na["upper"]})
                print(f"  before/after kernels at {budgets[0]:g} s: "
                      f"{before[-1]['numpy_backups_per_cpu_s']:.0f} -> "
                      f"{before[-1]['native_backups_per_cpu_s']:.0f} backups/CPU s", flush=True)
            _write(out, rows, before, budgets, native, exe, time.time() - t_start)
    print(f"\nwritten {out}", file=sys.stderr)
    return 0


def _reached(row: dict[str, Any]) -> str:
    """✓ where ours is at least as tight; both converged (gap ≤ precision) counts as tied."""
    t = row["pomdpsol"]
    if t is None:
        return "–"
    o = row["ours"]
    both = bool(o["converged"] and t["converged"])
    tl = TOL if both else 1e-4 * max(1.0, abs(t["lower"]))
    tu = TOL if both else 1e-4 * max(1.0, abs(t["upper"]))
    lo = o["lower"] >= t["lower"] - tl
    up = o["upper"] <= t["upper"] + tu
    return ("✓" if lo else f"L −{t['lower'] - o['lower']:.3g}") + " / " + (
        "✓" if up else f"U +{o['upper'] - t['upper']:.3g}")


def _row_line(row: dict[str, Any]) -> str:
    o, t = row["ours"], row["pomdpsol"]
    conv = " (conv.)" if o["converged"] else ""
    if t is None:
        theirs = f"– | – | – | – | – ({row['pomdpsol_error'][:40]})"
        ratios = "– | – | –"
    else:
        tc = " (conv.)" if t["converged"] else ""
        gap_t = t["upper"] - t["lower"]
        gap_o = o["upper"] - o["lower"]
        speed = (f"{o['backups_per_cpu_s'] / t['backups_per_cpu_s']:.2f}"
                 if t["backups_per_cpu_s"] else "–")
        ratios = (f"{o['lower'] / t['lower']:.3f} | " if t["lower"] > 0 else "– | ") + (
            f"{gap_o / gap_t:.2f}" if gap_t > 1e-9 else "–") + f" | {speed}"
        theirs = (f"{_f(t['lower'])} | {_f(t['upper'])}{tc} | {t['alphas']} | "
                  f"{t['seconds']:.2f} / {t['cpu']:.2f} | "
                  + (f"{t['backups_per_cpu_s']:.0f}" if t["backups_per_cpu_s"] else "– (< 0.05 s)"))
    return (f"| {row['problem']} | {row['states']},{row['actions']},{row['observations']} | "
            f"{row['budget']:g} s | {_f(o['lower'])} | {_f(o['upper'])}{conv} | {o['alphas']} | "
            f"{o['seconds']:.2f} | {o['backups_per_cpu_s']:.0f} | {theirs} | {ratios} | "
            f"{_reached(row)} |")


def _write(out: Path, rows: list[dict[str, Any]], before: list[dict[str, Any]],
           budgets: list[float], native: bool, exe: str | None, wall: float) -> None:
    head = ("| problem | \\|S\\|,\\|A\\|,\\|O\\| | CPU budget | ours: lower | ours: upper | "
            "ours: vectors | ours: CPU s | ours: backups / CPU s | pomdpsol: lower | "
            "pomdpsol: upper | pomdpsol: vectors | pomdpsol: CPU s (solver / process) | "
            "pomdpsol: backups / CPU s | lower ours / pomdpsol (if > 0) | gap ours / pomdpsol | "
            "backups per CPU s ours / pomdpsol | reached (lower / upper) |\n|" + "---|" * 17)
    lines = [head] + [_row_line(r) for r in rows]
    bl = [("| problem | CPU budget | numpy kernels: backups / CPU s | native: backups / CPU s | "
           "speed-up | numpy: lower / upper | native: lower / upper |"),
          "|---|---|---|---|---|---|---|"]
    for b in before:
        bl.append(f"| {b['problem']} | {b['budget']:g} s | {b['numpy_backups_per_cpu_s']:.0f} | "
                  f"{b['native_backups_per_cpu_s']:.0f} | "
                  f"{b['native_backups_per_cpu_s'] / b['numpy_backups_per_cpu_s']:.1f}× | "
                  f"{_f(b['numpy_lower'])} / {_f(b['numpy_upper'])} | "
                  f"{_f(b['native_lower'])} / {_f(b['native_upper'])} |")
    text = ("# Classic POMDPs: trimpomdp SARSOPSolver beside C++ SARSOP (pomdpsol)\n\n"
            f"Written by `python benchmarks/classic_pomdp.py --budgets "
            f"{' '.join(f'{b:g}' for b in budgets)}` ({platform.machine()}, "
            f"{os.cpu_count()} cores, shared with other jobs: all times are CPU seconds; "
            f"{wall / 60:.0f} min wall). Ours: kernels "
            f"{'native (pip install ./solvers)' if native else 'numpy reference'}, precision "
            f"{TOL:g}, CPU by `time.process_time` including the initial bounds, model reading "
            "excluded. pomdpsol: `--timeout` (CPU s) and `--precision` "
            f"{TOL:g} on the original file (its own reported time / the whole child process "
            f"incl. parsing){'' if exe else '; pomdpsol was not found, so its columns are empty'}."
            " Both run at the same time, one per core. Backups: one belief-node update of both "
            "bounds (pomdpsol's #Backup). *reached*: ours ≥ pomdpsol's lower and ≤ its upper "
            "(within 1e-4 relative for its 6 printed digits; within the precision when both "
            "converged), else the shortfall.\n\n"
            + "\n".join(lines) + "\n\n## Kernels: backups per CPU second before / after\n\n"
            + ("\n".join(bl) if before else "(not run)") + "\n\nReading of these figures (where "
            "and why ours falls short): docs/generic_pomdp.md, section Benchmark.\n")
    with atomic_write(out) as fh:
        fh.write(text)
    write_json(out.with_suffix(".json"), {"rows": rows, "kernels_before_after": before,
                                          "wall_s": wall})


if __name__ == "__main__":
    raise SystemExit(main())
