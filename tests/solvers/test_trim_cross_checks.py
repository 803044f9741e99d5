"""TRIM solver against generic solvers on exported instances, and the pomdpsol binding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver
from trimpomdp.solvers.pomdpsol import find_pomdpsol, parse_bounds, read_appl_policy
from trimpomdp.builders import observation_model

FILES = Path(__file__).parent / "files"


def coarse(model, bin_size=0.5):
    return model.replace(obs_probs=observation_model(model).bin_probs(bin_size), bin_size=bin_size)


@pytest.mark.parametrize("bins,t,n,b", [(0.25, 29, 80, [0.6, 0.1, 0.3]),
                                        (0.5, 28, 35, [0.3, 0.2, 0.5]),
                                        (0.5, 27, 120, [0.7, 0.1, 0.2])])
def test_exported_instance_matches_model(default_model, bins, t, n, b):
    """The tabular export encodes the same dynamics: its exact finite-horizon value equals ours."""
    pomdp = TrimPOMDP(model=coarse(default_model, bins), lam=0.25)
    policy = FiniteHorizonSolver(tol=1e-12).solve(pomdp)
    tab = pomdp.to_tabular(t, n, b)
    # exact value iteration over the tabular model on the belief tree (2 to 4 stages left)
    val = _tree_value(tab, np.asarray(tab.b0), depth=6)
    assert val == pytest.approx(policy.value(t, n, b), abs=1e-6)


def _tree_value(tab, b, depth):
    T = tab.dense_T() if callable(getattr(tab, "dense_T", None)) else np.asarray(tab.T)
    O, R = np.asarray(tab.O), np.asarray(tab.R)
    if depth == 0 or b[-1] > 1 - 1e-12:
        return 0.0
    best = -np.inf
    for a in range(R.shape[0]):
        pred = b @ T[a]
        q = b @ R[a]
        joint = pred[:, None] * O[a]  # (S', O)
        po = joint.sum(axis=0)
        for o in np.flatnonzero(po > 1e-300):
            q += tab.discount * po[o] * _tree_value(tab, joint[:, o] / po[o], depth - 1)
        best = max(best, q)
    return best


def test_generic_point_based_lower_bound_below_exact(default_model):
    from trimpomdp.solvers.point_based import PointBasedSolver

    pomdp = TrimPOMDP(model=coarse(default_model), lam=0.25)
    policy = FiniteHorizonSolver(tol=1e-12).solve(pomdp)
    tab = pomdp.to_tabular(24, 60, [0.5, 0.2, 0.3])
    _, info = PointBasedSolver(n_beliefs=300, timeout=10, seed=0).solve_info(tab)
    ours = policy.value(24, 60, [0.5, 0.2, 0.3])
    assert info.lower <= ours + 1e-6
    assert info.lower >= ours - 0.5  # a decent point-based solver gets close


def test_read_appl_policy_and_bounds():
    alphas, actions = read_appl_policy(FILES / "tiny.policy")
    assert alphas.shape == (3, 2) and actions.tolist() == [0, 1, 2]
    out = ("Time   |#Trial |#Backup |LBound    |UBound    |Precision  |#Alphas |#Beliefs\n"
           " 0      0       0        -20        92.8206    112.821     3        1\n"
           " 0.01   44      245      19.3709    19.3715    0.000591    8        34\n")
    assert parse_bounds(out) == (19.3709, 19.3715)


@pytest.mark.skipif(find_pomdpsol() is None, reason="pomdpsol (SARSOP) is not installed on PATH "
                    "or $POMDPSOL; this machine cannot download or build it")
def test_value_within_pomdpsol_bounds(default_model):
    from trimpomdp.solvers.pomdpsol import PomdpsolSolver

    pomdp = TrimPOMDP(model=default_model, lam=0.25)
    policy = FiniteHorizonSolver(tol=1e-7).solve(pomdp)
    for t, n, b in [(25, 60, [0.6, 0.1, 0.3]), (10, 120, [0.3, 0.2, 0.5])]:
        _, info = PomdpsolSolver(timeout=20).solve_info(pomdp.to_tabular(t, n, b))
        assert info.lower - 1e-3 <= policy.value(t, n, b) <= info.upper + 1e-3


def test_sarsop_style_bounds_bracket_exact_value(default_model):
    """Our SARSOP-class solver's [lower, upper] at the start belief contains our exact value."""
    from trimpomdp.solvers.sarsop import SARSOPSolver

    pomdp = TrimPOMDP(model=default_model, lam=0.25)
    policy = FiniteHorizonSolver(tol=1e-7).solve(pomdp)
    t, n, b = 27, 80, [0.6, 0.1, 0.3]
    _, info = SARSOPSolver(timeout=8, precision=1e-3).solve_info(pomdp.to_tabular(t, n, b))
    ours = policy.value(t, n, b)
    assert info.lower - 1e-6 <= ours <= info.upper + 1e-6
    assert info.upper - info.lower < 1.0  # the bounds are informative (episodic, γ ≈ 1)
