"""Binding to SARSOP's C++ ``pomdpsol`` (APPL) when the user has installed it.

Nothing is downloaded or built: the binary is found via the ``executable`` argument, the
``POMDPSOL`` environment variable or ``PATH``. Used to check our solvers against SARSOP.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trimpomdp.errors import InputError, SolverError


def find_pomdpsol(executable: str | os.PathLike[str] | None = None) -> str | None:
    """Path of a usable ``pomdpsol`` (explicit path, $POMDPSOL, then PATH), or None."""
    for cand in (executable, os.environ.get("POMDPSOL"), shutil.which("pomdpsol")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def read_appl_policy(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Alpha vectors (K, S) and their actions (K,) from an APPL ``.policy`` XML file."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"not a readable APPL policy XML ({exc})", path=path) from None
    vecs, acts = [], []
    for v in root.iter("Vector"):
        try:
            acts.append(int(v.attrib["action"]))
            vecs.append([float(x) for x in (v.text or "").split()])
        except (KeyError, ValueError) as exc:
            raise InputError(f"malformed <Vector> ({exc})", path=path, field="Vector") from None
    if not vecs or len({len(x) for x in vecs}) != 1:
        raise InputError("expected at least one <Vector> and equal lengths", path=path)
    return np.asarray(vecs), np.asarray(acts, dtype=np.int64)


_ROW = re.compile(r"^\s*([\d.]+)\s+(\d+)\s+(\d+)\s+(-?[\d.eE+]+)\s+(-?[\d.eE+]+)\s")


def parse_bounds(stdout: str) -> tuple[float, float]:
    """The last (lower, upper) pair of pomdpsol's progress table."""
    rows = [m for m in (_ROW.match(line) for line in stdout.splitlines()) if m]
    if not rows:
        raise SolverError("could not find pomdpsol's bound table in its output")
    return float(rows[-1].group(4)), float(rows[-1].group(5))


@dataclass(frozen=True, slots=True, kw_only=True)
class PomdpsolSolver:
    """Solve a TabularPOMDP with an installed ``pomdpsol``; returns alpha vectors and bounds."""

    executable: str | None = None
    precision: float = 1e-3
    timeout: float = 20.0

    def solve(self, pomdp):  # noqa: ANN001, ANN201 - TabularPOMDP -> AlphaVectorPolicy
        """The policy read back from pomdpsol's output."""
        return self.solve_info(pomdp)[0]

    def solve_info(self, pomdp):  # noqa: ANN001, ANN201
        """(AlphaVectorPolicy, SolveInfo) with pomdpsol's final lower/upper bounds."""
        from trimpomdp.policies.alpha_vector import AlphaVectorPolicy
        from trimpomdp.pomdp.cassandra import write_cassandra
        from trimpomdp.solvers.info import SolveInfo

        exe = find_pomdpsol(self.executable)
        if exe is None:
            raise SolverError("pomdpsol not found: install SARSOP (github.com/AdaCompNUS/sarsop) "
                              "and put pomdpsol on PATH, set $POMDPSOL, or pass executable=")
        with tempfile.TemporaryDirectory(prefix="trim_pomdpsol_") as tmp:
            model, out = Path(tmp) / "model.pomdp", Path(tmp) / "out.policy"
            write_cassandra(pomdp, model)
            t0 = time.perf_counter()
            proc = subprocess.run([exe, str(model), "--precision", str(self.precision),
                                   "--timeout", str(self.timeout), "--output", str(out)],
                                  capture_output=True, text=True, timeout=self.timeout * 3 + 60)
            wall = time.perf_counter() - t0
            if proc.returncode != 0 or not out.exists():
                raise SolverError(f"pomdpsol failed (exit {proc.returncode}): "
                                  f"{proc.stderr.strip()[-500:]}")
            alphas, actions = read_appl_policy(out)
        lower, upper = parse_bounds(proc.stdout)
        policy = AlphaVectorPolicy(alphas=alphas, actions=actions, pomdp=pomdp)
        info = SolveInfo(seconds=wall, iterations=0, backups=0, n_alpha=len(actions),
                         lower=lower, upper=upper, solver="pomdpsol",
                         converged=upper - lower <= self.precision)
        return policy, info
