"""Budget → λ: the vectorised POMDP rule equals the per-step router; budgets use the loaded
model's own simulator; the found λ meets the target and one step less does not; the fast search
finds the former bisection's λ within the tolerance; the scenario cache returns the same draws."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trimpomdp import tuning
from trimpomdp.cli.main import main
from trimpomdp.errors import InputError
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.sim import NaiveSimulator, load_simulator
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.tuning import budget_scenario, search_budget, simulator_for, strong_share


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Each test gets an empty scenario cache (disk and memory)."""
    monkeypatch.setenv("TRIMPOMDP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRIMPOMDP_NO_CACHE", raising=False)
    monkeypatch.setattr(tuning, "_SCENARIOS", {})


@pytest.mark.parametrize("observe", [True, False])
@pytest.mark.parametrize("belief", ["filter", "release"])
@pytest.mark.parametrize("lam", [0.05, 0.4])
def test_vectorised_rule_equals_router(default_model, belief, lam, observe):
    sc = load_simulator().scenario(300, 11)
    a = strong_share(default_model, lam, sc, belief=belief, observe_regenerated=observe)
    b = strong_share(default_model, lam, sc, belief=belief, vectorised=True,
                     observe_regenerated=observe)
    for k in ("accuracy", "mean_strong_tokens", "mean_strong_calls", "target_token_frac"):
        assert a[k] == b[k], k


def test_booking_strong_scores_changes_the_filters_decisions(default_model):
    """The check above can fail: booking the strong step's score moves the filter's min."""
    sc = load_simulator().scenario(300, 11)
    a = strong_share(default_model, 0.05, sc, vectorised=True, observe_regenerated=True)
    b = strong_share(default_model, 0.05, sc, vectorised=True, observe_regenerated=False)
    assert a["mean_strong_calls"] != b["mean_strong_calls"]


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
    assert "budget search [model:my-pair" in cap.err  # progress lines name the simulator
    assert out["simulated_problems"] in ("built", "memory")
    pol = json.loads((tmp_path / "p.json").read_text())
    assert pol["lam"] == pytest.approx(out["lambda"])
    assert np.isfinite(out["value_t0"])
    assert TrimPOMDP(model=own, lam=out["lambda"]).lam == out["lambda"]


def _same_scenario(a, b):
    for f in ("L", "p_w", "p_s", "u_w", "u_s", "n_w", "n_s", "sc_ok", "sc_err", "sc_post",
              "ss_ok", "ss_err", "ss_post", "problem", "n_w_err", "n_w_post", "n_s_err",
              "n_s_post"):
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=f)
    assert (a.seed, a.source) == (b.seed, b.source)


def test_scenario_cache_returns_the_simulators_draws(default_model, tmp_path, monkeypatch):
    ref = load_simulator().scenario(200, 3)
    sc, name, where = budget_scenario(default_model, 200, 3)
    assert where == "built" and "calibrated" in name
    _same_scenario(sc, ref)
    files = list((tmp_path / "cache").glob("budget_scenario_*_200_3.npz"))
    assert len(files) == 1
    assert budget_scenario(default_model, 200, 3)[2] == "memory"
    monkeypatch.setattr(tuning, "_SCENARIOS", {})
    sc2, _, where2 = budget_scenario(default_model, 200, 3)
    assert where2 == "disk"
    _same_scenario(sc2, ref)
    files[0].write_bytes(b"not an npz")  # a damaged cache file is rebuilt, not fatal
    monkeypatch.setattr(tuning, "_SCENARIOS", {})
    sc3, _, where3 = budget_scenario(default_model, 200, 3)
    assert where3 == "built"
    _same_scenario(sc3, ref)
    assert budget_scenario(default_model, 200, 3, cache=False)[2] == "built"


def test_no_cache_env_writes_nothing(default_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIMPOMDP_NO_CACHE", "1")
    assert budget_scenario(default_model, 50, 1)[2] == "built"
    assert not (tmp_path / "cache").exists()


def test_own_model_scenario_is_its_naive_simulators(default_model):
    own = default_model.replace(p_weak=0.8, name="my-pair")
    sc, name, where = budget_scenario(own, 150, 4)
    assert "my-pair" in name and where == "built"
    _same_scenario(sc, NaiveSimulator(own).scenario(150, 4))


@pytest.mark.parametrize("own,budget", [(False, 0.25), (True, 0.15), (True, 0.22)])
def test_fast_search_finds_the_bisection_lambda(default_model, own, budget):
    """Same scenario and fine tolerance, so the crossing is the same: the two λ agree within
    the search tolerance; the fast search needs fewer fine solves."""
    model = default_model.replace(p_weak=0.85, name="my-pair") if own else default_model
    old = search_budget(model, budget, n=300, method="bisect")
    new = search_budget(model, budget, n=300)
    assert abs(new.lam - old.lam) <= 2e-3, (old, new)
    assert new.share <= budget and old.share <= budget
    # never more evaluations, and fewer of them at the fine (costly) solver tolerance
    assert new.evaluations <= old.evaluations and new.method == "fast"
    assert new.fine_solves < old.fine_solves
    fine = FiniteHorizonSolver(tol=1e-3)
    sc = budget_scenario(model, 300, 0)[0]
    below = strong_share(model, new.lam - 2e-3, sc, vectorised=True, solver=fine)
    assert below["strong_share"] > budget  # one tolerance lower overspends: it is the crossing


def test_search_rejects_an_unknown_method(default_model):
    with pytest.raises(InputError, match="method"):
        search_budget(default_model, 0.2, n=50, method="golden")
