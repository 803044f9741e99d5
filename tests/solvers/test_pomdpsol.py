"""The binding to SARSOP's C++ pomdpsol: run against the real binary when it is built.

``bash .ci/sarsop.sh`` builds pomdpsol from ../shared/vendor/sarsop into a cache folder and prints
its path; the tests find it through $POMDPSOL or PATH and skip with a reason when it is absent.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.errors import SolverError
from trimpomdp.pomdp.cassandra import read_pomdp
from trimpomdp.solvers import REGISTRY, make_solver
from trimpomdp.solvers.evaluate import evaluate_policy
from trimpomdp.solvers.pomdpsol import (
    PomdpsolSolver,
    find_pomdpsol,
    parse_bounds,
    read_appl_policy,
    run_pomdpsol,
)
from trimpomdp.solvers.sarsop import SARSOPSolver

HERE = Path(__file__).parent
TIGER = HERE.parent / "pomdp" / "files" / "tiger_named.pomdp"
TIGER_X = HERE.parent / "pomdp" / "files" / "tiger.pomdpx"


@pytest.fixture(scope="module")
def pomdpsol():
    exe = find_pomdpsol()
    if exe is None:
        pytest.skip("pomdpsol not found: build it with `bash .ci/sarsop.sh` and set POMDPSOL "
                    "to the path it prints (or put pomdpsol on PATH)")
    return exe


def test_read_appl_policy_and_parse_bounds():
    G, a = read_appl_policy(HERE / "files" / "tiny.policy")
    assert G.shape == (3, 2) and a.tolist() == [0, 1, 2]
    out = (" Time   |#Trial |#Backup |LBound    |UBound    |Precision  |#Alphas |#Beliefs\n"
           " 0.5     3       10       1.5        2.5        1          4        5\n"
           " 1.0     6       20       1.75       2.25       0.5        6        8\n")
    assert parse_bounds(out) == (1.75, 2.25)
    with pytest.raises(SolverError, match="bound table"):
        parse_bounds("no table here")


def test_missing_binary_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("POMDPSOL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SolverError, match="pomdpsol not found"):
        PomdpsolSolver(executable=str(tmp_path / "nope")).solve_info(read_pomdp(TIGER))


def test_registry_names_pomdpsol():
    assert REGISTRY["pomdpsol"][0] == "PomdpsolSolver"
    s = make_solver("pomdpsol", timeout=3, precision=0.01)
    assert isinstance(s, PomdpsolSolver) and s.timeout == 3 and s.precision == 0.01


def test_tiger_through_pomdpsol(pomdpsol):
    m = read_pomdp(TIGER)
    pol, info = PomdpsolSolver(executable=pomdpsol, timeout=10).solve_info(m)
    assert info.solver == "pomdpsol" and info.converged
    assert info.lower == pytest.approx(19.371, abs=0.01)
    assert pol.alphas.shape[1] == 2 and pol.value(m.b0) == pytest.approx(info.lower, abs=1e-3)
    ev = evaluate_policy(m, pol, runs=3000, seed=0, horizon=200)
    assert ev.ci_low <= info.upper + 0.01 and ev.ci_high >= info.lower - 0.01


@pytest.mark.parametrize("path", [TIGER, TIGER_X], ids=["pomdp", "pomdpx"])
def test_solve_pomdp_cli_with_pomdpsol(pomdpsol, tmp_path, capsys, path):
    out = tmp_path / "pol.json"
    rc = main(["solve-pomdp", str(path), "--solver", "pomdpsol", "--timeout", "5",
               "--out", str(out)])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["solver"] == "pomdpsol" and res["lower"] == pytest.approx(19.371, abs=0.01)
    assert main(["evaluate-pomdp", str(path), str(out), "--runs", "500", "--horizon",
                 "100"]) == 0


#: converged at precision 1e-3 by both solvers within seconds.
SMALL = ["Tiger.pomdp", "paint95.pomdp", "shuttle95.pomdp", "cheese95.pomdp", "mini-hall2.pomdp",
         "RockSample_4_4.pomdp"]


@pytest.mark.parametrize("name", SMALL)
def test_our_converged_values_equal_pomdpsol(pomdpsol, shared_data, name):
    path = os.path.join(shared_data, "pomdp", name)
    theirs = run_pomdpsol(path, timeout=20, executable=pomdpsol)
    _, ours = SARSOPSolver(timeout=30, precision=1e-3).solve_info(read_pomdp(path))
    assert theirs.upper - theirs.lower <= 1.5e-3 and ours.converged
    # both are valid bounds on one value: the intervals intersect, the lower bounds agree
    assert ours.lower <= theirs.upper + 1e-4 and theirs.lower <= ours.upper + 1e-4
    assert ours.lower == pytest.approx(theirs.lower, abs=2e-3)


@pytest.mark.slow
def test_rocksample_7_8_pomdpx_beside_pomdpsol(pomdpsol, shared_data):
    """pomdpsol on the factored file itself, ours on the flattened model: bounds intersect."""
    path = os.path.join(shared_data, "pomdp", "RockSample_7_8.pomdpx")
    theirs = run_pomdpsol(path, timeout=5, executable=pomdpsol)
    _, ours = SARSOPSolver(timeout=5).solve_info(read_pomdp(path))
    assert ours.lower <= theirs.upper + 1e-6 and theirs.lower <= ours.upper + 1e-6
    assert theirs.backups > 0 and theirs.seconds > 0 and theirs.cpu > 0
    assert np.isfinite([theirs.lower, theirs.upper]).all()
