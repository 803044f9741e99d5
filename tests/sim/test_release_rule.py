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


def test_error_score_factor_keeps_marginals_and_adds_the_measured_dependence():
    """Assumption 7b: r > 0 ties a solution's err / post draws (normal-score correlation ≈ r)
    but leaves every class's marginal and the r = 0 draws unchanged."""
    from scipy.special import ndtri
    from scipy.stats import ks_2samp

    base = load_simulator()
    p0 = base.with_shape(error_score_corr=0.0)
    p1 = base.with_shape(error_score_corr=0.27)
    a, b = p0.scenario(3000, seed=9), p1.scenario(3000, seed=9)
    np.testing.assert_array_equal(a.sc_ok, b.sc_ok)  # only err / post draws move
    np.testing.assert_array_equal(a.u_w, b.u_w)
    # marginals: the values of a row share one factor, so compare by the KS distance (a p-value
    # would count 90,000 dependent values as independent); a real shift of the pool would show
    # as D > 0.05
    for k in ("sc_err", "sc_post", "ss_post", "n_w_err"):
        assert ks_2samp(getattr(a, k).ravel(), getattr(b, k).ravel()).statistic < 0.02, k
    # within-problem normal scores of two post draws of one solution: correlated only with r > 0
    def corr(sc):
        x, y = sc.sc_post[:, 3], sc.sc_post[:, 7]
        same = sc.problem
        zx, zy = [], []
        for j in np.unique(same):
            m = same == j
            if m.sum() < 8:
                continue
            for v, out in ((x[m], zx), (y[m], zy)):
                r = np.argsort(np.argsort(v, kind="stable"), kind="stable")
                out.extend(ndtri((r + 0.5) / m.sum()))
        return np.corrcoef(zx, zy)[0, 1]
    assert abs(corr(a)) < 0.08 and corr(b) > 0.12


def test_error_score_correlation_of_toy_traces():
    from trimpomdp.data.schema import StepTrace
    from trimpomdp.sim.pools import error_score_correlation

    rng = np.random.default_rng(0)
    traces = []
    for j in range(40):
        for k in range(6):
            w = rng.standard_normal()
            s = [0.9, float(np.clip(0.2 + 0.05 * w, 0.01, 0.34))] + [
                float(np.clip(0.3 + 0.05 * w + 0.01 * rng.standard_normal(), 0, 1))
                for _ in range(3)]
            traces.append(StepTrace(problem_id=f"p{j}#{k}", scores=tuple(s), tokens=(10,) * 5,
                                    correct=False))
    c = error_score_correlation(traces)
    assert c["err_post"] > 0.8 and c["post_post"] > 0.8
    with pytest.raises(InputError):
        error_score_correlation(traces[:2])
