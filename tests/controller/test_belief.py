import math

import numpy as np
import pytest

from trimpomdp.belief import (
    BayesFilterUpdater,
    Belief,
    BinnedDensity,
    InterpolatedDensity,
    SingleObservationUpdater,
    make_density,
    trim_transitions,
)
from trimpomdp.errors import InputError
from trimpomdp.observation.binned import bin_index
from trimpomdp.builders import observation_model


def test_belief_invariants():
    with pytest.raises(InputError):
        Belief(probs=(0.5, 0.5, 0.5))
    with pytest.raises(InputError):
        Belief(probs=(math.nan, 0.5, 0.5))
    with pytest.raises(InputError):
        Belief(probs=(1.0, 0.0))
    b = Belief.of([2, 1, 1])
    assert b.probs == pytest.approx((0.5, 0.25, 0.25))
    assert b.most_likely == 0 and Belief.uniform().to_list() == pytest.approx([1 / 3] * 3)


def test_binned_density_matches_bin_index(default_model):
    d = BinnedDensity(default_model.obs_probs, default_model.bin_size)
    rng = np.random.default_rng(0)
    X = rng.random((200, 2))
    X[:5] = [[1.0, 1.0], [0.0, 0.0], [0.05, 0.95], [1.0, 0.0], [0.9999, 0.05]]
    idx = bin_index(X, default_model.bin_size)
    for x, i in zip(X, idx):
        assert d(*x) == pytest.approx(tuple(default_model.obs_probs[:, i]))


def test_interpolated_density_equals_bins_at_centres(default_model):
    d = InterpolatedDensity(default_model.obs_probs, 0.05)
    b = BinnedDensity(default_model.obs_probs, 0.05)
    for x, y in [(0.025, 0.025), (0.475, 0.925), (0.975, 0.975)]:
        assert d(x, y) == pytest.approx(b(x, y))
    mid = d(0.5, 0.5)  # halfway between four centres: their mean
    cs = [b(0.475, 0.475), b(0.475, 0.525), b(0.525, 0.475), b(0.525, 0.525)]
    assert mid == pytest.approx(tuple(np.mean(cs, axis=0)))


def test_bayes_filter_against_brute_force(default_model):
    """Filter = explicit sum over hidden class paths (brute force) on a short sequence."""
    m = default_model
    up = BayesFilterUpdater.from_model(m, "binned")
    dens = BinnedDensity(m.obs_probs, m.bin_size)
    Ts = trim_transitions(m.p_weak, m.p_strong)
    obs = [(1.0, 0.9), (0.9, 0.2), (0.9, 0.6), (0.6, 0.97)]
    acts = [0, 1, 0]
    b = up.update(None, None, obs[0])
    for a, o in zip(acts, obs[1:]):
        b = up.update(b, a, o)
    # brute force over paths c0..c3
    import itertools
    post = np.zeros(3)
    p0 = np.array([1.0, 0.0, 0.0]) @ Ts[0]
    for path in itertools.product(range(3), repeat=4):
        w = p0[path[0]] * dens(*obs[0])[path[0]]
        for t in range(1, 4):
            w *= Ts[acts[t - 1]][path[t - 1], path[t]] * dens(*obs[t])[path[t]]
        post[path[-1]] += w
    np.testing.assert_allclose(b.as_array(), post / post.sum(), rtol=1e-10)


def test_zero_evidence_keeps_prediction_never_nan(default_model):
    up = BayesFilterUpdater(trim_transitions(0.9, 0.97), lambda a, b: (0.0, 0.0, 0.0))
    b = up.update(None, None, (1.0, 0.5))
    assert b.fallback and b.probs == pytest.approx(up.initialize().probs)
    b2 = up.update(b, 1, (0.5, 0.5))
    assert b2.fallback and all(math.isfinite(x) for x in b2.probs)
    # a density zero for some classes only is ordinary evidence
    up2 = BayesFilterUpdater(trim_transitions(0.9, 0.97), lambda a, b: (1.0, 0.0, 0.0))
    assert up2.update(None, None, (1, 1)).probs == (1.0, 0.0, 0.0)
    so = SingleObservationUpdater(lambda a, b: (0.0, 0.0, 0.0))
    r = so.update(None, None, (0.3, 0.3))
    assert r.fallback and r.probs == pytest.approx((1 / 3,) * 3)


def test_single_observation_is_uniform_prior_posterior(default_model):
    so = SingleObservationUpdater.from_model(default_model, "binned")
    p = observation_model(default_model).predict_proba([[0.8, 0.3]])[0]
    b = so.update(Belief(probs=(0.0, 1.0, 0.0)), 1, (0.8, 0.3))  # prior and action are ignored
    np.testing.assert_allclose(b.as_array(), p, rtol=1e-9)


def test_closeness_gate():
    so = SingleObservationUpdater(lambda a, b: (1, 1, 1), gate=0.4)
    assert so.consult(Belief(probs=(0.5, 0.1, 0.4)))
    assert not so.consult(Belief(probs=(0.8, 0.05, 0.15)))
    assert so.consult(Belief(probs=(0.3, 0.3, 0.4)))  # S2 is the most likely
    assert SingleObservationUpdater(lambda a, b: (1, 1, 1), gate=None).consult(
        Belief(probs=(1.0, 0.0, 0.0)))
    with pytest.raises(InputError):
        SingleObservationUpdater(lambda a, b: (1, 1, 1), gate=1.5)


def test_make_density_rejects_unknown(default_model):
    with pytest.raises(InputError, match="density"):
        make_density(default_model, "gaussian")
    assert callable(make_density(default_model, "continuous"))


def test_filter_matches_pomdp_transitions(default_model):
    trim = pytest.importorskip("trimpomdp.pomdp.trim")
    pomdp = trim.TrimPOMDP(model=default_model, lam=0.1)
    ours = trim_transitions(default_model.p_weak, default_model.p_strong)
    for a in (0, 1):
        np.testing.assert_allclose(pomdp.transition_matrix(a), ours[a])
