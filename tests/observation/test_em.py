"""EM fit of P(o | c) and the next-step accuracy from outcome-labelled traces."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from trimpomdp.builders import em_trim_model
from trimpomdp.data import StepTrace
from trimpomdp.errors import InputError, NotFittedError
from trimpomdp.model import TrimModel
from trimpomdp.observation import load_observation_model
from trimpomdp.observation.binned import bin_index
from trimpomdp.observation.em import (
    BANDWIDTH_GRID,
    LatentClassObservationModel,
    fit_accuracy,
    simulate_outcome_traces,
    trace_log_likelihood,
)

BS = 0.25  # 16 bins: small synthetic problems that fit in well under a second


def _truth(rng: np.random.Generator, k: int = 4) -> np.ndarray:
    """Three well-separated class distributions on a k x k grid (S0 high, S2 low current)."""
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    s0 = np.exp(1.5 * (i + j))
    s1 = np.exp(-1.0 * i + 0.3 * j)
    s2 = np.exp(1.0 * i - 1.5 * j)
    P = np.stack([s0.ravel(), s1.ravel(), s2.ravel()]) * rng.uniform(0.8, 1.2, (3, k * k))
    return P / P.sum(axis=1, keepdims=True)


def _hazard(mean_len: int = 6) -> np.ndarray:
    h = np.zeros(31)
    h[2:] = 1.0 / (mean_len - 1)
    h[30] = 1.0
    return h


def _brute(P, p, seq, y, eps, bs=BS):
    """Sum over every first-error position (the reference for forward-backward)."""
    b = bin_index(seq, bs)
    L = len(seq)
    probs, paths = [], []
    for e in range(L + 1):
        c = np.where(np.arange(L) < e, 0, np.where(np.arange(L) == e, 2, 1))
        pr = p ** min(e, L) * ((1 - p) if e < L else 1.0) * np.prod(P[c, b])
        q = 1.0 if c[-1] == 0 else eps
        pr *= 1.0 if np.isnan(y) else (q if y == 1 else 1 - q)
        probs.append(pr)
        paths.append(c)
    probs = np.asarray(probs)
    post = sum(w * np.eye(3)[c] for w, c in zip(probs, paths)) / probs.sum()
    return np.log(probs.sum()), post


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    P = _truth(rng)
    X, y, cls = simulate_outcome_traces(P, 0.85, _hazard(), 3000, bin_size=BS, random_state=1)
    return P, X, y, cls


def test_forward_backward_matches_enumeration_of_first_errors():
    rng = np.random.default_rng(3)
    P = _truth(rng)
    X, y, _ = simulate_outcome_traces(P, 0.8, _hazard(), 40, bin_size=BS, random_state=2)
    y[::7] = np.nan  # unknown outcomes are marginalised
    ll = trace_log_likelihood(P, 0.8, X, y, epsilon=0.15, bin_size=BS)
    ref = [_brute(P, 0.8, s, v, 0.15) for s, v in zip(X, y)]
    np.testing.assert_allclose(ll, [r[0] for r in ref], rtol=1e-10)
    est = LatentClassObservationModel(bin_size=BS)
    est._set(P)
    est.p_, est.epsilon_ = 0.8, 0.15
    for g, (_, post) in zip(est.posteriors(X, y), ref):
        np.testing.assert_allclose(g, post, atol=1e-10)


def test_outcome_pins_the_classes(synthetic):
    P, X, y, cls = synthetic
    est = LatentClassObservationModel(bin_size=BS, n_init=2).fit(X, y)
    post = est.posteriors(X, y)
    for g, v, c in zip(post, y, cls):
        if v == 1:  # a correct answer with epsilon = 0 means every step is S0
            np.testing.assert_allclose(g[:, 0], 1.0)
        else:  # a wrong answer has exactly one S2 (the first error)
            assert g[:, 2].sum() == pytest.approx(1.0)
    assert est.classes_.tolist() == [0, 1, 2]


def test_recovers_truth_on_synthetic_traces(synthetic):
    P, X, y, _ = synthetic
    est = LatentClassObservationModel(bin_size=BS, alpha=0.1, n_init=3).fit(X, y)
    tv = 0.5 * np.abs(est.probs_ - P).sum(axis=1)
    assert np.all(tv <= 0.05), tv
    assert abs(est.p_ - 0.85) <= 0.01
    assert est.converged_
    assert est.restart_logliks_.shape == (3,)
    assert est.lower_bound_ == pytest.approx(est.restart_logliks_.max())


def test_loglik_is_monotone_without_smoothing(synthetic):
    _, X, y, _ = synthetic
    est = LatentClassObservationModel(bin_size=BS, alpha=0.0, n_init=1, tol=0.0,
                                      max_iter=30).fit(X, y)
    h = est.loglik_history_
    assert h.shape == (30,)
    assert np.all(np.diff(h) >= -1e-6 * abs(h[-1]))
    assert h[-1] > h[0]


def test_learned_epsilon_recovers_noisy_outcomes():
    rng = np.random.default_rng(5)
    P = _truth(rng)
    X, y, _ = simulate_outcome_traces(P, 0.85, _hazard(), 4000, epsilon=0.2, bin_size=BS,
                                      random_state=6)
    est = LatentClassObservationModel(bin_size=BS, learn_epsilon=True, epsilon=0.05,
                                      n_init=2).fit(X, y)
    assert abs(est.epsilon_ - 0.2) < 0.05
    assert abs(est.p_ - 0.85) < 0.015
    fixed = LatentClassObservationModel(bin_size=BS, n_init=2).fit(X, y)
    assert est.score(X, y) > fixed.score(X, y)


def test_kde_m_step_with_cv_bandwidths(synthetic):
    _, X, y, _ = synthetic
    est = LatentClassObservationModel(bin_size=BS, m_step="kde", n_init=1).fit(X, y)
    assert est.bandwidth_.shape == (3, 2)
    assert set(est.bandwidth_.ravel()) <= set(BANDWIDTH_GRID)
    assert est.cv_scores_.shape == (3, len(BANDWIDTH_GRID), len(BANDWIDTH_GRID))
    np.testing.assert_allclose(est.probs_.sum(axis=1), 1.0)
    fixed = LatentClassObservationModel(bin_size=BS, m_step="kde", bandwidth=[0.0, 0.1, 0.2],
                                        n_init=1).fit(X, y)
    np.testing.assert_allclose(fixed.bandwidth_, [[0, 0], [0.1, 0.1], [0.2, 0.2]])


def test_fit_accuracy_with_known_observation_model(synthetic):
    P, X, y, _ = synthetic
    p, eps, hist = fit_accuracy(P, X, y, bin_size=BS)
    assert abs(p - 0.85) <= 0.01 and eps == 0.0
    assert np.all(np.diff(hist) >= -1e-6)


def test_step_traces_input_and_bounds_on_p():
    # with epsilon = 0 each wrong trace holds exactly one error: p <= 1 - n_wrong / n_steps
    rng = np.random.default_rng(7)
    traces = []
    for i in range(300):
        L = int(rng.integers(2, 8))
        e = int(rng.integers(0, 2 * L))
        s = np.where(np.arange(L) < e, rng.uniform(0.8, 1.0, L), rng.uniform(0.0, 0.6, L))
        traces.append(StepTrace(problem_id=str(i), scores=tuple(s), correct=bool(e >= L)))
    est = LatentClassObservationModel(bin_size=0.1, n_init=2).fit(traces)
    n_wrong = sum(not t.correct for t in traces)
    n_steps = sum(t.n_steps for t in traces)
    assert est.n_traces_ == 300 and est.n_steps_ == n_steps
    assert est.p_ <= 1 - n_wrong / n_steps + 1e-9
    assert np.isfinite(est.score(traces))


def test_trim_model_and_save_round_trip(synthetic, tmp_path, default_model):
    _, X, y, _ = synthetic
    est = LatentClassObservationModel(bin_size=BS, n_init=1).fit(X, y)
    tm = em_trim_model(est, default_model, role="strong")
    assert isinstance(tm, TrimModel)
    assert tm.p_strong == est.p_ and tm.p_weak == default_model.p_weak
    np.testing.assert_array_equal(tm.hazard, default_model.hazard)
    assert tm.bin_size == BS and tm.obs_probs.shape == (3, 16)
    path = tmp_path / "m.json"
    tm.save(path)
    from trimpomdp import load_model

    back = load_model(path)
    np.testing.assert_allclose(back.obs_probs, tm.obs_probs)
    est.save(tmp_path / "obs.json")
    np.testing.assert_allclose(load_observation_model(tmp_path / "obs.json").probs_, est.probs_)


def test_trim_model_on_release_grid(default_model):
    P = default_model.obs_probs
    X, y, _ = simulate_outcome_traces(P, default_model.p_weak, default_model.hazard, 1500,
                                      random_state=0)
    est = LatentClassObservationModel(n_init=1, max_iter=20).fit(X, y)
    tm = em_trim_model(est)
    assert tm.obs_probs.shape == (3, 400) and tm.p_weak == est.p_
    assert tm.p_strong == default_model.p_strong
    assert "EM" in tm.provenance["observation_model"]


@pytest.mark.parametrize("params, match", [
    ({"alpha": -1}, "alpha"),
    ({"m_step": "gmm"}, "m_step"),
    ({"m_step": "kde", "bandwidth": "silverman"}, "bandwidth"),
    ({"m_step": "kde", "bandwidth": [0.1, -0.1, 0.2]}, "bandwidth"),
    ({"n_init": 0}, "n_init"),
    ({"epsilon": 1.0}, "epsilon"),
    ({"learn_epsilon": True, "epsilon": 0.0}, "epsilon"),
    ({"bin_size": 0.3}, "bin_size"),
])
def test_bad_parameters_raise(synthetic, params, match):
    _, X, y, _ = synthetic
    with pytest.raises(InputError, match=match):
        LatentClassObservationModel(**params).fit(X[:20], y[:20])


def test_bad_inputs_raise(synthetic):
    _, X, y, _ = synthetic
    est = LatentClassObservationModel(bin_size=BS)
    with pytest.raises(InputError, match="both correct and wrong"):
        est.fit(X[:10], np.ones(10))
    with pytest.raises(InputError, match="one outcome per trace"):
        est.fit(X[:10], y[:9])
    with pytest.raises(InputError, match="y must give"):
        est.fit(X[:10])
    with pytest.raises(InputError, match="unit square|lie in"):
        est.fit([np.array([[0.5, 1.5]])] + list(X[:10]), np.r_[1, y[:10]])
    with pytest.raises(InputError, match="non-empty list"):
        est.fit([], [])
    with pytest.raises(NotFittedError):
        est.posteriors(X[:3], y[:3])


def test_equal_length_array_input(synthetic):
    P, _, _, _ = synthetic
    rng = np.random.default_rng(0)
    X = rng.random((50, 4, 2))
    y = rng.random(50) < 0.5
    ll = trace_log_likelihood(P, 0.8, X, y, bin_size=BS)
    np.testing.assert_allclose(ll, trace_log_likelihood(P, 0.8, list(X), list(y), bin_size=BS))
    with pytest.raises(InputError, match=r"y\[0\] must be"):
        trace_log_likelihood(P, 0.8, X, ["yes"] * 50, bin_size=BS)


def test_clone_keeps_parameters():
    est = LatentClassObservationModel(alpha=0.5, m_step="kde", bandwidth=0.02, n_init=2)
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert not hasattr(c, "probs_")


def test_real_traces_fit(shared_data):
    from trimpomdp.data import read_score_dump

    path = shared_data / "prm_scores_strictprmbench" / "math500_bon32_prm_step_scores.jsonl.gz"
    traces = read_score_dump(path, limit=3000)
    est = LatentClassObservationModel(n_init=2, max_iter=100).fit(traces)
    n_wrong = sum(not t.correct for t in traces)
    n_steps = sum(t.n_steps for t in traces)
    assert 0.85 < est.p_ <= 1 - n_wrong / n_steps + 1e-9
    # S2 (first error) has a lower current score than S0 on average
    cur = (np.arange(400) % 20 + 0.5) * 0.05
    assert est.probs_[2] @ cur < est.probs_[0] @ cur - 0.2
