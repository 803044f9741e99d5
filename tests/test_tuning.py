"""Budget → λ: the vectorised POMDP rule equals the per-step router; budgets use the loaded
model's own simulator; the found λ meets the target and one step less does not."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.sim import NaiveSimulator, load_simulator
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.tuning import search_budget, simulator_for, strong_share


@pytest.mark.parametrize("belief", ["filter", "release"])
@pytest.mark.parametrize("lam", [0.05, 0.4])
def test_vectorised_rule_equals_router(default_model, belief, lam):
    sc = load_simulator().scenario(300, 11)
    a = strong_share(default_model, lam, sc, belief=belief)
    b = strong_share(default_model, lam, sc, belief=belief, vectorised=True)
    for k in ("accuracy", "mean_strong_tokens", "mean_strong_calls", "target_token_frac"):
        assert a[k] == b[k], k


def test_vectorised_rule_equals_router_on_a_naive_scenario(default_model):
    sc = NaiveSimulator(default_model).scenario(300, 2)
    a = strong_share(default_model, 0.2, sc)
    b = strong_share(default_model, 0.2, sc, vectorised=True)
    assert a == {**b, "policy": a["policy"]}


def test_own_model_gets_its_own_simulator(default_model):
    own = default_model.replace(p_weak=0.8, name="my-pair")
    sim, name = simulator_for(own)
    assert isinstance(sim, NaiveSimulator) and "my-pair" in name
    assert "calibrated" in simulator_for(default_model)[1]


def test_found_lambda_meets_the_target(default_model):
    own = default_model.replace(p_weak=0.85, name="my-pair")
    res = search_budget(own, 0.15, n=300, tol=0.01)
    assert res.share <= 0.15 and "my-pair" in res.simulator
    sim, _ = simulator_for(own)
    sc = sim.scenario(300, 0)
    below = strong_share(own, max(0.0, res.lam - 0.02), sc, vectorised=True,
                         solver=FiniteHorizonSolver(tol=1e-3))["strong_share"]
    assert below > 0.15 - 0.05  # the crossing is near res.lam, not far below it


def test_solve_budget_reports_the_simulator(default_model, tmp_path, capsys):
    own = default_model.replace(p_weak=0.85, name="my-pair")
    own.save(tmp_path / "m.json")
    assert main(["solve", "--model", str(tmp_path / "m.json"), "--budget", "0.2", "--out",
                 str(tmp_path / "p.json")]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert "my-pair" in out["simulator"] and out["simulated_share"] <= 0.2
    assert "budget search" in cap.err  # progress lines
    pol = json.loads((tmp_path / "p.json").read_text())
    assert pol["lam"] == pytest.approx(out["lambda"])
    assert np.isfinite(out["value_t0"])
    assert TrimPOMDP(model=own, lam=out["lambda"]).lam == out["lambda"]
