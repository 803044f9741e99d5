"""Start-up cost of the CLI: `trimpomdp --version` and one `trimpomdp act`, as ratios to
`python -c "import numpy"`, measured side by side (interleaved, median of N runs, wall time).

    python benchmarks/startup.py [--runs 15]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args(argv)
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        pol = str(Path(d) / "policy.json")
        subprocess.run([py, "-m", "trimpomdp", "solve", "--lambda", "0.25", "--out", pol],
                       check=True, stdout=subprocess.DEVNULL)
        cmds = {"import numpy": [py, "-c", "import numpy"],
                "trimpomdp --version": [py, "-m", "trimpomdp", "--version"],
                "trimpomdp act": [py, "-m", "trimpomdp", "act", "--policy", pol, "--step", "3",
                                  "--tokens", "60", "--belief", "0.2,0.1,0.7"]}
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.runs):
            for k, c in cmds.items():
                times[k].append(_time(c))
    base = statistics.median(times["import numpy"])
    print(f"{'command':<22} {'median s':>9} {'ratio':>7}")
    for k, v in times.items():
        m = statistics.median(v)
        print(f"{k:<22} {m:9.3f} {m / base:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
