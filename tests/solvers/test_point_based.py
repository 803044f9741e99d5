"""PBVI/Perseus, QMDP/FIB/blind bounds, sawtooth interpolation and simulation-based evaluation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trimpomdp.errors import InputError
from trimpomdp.pomdp.cassandra import read_cassandra
from trimpomdp.pomdp.tabular import TabularPOMDP
from trimpomdp.solvers.bounds import (
    FIBSolver,
    PreparedPOMDP,
    QMDPSolver,
    SawtoothUpperBound,
    blind_alphas,
    fib_values,
    qmdp_values,
)
from trimpomdp.solvers.evaluate import evaluate_policy
from trimpomdp.solvers.point_based import PointBasedSolver

TIGER = Path(__file__).parents[1] / "pomdp" / "files" / "tiger_named.pomdp"
TIGER_VALUE = 19.3713  # SARSOP (C++), NativeSARSOP.jl


@pytest.fixture(scope="module")
def tiger():
    return read_cassandra(TIGER)


@pytest.mark.parametrize("method", ["perseus", "pbvi"])
def test_point_based_reaches_the_tiger_value(tiger, method):
    pol, info = PointBasedSolver(method=method, n_beliefs=100, timeout=20).solve_info(tiger)
    assert info.lower == pytest.approx(TIGER_VALUE, abs=0.01)
    assert info.lower <= TIGER_VALUE + 1e-3 <= info.upper
    assert pol.value(tiger.b0) == pytest.approx(info.lower)


def test_bounds_are_ordered(tiger):
    K = PreparedPOMDP(tiger)
    q, f, blind = qmdp_values(K), fib_values(K), blind_alphas(K)
    assert np.all(f <= q + 1e-9)
    b0 = K.b0
    assert (blind @ b0).max() <= TIGER_VALUE <= (f @ b0).max() <= (q @ b0).max()
    # blind vectors are the values of the blind policies: listen forever = -1/(1-0.95)
    assert blind[0] == pytest.approx([-20.0, -20.0], abs=1e-6)
    for solver in (QMDPSolver(), FIBSolver()):
        _, info = solver.solve_info(tiger)
        assert info.lower <= TIGER_VALUE <= info.upper


def test_sawtooth_interpolates_points_and_stays_below_corners():
    st = SawtoothUpperBound(np.array([10.0, 10.0, 10.0]))
    b1 = np.array([0.5, 0.5, 0.0])
    st.add(b1, 4.0)
    assert st.value(b1) == pytest.approx(4.0)
    assert st.value(np.array([1.0, 0, 0])) == pytest.approx(10.0)   # corner untouched
    # halfway between b1 and the corner e3: phi = 0.5 -> 10 + 0.5 * (4 - 10) = 7
    assert st.value(np.array([0.25, 0.25, 0.5])) == pytest.approx(7.0)
    # batch evaluation equals one-by-one, brute force formula
    rng = np.random.default_rng(0)
    for _ in range(20):
        st.add(rng.dirichlet(np.ones(3)), float(rng.uniform(0, 10)))
    Q = rng.dirichlet(np.ones(3), size=50)
    brute = []
    for q in Q:
        vals = [q @ st.corner]
        for idx, val, v in zip(st._idx, st._val, st.v):
            phi = np.min(q[idx] / val)
            vals.append(q @ st.corner + phi * (v - st.corner[idx] @ val))
        brute.append(min(vals))
    np.testing.assert_allclose(st.values(Q), brute, atol=1e-12)


def test_evaluation_interval_contains_the_policy_value(tiger):
    pol, info = PointBasedSolver(method="pbvi", n_beliefs=100, timeout=20).solve_info(tiger)
    ev = evaluate_policy(tiger, pol, runs=4000, seed=3)
    assert ev.ci_low - ev.truncation <= info.lower + 0.02 and info.lower - 0.02 <= ev.ci_high
    again = evaluate_policy(tiger, pol, runs=4000, seed=3)
    assert again.mean == ev.mean  # fixed seeds: reproducible


def test_evaluation_of_a_bad_policy_is_below_the_optimum(tiger):
    from trimpomdp.policies.alpha_vector import AlphaVectorPolicy

    always_open = AlphaVectorPolicy(alphas=np.zeros((1, 2)), actions=np.array([1]), pomdp=tiger)
    ev = evaluate_policy(tiger, always_open, runs=2000, seed=0)
    assert ev.ci_high < TIGER_VALUE and ev.mean == pytest.approx(-45 / 0.05, rel=0.1)


def test_terminal_states_end_simulations():
    T = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    m = TabularPOMDP(T=T, O=np.ones((1, 2, 1)), R=np.array([[1.0, 5.0]]), discount=0.5,
                     b0=np.array([1.0, 0.0]), terminal=np.array([False, True]))
    from trimpomdp.policies.alpha_vector import AlphaVectorPolicy

    pol = AlphaVectorPolicy(alphas=np.zeros((1, 2)), actions=np.array([0]), pomdp=m)
    assert evaluate_policy(m, pol, runs=10, horizon=20).mean == pytest.approx(1.0)
    _, info = PointBasedSolver(method="pbvi", timeout=5).solve_info(m)
    assert info.lower == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("kw, match", [
    ({"method": "magic"}, "method"), ({"horizon": -1}, "horizon"), ({"timeout": 0}, "timeout"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(InputError, match=match):
        PointBasedSolver(**kw)
