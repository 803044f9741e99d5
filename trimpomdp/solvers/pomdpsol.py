"""Binding to SARSOP's C++ ``pomdpsol`` (APPL) when the user has installed it.

Nothing is downloaded or built here: the binary is found via the ``executable`` argument, the
``POMDPSOL`` environment variable or ``PATH`` (``.ci/sarsop.sh`` builds one for the tests).
Used to check our solvers against SARSOP; SARSOP itself (GPL-2.0) is not part of trimpomdp.
"""
from __future__ import annotations

import math
import os
import re
import resource
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trimpomdp._validate import nonneg_float
from trimpomdp.errors import InputError, SolverError
from trimpomdp.policies.alpha_vector import AlphaVectorPolicy
from trimpomdp.pomdp.cassandra import write_cassandra
from trimpomdp.pomdp.tabular import TabularPOMDP
from trimpomdp.solvers.info import SolveInfo

__all__ = ["PomdpsolRun", "PomdpsolSolver", "find_pomdpsol", "parse_bounds", "read_appl_policy",
           "run_pomdpsol"]


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
    row = _last_row(stdout)
    return float(row.group(4)), float(row.group(5))


def _last_row(stdout: str) -> re.Match[str]:
    rows = [m for m in (_ROW.match(line) for line in stdout.splitlines()) if m]
    if not rows:
        raise SolverError("could not find pomdpsol's bound table in its output")
    return rows[-1]


@dataclass(frozen=True, slots=True, kw_only=True)
class PomdpsolRun:
    """One pomdpsol run: final bounds, its own reported time, trials, backups, alpha vectors.

    ``seconds`` is the solver's reported time (CPU, without reading the model); ``cpu`` is the
    child process's total user + system CPU time, reading included. ``converged``: pomdpsol
    reported "target precision reached" (its printed bounds are rounded to 6 digits).
    """

    lower: float
    upper: float
    seconds: float
    trials: int
    backups: int
    n_alpha: int
    cpu: float
    converged: bool = False
    policy_file: str | None = None
    stdout: str = ""


def run_pomdpsol(model_file: str | os.PathLike[str], *, timeout: float = 20.0,
                 precision: float = 1e-3, executable: str | None = None,
                 output: str | os.PathLike[str] | None = None) -> PomdpsolRun:
    """Run ``pomdpsol`` on a ``.pomdp`` or ``.pomdpx`` file; returns its final table row.

    ``timeout`` is pomdpsol's ``--timeout`` (CPU seconds). Raises :class:`SolverError` when the
    binary is missing or fails.
    """
    exe = find_pomdpsol(executable)
    if exe is None:
        raise SolverError("pomdpsol not found: install SARSOP (github.com/AdaCompNUS/sarsop) "
                          "and put pomdpsol on PATH, set $POMDPSOL, or pass executable= "
                          "(bash .ci/sarsop.sh builds one from ../shared/vendor/sarsop)")
    timeout = nonneg_float(timeout, "timeout", strict=True)
    precision = nonneg_float(precision, "precision", strict=True)
    wall_limit = timeout * 30 + 600  # a safety net only: --timeout is in CPU seconds
    with tempfile.TemporaryDirectory(prefix="trim_pomdpsol_") as tmp:
        out = Path(output) if output is not None else Path(tmp) / "out.policy"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            proc = subprocess.run([exe, str(model_file), "--precision", repr(precision),
                                   "--timeout", repr(timeout), "--output", str(out)],
                                  check=False, capture_output=True, text=True, cwd=tmp,
                                  timeout=wall_limit)
        except subprocess.TimeoutExpired:
            raise SolverError(f"pomdpsol did not finish within {wall_limit:g} s of wall time "
                              "(its --timeout counts CPU seconds; is the machine overloaded?)"
                              ) from None
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr.strip() or proc.stdout.strip())[-500:]
            raise SolverError(f"pomdpsol failed (exit {proc.returncode}): {tail}")
        row = _last_row(proc.stdout)
        return PomdpsolRun(lower=float(row.group(4)), upper=float(row.group(5)),
                           seconds=float(row.group(1)), trials=int(row.group(2)),
                           backups=int(row.group(3)), n_alpha=_alphas(proc.stdout), cpu=cpu,
                           converged="target precision reached" in proc.stdout,
                           policy_file=str(out) if output is not None else None,
                           stdout=proc.stdout)


def _alphas(stdout: str) -> int:
    m = re.findall(r"^\s*[\d.]+\s+\d+\s+\d+\s+\S+\s+\S+\s+\S+\s+(\d+)", stdout, re.MULTILINE)
    return int(m[-1]) if m else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PomdpsolSolver:
    """Solve a TabularPOMDP with an installed ``pomdpsol``; returns alpha vectors and bounds.

    The model is written as a Cassandra file (the exact model our solvers see), solved with
    ``--timeout`` CPU seconds and ``--precision``, and the policy read back.
    """

    executable: str | None = None
    precision: float = 1e-3
    timeout: float = 20.0

    def __post_init__(self) -> None:
        nonneg_float(self.precision, "precision", strict=True)
        nonneg_float(self.timeout, "timeout", strict=True)

    def solve(self, pomdp: TabularPOMDP) -> AlphaVectorPolicy:
        """The policy read back from pomdpsol's output."""
        return self.solve_info(pomdp)[0]

    def solve_info(self, pomdp: TabularPOMDP) -> tuple[AlphaVectorPolicy, SolveInfo]:
        """(AlphaVectorPolicy, SolveInfo) with pomdpsol's final lower/upper bounds."""
        if find_pomdpsol(self.executable) is None:
            run_pomdpsol("", executable=self.executable)  # raises the "not found" error
        with tempfile.TemporaryDirectory(prefix="trim_pomdpsol_") as tmp:
            model, out = Path(tmp) / "model.pomdp", Path(tmp) / "out.policy"
            write_cassandra(pomdp, model)
            run = run_pomdpsol(model, timeout=self.timeout, precision=self.precision,
                               executable=self.executable, output=out)
            alphas, actions = read_appl_policy(out)
        if alphas.shape[1] != pomdp.n_states:
            raise SolverError(f"pomdpsol's policy has {alphas.shape[1]} columns; expected "
                              f"{pomdp.n_states} (one per state)")
        policy = AlphaVectorPolicy(alphas=alphas, actions=actions, pomdp=pomdp,
                                   meta={"solver": "pomdpsol", "lower": run.lower,
                                         "upper": run.upper})
        info = SolveInfo(seconds=run.seconds, iterations=run.trials, backups=run.backups,
                         n_alpha=len(actions), lower=run.lower, upper=run.upper,
                         gap_trace=((run.seconds, run.lower, run.upper),), solver="pomdpsol",
                         converged=run.converged,
                         extra={"cpu": run.cpu})
        if not (math.isfinite(run.lower) and math.isfinite(run.upper)):
            raise SolverError(f"pomdpsol returned non-finite bounds {run.lower}, {run.upper}")
        return policy, info
