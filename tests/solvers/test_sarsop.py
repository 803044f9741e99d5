"""SARSOP-style solver: converged values of the classic benchmarks, valid bounds, save/load."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from trimpomdp.errors import InputError
from trimpomdp.policies.alpha_vector import AlphaVectorPolicy
from trimpomdp.pomdp.cassandra import read_cassandra
from trimpomdp.solvers.evaluate import evaluate_policy
from trimpomdp.solvers.point_based import PointBasedSolver
from trimpomdp.solvers.sarsop import SARSOPSolver

TIGER = Path(__file__).parents[1] / "pomdp" / "files" / "tiger_named.pomdp"

#: SARSOP (C++ pomdpsol) converged values, issue 8.
CONVERGED = {"paint95.pomdp": 20.0, "shuttle95.pomdp": 32.889, "cheese95.pomdp": 3.485,
             "mini-hall2.pomdp": 2.714}


def test_tiger_converges_to_sarsop_value():
    m = read_cassandra(TIGER)
    pol, info = SARSOPSolver(precision=1e-3, timeout=20).solve_info(m)
    assert info.converged and info.upper - info.lower <= 1e-3
    assert info.lower == pytest.approx(19.371, abs=0.01)
    assert info.lower <= 19.3713 + 1e-3 and info.upper >= 19.3713 - 1e-3
    assert pol.value(m.b0) == pytest.approx(info.lower)
    assert info.backups > 0 and info.n_alpha == len(pol)
    assert info.gap_trace[-1][1:] == (info.lower, info.upper)
    # the lower bound never decreases and the upper bound never increases over the trace
    lows = [t[1] for t in info.gap_trace]
    ups = [t[2] for t in info.gap_trace]
    assert all(np.diff(lows) >= -1e-9) and all(np.diff(ups) <= 1e-9)


def test_sarsop_agrees_with_point_based_on_tiger():
    m = read_cassandra(TIGER)
    _, s = SARSOPSolver(precision=1e-4, timeout=20).solve_info(m)
    _, p = PointBasedSolver(method="pbvi", n_beliefs=200, timeout=20).solve_info(m)
    assert p.lower <= s.upper + 1e-9
    assert abs(p.lower - s.lower) < 0.01


@pytest.mark.parametrize("name", sorted(CONVERGED))
def test_small_classics_converge_to_sarsop_values(shared_data, name):
    m = read_cassandra(os.path.join(shared_data, "pomdp", name))
    _, info = SARSOPSolver(precision=1e-3, timeout=15).solve_info(m)
    assert info.converged, (info.lower, info.upper)
    assert info.lower == pytest.approx(CONVERGED[name], abs=1e-2)


def test_rocksample_4_4(shared_data):
    m = read_cassandra(os.path.join(shared_data, "pomdp", "RockSample_4_4.pomdp"))
    _, info = SARSOPSolver(precision=1e-2, timeout=20).solve_info(m)
    assert info.lower <= 17.9245 + 1e-3 <= info.upper + 2e-3
    assert info.lower == pytest.approx(17.9245, abs=0.02)


@pytest.mark.parametrize("name", ["mini-hall2.pomdp", "network.pomdp", "tiger-grid.pomdp"])
def test_bounds_bracket_the_simulated_value(shared_data, name):
    m = read_cassandra(os.path.join(shared_data, "pomdp", name))
    pol, info = SARSOPSolver(precision=1e-3, timeout=3).solve_info(m)
    ev = evaluate_policy(m, pol, runs=1500, seed=11)
    # lower bound is a real policy value: the simulated value is not significantly below it
    assert info.lower <= ev.ci_high + ev.truncation
    # upper bound is never below what a policy achieves
    assert info.upper >= ev.ci_low - ev.truncation


def test_timeout_is_respected_in_cpu_seconds(shared_data):
    m = read_cassandra(os.path.join(shared_data, "pomdp", "Hallway.pomdp"))
    _, info = SARSOPSolver(precision=1e-6, timeout=1.0).solve_info(m)
    assert not info.converged and info.seconds < 2.0
    assert info.lower < info.upper


def test_policy_save_load_round_trip(tmp_path):
    m = read_cassandra(TIGER)
    pol = SARSOPSolver(timeout=10).solve(m)
    pol.save(tmp_path / "p.json")
    back = AlphaVectorPolicy.load(tmp_path / "p.json", pomdp=m)
    np.testing.assert_array_equal(back.alphas, pol.alphas)
    np.testing.assert_array_equal(back.actions, pol.actions)
    b = np.array([0.9, 0.1])
    assert back.action(b) == pol.action(b) and back.value(b) == pol.value(b)
    np.testing.assert_allclose(back.update(m.b0, 0, 0), [0.85, 0.15])


def test_loading_a_policy_for_another_model_fails(tmp_path):
    m = read_cassandra(TIGER)
    AlphaVectorPolicy(alphas=np.zeros((1, 3)), actions=np.array([0])).save(tmp_path / "p.json")
    with pytest.raises(InputError, match="3 states but the POMDP has 2"):
        AlphaVectorPolicy.load(tmp_path / "p.json", pomdp=m)
    (tmp_path / "q.json").write_text('{"kind": "alpha_vector_policy", "schema_version": 99}')
    with pytest.raises(InputError, match="schema_version"):
        AlphaVectorPolicy.load(tmp_path / "q.json")


@pytest.mark.parametrize("kw", [{"precision": -1}, {"timeout": 0}, {"max_trials": 0}])
def test_bad_parameters(kw):
    with pytest.raises(InputError):
        SARSOPSolver(**kw)


def test_pruning_keeps_the_vectors_a_kept_vector_was_built_from():
    from trimpomdp.solvers.sarsop import AlphaSet

    G = AlphaSet(np.array([[0.0, 0.0], [1.0, -1.0]]), np.array([0, 1]))
    G.add(np.array([2.0, -3.0]), 1, refs=np.array([0, 0]))   # ids 0, 1, 2 (no dominance)
    G.add(np.array([-1.0, 3.0]), 0, refs=np.array([2, 2]))   # id 3, built from vector 2
    keep = np.zeros(len(G), bool)
    keep[-1] = True                                          # a witness keeps only id 3
    G.keep(keep)
    assert sorted(G.ids.tolist()) == [0, 2, 3]               # 3 -> 2 -> 0; 1 unreferenced
    # a reference to a vector removed as dominated follows the dominating vector
    H = AlphaSet(np.array([[0.0, 0.0]]), np.array([0]))
    H.add(np.array([1.0, 1.0]), 0, refs=np.array([0]))       # removes vector 0 (dominated)
    H.add(np.array([-5.0, 5.0]), 0, refs=np.array([0]))
    H.keep(np.array([False, True]))
    assert sorted(H.ids.tolist()) == [1, 2]
