"""The release's runtime rule as the simulator reproduces it (trimpomdp.sim.release_rule)."""
import math

import numpy as np
import pytest

from trimpomdp import InputError
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.sim import load_simulator, simulate
from trimpomdp.sim.release_rule import (
    RELEASE_TOKEN_BINS,
    ReleaseKDE,
    ReleaseTablePolicy,
    release_factory,
    release_kde,
    snap_belief,
    snap_tokens,
)
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver


def _kde_reference(kde, c, x, y):
    """The release's ReflectedKDEObservationModel.pdf, written out (9 reflections, 2-D normal)."""
    pts, cov = kde._pts[c], kde._cov[c]
    inv, det = np.linalg.inv(cov), np.linalg.det(cov)
    tot = 0.0
    for xr in (x, 2 - x, -x):
        for yr in (y, 2 - y, -y):
            d = np.array([xr, yr])[None, :] - pts
            q = np.einsum("ni,ij,nj->n", d, inv, d)
            tot += float(np.mean(np.exp(-0.5 * q)) / (2 * math.pi * math.sqrt(det)))
    return tot


def test_kde_exact_grid_and_interpolation_agree_with_the_release_formula():
    kde = release_kde()
    rng = np.random.default_rng(3)
    pts = rng.random((12, 2))
    pts[0] = (1.0, 0.02)  # first step (min = 1) with a low score
    ref = np.array([[_kde_reference(kde, c, x, y) for c in range(3)] for x, y in pts])
    np.testing.assert_allclose(kde.pdf_exact(pts[:, 0], pts[:, 1]), ref, rtol=1e-10)
    # grid nodes: the separable evaluation equals the direct one
    g = np.linspace(0, 1, kde.table.shape[0])
    np.testing.assert_allclose(kde.table[[0, 57, 200], [200, 3, 101]],
                               kde.pdf_exact(g[[0, 57, 200]], g[[200, 3, 101]]), rtol=1e-9)
    inter = np.array([kde(x, y) for x, y in pts])
    post = inter / inter.sum(1, keepdims=True)
    np.testing.assert_allclose(post, ref / ref.sum(1, keepdims=True), atol=2e-3)
    # first step, low score: S2 (first error) dominates; low min and low score: S1
    assert np.argmax(kde(1.0, 0.02)) == 2 and np.argmax(kde(0.05, 0.05)) == 1


def test_kde_bad_grid():
    with pytest.raises(InputError):
        ReleaseKDE(grid=0.3)


@pytest.mark.parametrize("b, want", [
    ((1 / 3, 1 / 3, 1 / 3), (0.325, 0.325, 0.35)),
    ((0.5, 0.25, 0.25), (0.5, 0.25, 0.25)),
    ((0.01, 0.012, 0.978), (0.0, 0.025, 0.975)),
    ((0.2, 0.51, 0.29), (0.2, 0.5, 0.3)),
])
def test_snap_belief_is_the_releases_nearest_grid_point(b, want):
    got = snap_belief(b)
    assert got == pytest.approx(want)
    assert sum(got) == pytest.approx(1.0)
    # it is the nearest grid point (L2) among the neighbours
    grid = [(i / 40, j / 40, 1 - (i + j) / 40) for i in range(41) for j in range(41 - i)]
    best = min(grid, key=lambda p: sum((u - v) ** 2 for u, v in zip(p, b)))
    assert np.linalg.norm(np.subtract(got, b)) <= np.linalg.norm(np.subtract(best, b)) + 1e-12


def test_snap_tokens():
    assert snap_tokens(1) == 5 and snap_tokens(62) == 50 and snap_tokens(63) == 75
    assert snap_tokens(3000) == 500 and snap_tokens(87) == 75 and snap_tokens(88) == 100
    assert set(snap_tokens(n) for n in range(1, 700)) == set(RELEASE_TOKEN_BINS)


@pytest.fixture(scope="module")
def policy(default_model):
    return FiniteHorizonSolver().solve(TrimPOMDP(model=default_model, lam=0.35))


def test_table_policy_ignores_the_last_step_and_snaps(policy):
    t = ReleaseTablePolicy(policy)
    b = np.array([0.2, 0.1, 0.7])
    np.testing.assert_allclose(t.q_values_unchecked(3, 63.0, b, final=True),
                               policy.q_values(3, 75, snap_belief(b), final=False))
    exact = ReleaseTablePolicy(policy, snap=False, use_final=True)
    np.testing.assert_allclose(exact.q_values(3, 63, b, final=True),
                               policy.q_values(3, 63, b, final=True))
    with pytest.raises(InputError):
        ReleaseTablePolicy(object())


def test_strong_scores_in_the_min_cut_vain_regenerations(policy):
    """After a wrong strong step the release's min drops, so later post-error drafts read as S1
    and are kept: observing the strong scores lowers strong calls on wrong prefixes."""
    sim = load_simulator()
    sc = sim.scenario(400, seed=5)
    make = release_factory(policy)
    seen = simulate(make, sc, observe_regenerated=True)
    blind = simulate(make, sc, observe_regenerated=False)
    assert seen.strong_calls.sum() < blind.strong_calls.sum()
    # identical on problems that never regenerated
    none = blind.strong_calls == 0
    np.testing.assert_array_equal(seen.correct[none], blind.correct[none])
