"""Latent-type TRIM EM: filter and likelihood against brute-force enumeration of class paths,
one type against the existing EM code, EM never lowering the likelihood."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from trimpomdp.errors import InputError, NotFittedError
from trimpomdp.observation.em import trace_log_likelihood
from trimpomdp.observation.grid import bin_index
from trimpomdp.observation.typed_em import TypedTrimEM


def _data(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    seqs, y = [], []
    for _ in range(n):
        hard = rng.random() < 0.4
        L = int(rng.integers(1, 6))
        e = int(rng.geometric(0.25 if hard else 0.05)) - 1
        s = np.where(np.arange(L) < e, rng.beta(8 if not hard else 4, 1, L), rng.beta(1.5, 3, L))
        prev = np.minimum.accumulate(np.r_[1.0, s[:-1]])
        seqs.append(np.column_stack([prev, s]))
        y.append(float(e >= L))
    return seqs, y


@pytest.fixture(scope="module")
def fitted():
    seqs, y = _data()
    return TypedTrimEM(n_types=2, bin_size=0.25, n_init=2, max_iter=60).fit(seqs, y), seqs, y


def _brute(m: TypedTrimEM, obs: np.ndarray, y: float | None):
    """(P(S0 at each step | o_1..t), log P(o, y)) by enumerating every class path and type."""
    bins = bin_index(obs, m.bin_size)
    L = len(obs)
    filt = []
    for t in range(1, L + 1):
        num = den = 0.0
        for z in range(m.weights_.size):
            p = m.p_[z]
            for path in itertools.product(range(3), repeat=t):
                pr = m.weights_[z]
                prev = 0  # the empty prefix is S0
                for c, b in zip(path, bins[:t]):
                    A = {0: (p, 0.0, 1 - p), 1: (0.0, 1.0, 0.0), 2: (0.0, 1.0, 0.0)}[prev]
                    pr *= A[c] * m.probs_[z][c, b]
                    prev = c
                den += pr
                num += pr * (path[-1] == 0)
        filt.append(num / den)
    tot = 0.0
    for z in range(m.weights_.size):
        p = m.p_[z]
        for path in itertools.product(range(3), repeat=L):
            pr = m.weights_[z]
            prev = 0
            for c, b in zip(path, bins):
                A = {0: (p, 0.0, 1 - p), 1: (0.0, 1.0, 0.0), 2: (0.0, 1.0, 0.0)}[prev]
                pr *= A[c] * m.probs_[z][c, b]
                prev = c
            if y is not None:
                e = m.epsilon_
                pr *= (1.0 if path[-1] == 0 else e) if y == 1 else \
                    (0.0 if path[-1] == 0 else 1.0 - e)
            tot += pr
    return np.array(filt), np.log(tot)


def test_filter_and_likelihood_match_enumeration(fitted):
    m, seqs, y = fitted
    F = m.filter(seqs[:12])
    ll = m.trace_log_likelihood(seqs[:12], y[:12])
    for i in range(12):
        f, l_ref = _brute(m, seqs[i], y[i])
        np.testing.assert_allclose(F[i], f, atol=1e-10)
        assert ll[i] == pytest.approx(l_ref, abs=1e-9)
    np.testing.assert_allclose(m.predict_correct(seqs[:12]), [f[-1] for f in F])


def test_learned_epsilon_likelihood_and_prediction():
    seqs, y = _data(100, 4)
    m = TypedTrimEM(n_types=2, bin_size=0.25, n_init=1, max_iter=40, learn_epsilon=True
                    ).fit(seqs, y)
    assert 0.0 < m.epsilon_ < 1.0
    ll = m.trace_log_likelihood(seqs[:8], y[:8])
    for i in range(8):
        f, l_ref = _brute(m, seqs[i], y[i])
        assert ll[i] == pytest.approx(l_ref, abs=1e-9)
        assert m.predict_correct([seqs[i]])[0] == pytest.approx(
            m.epsilon_ + (1 - m.epsilon_) * f[-1])
    assert np.all(np.diff(m.loglik_history_) >= -1e-6 * abs(m.loglik_history_[0]))


def test_em_never_lowers_the_likelihood(fitted):
    m, *_ = fitted
    h = m.loglik_history_
    assert np.all(np.diff(h) >= -1e-6 * abs(h[0]))
    assert m.lower_bound_ >= m.one_type_loglik_ - 1e-6
    assert m.weights_.sum() == pytest.approx(1.0)


def test_one_type_matches_existing_em_likelihood():
    seqs, y = _data(60, 1)
    m = TypedTrimEM(n_types=1, bin_size=0.25, max_iter=40).fit(seqs, y)
    ref = trace_log_likelihood(m.probs_[0], float(m.p_[0]), seqs, y, bin_size=0.25)
    np.testing.assert_allclose(m.trace_log_likelihood(seqs, y), ref, atol=1e-10)


@pytest.mark.parametrize("emission", ["conditional", "current"])
def test_emissions_are_distributions_of_the_current_score(emission):
    seqs, y = _data(60, 2)
    m = TypedTrimEM(n_types=1, bin_size=0.25, emission=emission, max_iter=20).fit(seqs, y)
    P = m.probs_[0].reshape(3, 4, 4)
    np.testing.assert_allclose(P.sum(axis=2), 1.0)
    if emission == "current":
        np.testing.assert_allclose(P, np.broadcast_to(P[:, :1, :], P.shape))


def test_bad_parameters_and_unfitted():
    seqs, y = _data(10)
    with pytest.raises(InputError):
        TypedTrimEM(n_types=0).fit(seqs, y)
    with pytest.raises(InputError):
        TypedTrimEM(emission="nope").fit(seqs, y)
    with pytest.raises(InputError):
        TypedTrimEM().fit(seqs, [1.0] * len(seqs))
    with pytest.raises(NotFittedError):
        TypedTrimEM().filter(seqs)
