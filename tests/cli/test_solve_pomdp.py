"""`trimpomdp solve-pomdp` / `evaluate-pomdp` in-process: one JSON line, exit 2 on bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trimpomdp.cli.main import main

TIGER = str(Path(__file__).parents[1] / "pomdp" / "files" / "tiger_named.pomdp")


@pytest.mark.parametrize("solver", ["sarsop", "pbvi", "perseus", "qmdp", "fib"])
def test_solve_pomdp_prints_one_json_line(tmp_path, capsys, solver):
    out = tmp_path / "policy.json"
    rc = main(["solve-pomdp", TIGER, "--solver", solver, "--timeout", "10", "--out", str(out),
               "--quiet"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    assert set(res) == {"solver", "lower", "upper", "seconds", "alphas", "backups"}
    assert res["lower"] <= 19.3713 + 1e-3 <= res["upper"] + 2e-3
    if solver in ("sarsop", "pbvi", "perseus"):
        assert res["lower"] == pytest.approx(19.371, abs=0.01)
    assert out.exists()


def test_evaluate_pomdp(tmp_path, capsys):
    out = tmp_path / "policy.json"
    assert main(["solve-pomdp", TIGER, "--out", str(out), "--timeout", "10", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate-pomdp", TIGER, str(out), "--runs", "3000", "--horizon", "200"]) == 0
    res = json.loads(capsys.readouterr().out.strip())
    assert res["runs"] == 3000 and res["horizon"] == 200
    assert res["ci_low"] <= 19.371 + 0.01 and res["ci_high"] >= 19.371 - 0.01


@pytest.mark.parametrize("text, line, what", [
    ("discount: 0.9\nvalues: reward\nactions: 1\nobservations: 1\nT: 0 identity\n", 5,
     "missing 'states:'"),
    ("discount: 0.9\nstates: 2\nactions: 1\nobservations: 1\nT: 0\n0.5 0.4\n0 1\nO: 0 uniform\n",
     6, "sums to 0.9"),
    ("discount: 0.9\nstates: a b\nactions: 1\nobservations: 1\nT: 0 : a : c 1\n", 5,
     "unknown state 'c'"),
    ("discount: 0.9\nstates: 2\nactions: 1\nobservations: 1\nT: 0\n1 0\n0", 7, "truncated"),
])
def test_malformed_file_exits_2_with_path_and_line(tmp_path, capsys, text, line, what):
    p = tmp_path / "bad.pomdp"
    p.write_text(text)
    assert main(["solve-pomdp", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:{line}: " in err and what in err


def test_policy_of_another_model_exits_2(tmp_path, capsys):
    p = tmp_path / "other.pomdp"
    p.write_text("discount: 0.9\nstates: 3\nactions: 1\nobservations: 1\nT: 0 identity\n"
                 "O: 0 uniform\nR: 0 : * : * : * 1\n")
    pol = tmp_path / "pol.json"
    assert main(["solve-pomdp", str(p), "--out", str(pol), "--quiet", "--timeout", "5"]) == 0
    assert main(["evaluate-pomdp", TIGER, str(pol)]) == 2
    assert "3 states but the POMDP has 2" in capsys.readouterr().err
