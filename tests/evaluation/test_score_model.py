"""Calibrated-score EM model: the transform, the TrimModel it exports (filter and solver), the
raw-score likelihood's change of variables; simulator traces against the engine's rollout."""
from __future__ import annotations

import numpy as np
import pytest

from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import InputError
from trimpomdp.evaluation.assess import (
    StepData,
    model_step_probabilities,
    scenario_traces,
    score_log_likelihood,
)
from trimpomdp.evaluation.score_model import CalibratedScoreModel, QuantileTransform
from trimpomdp.model import load_model
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.sim import load_simulator
from trimpomdp.sim.engine import rollout
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver


def _traces(n: int = 150, seed: int = 0) -> StepData:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        L = int(rng.integers(1, 8))
        e = int(rng.geometric(0.1)) - 1
        s = np.where(np.arange(L) < e, 1 - rng.beta(1, 40, L), rng.beta(2, 3, L))
        s = np.where(rng.random(L) < 0.2, 1.0, s)  # ties at 1.0, as real PRMs give
        s = np.where(np.arange(L) == e, rng.beta(1, 4, L), s)
        out.append(StepTrace(problem_id=f"q{i // 3}#{i % 3}", scores=tuple(map(float, s)),
                             tokens=tuple(int(x) for x in rng.integers(5, 120, L)),
                             correct=bool(e >= L)))
    return StepData.from_traces(out)


@pytest.fixture(scope="module")
def fitted():
    d = _traces()
    return CalibratedScoreModel(n_types=1, n_init=1).fit(d), d


def test_quantile_transform_is_monotone_onto_unit_interval():
    rng = np.random.default_rng(0)
    s = np.r_[rng.beta(5, 1, 500), np.ones(300)]
    g = QuantileTransform(50).fit(s)
    x = np.linspace(0, 1, 1001)
    gx = g.transform(x)
    assert gx[0] == 0.0 and gx[-1] == 1.0 and np.all(np.diff(gx) >= 0)
    # away from the tie at 1.0, g is the empirical CDF (within one knot)
    for q in (0.1, 0.3, 0.5):
        v = np.quantile(s, q)
        assert g.transform(v) == pytest.approx(q, abs=1 / 50 + 1e-9)


def test_trim_model_filter_equals_model_and_solves(fitted):
    m, d = fitted
    tm = m.trim_model(load_model())
    assert tm.bin_size == 0.025 and tm.p_weak == pytest.approx(float(m.em_.p_[0]))
    assert tm.score_transform is m.transform_.score_transform_
    # the model carries the transform: it takes raw scores, as the router gives them
    p, _ = model_step_probabilities(tm, d, lam=None, density="binned")
    ref = m.step_probabilities(d)
    ok = d.mask()
    np.testing.assert_allclose(p[ok], ref[ok], atol=1e-10)
    pol = FiniteHorizonSolver().solve(TrimPOMDP(model=tm, lam=0.5))
    assert pol.action(step=2, tokens=60, belief=[0.05, 0.05, 0.9]) in (0, 1)


def test_raw_score_likelihood_adds_the_jacobian(fitted):
    m, d = fitted
    tm = m.trim_model(load_model())
    s = d.scores[d.mask()]
    h = 1e-7
    lo, hi = np.clip(s - h, 0, 1), np.clip(s + h, 0, 1)
    slope = (m.transform_.transform(hi) - m.transform_.transform(lo)) / (hi - lo)
    # finite differences straddle a knot only on ties; keep the steps where both sides agree
    jac = np.mean(np.log(slope))
    plain = tm.replace(score_transform=None)  # the same grid, fed transformed scores
    got = score_log_likelihood(tm, d) - score_log_likelihood(plain, m.transformed(d))
    assert got == pytest.approx(jac, rel=0.05)
    # the exported model's raw-score likelihood is the fitted model's
    assert score_log_likelihood(tm, d) == pytest.approx(m.step_log_likelihood(d), abs=1e-9)


def test_scenario_traces_replay_the_engine():
    sc = load_simulator().scenario(80, 3)
    d = scenario_traces(sc)
    seen = np.full(d.scores.shape, np.nan)

    def act(t, idx, score, tokens, final):
        seen[idx, t] = score
        return np.zeros(idx.size, dtype=np.int8)

    res = rollout(sc, act)
    np.testing.assert_array_equal(d.correct.astype(bool), res.correct)
    np.testing.assert_allclose(d.scores[d.mask()], seen[d.mask()])
    fe = d.first_error
    for i in range(d.n):
        wrong = np.flatnonzero(sc.u_w[i, :d.lengths[i]] >= sc.p_w[i])
        assert fe[i] == (wrong[0] if wrong.size else -1)


def test_token_dependent_densities():
    d = _traces(seed=4)
    m = CalibratedScoreModel(token_bins=3, n_init=1).fit(d)
    assert m.token_edges_.shape == (2,) and m.em_.emission == "conditional"
    k = 40
    P = m.em_.probs_[0].reshape(3, k, k)
    np.testing.assert_allclose(P.sum(axis=2), 1.0)
    # the observation's first coordinate is the token bin of each step
    seq = m._sequences(m.transformed(d))[0]
    tok = d.tokens[0, :d.lengths[0]]
    want = (np.searchsorted(m.token_edges_, tok, side="right") + 0.5) / 3
    np.testing.assert_allclose(seq[:, 0], want)
    np.testing.assert_allclose(seq[:, 1], m.transform_.transform(d.scores[0, :d.lengths[0]]))
    p = m.predict_correct(d)
    P0 = m.step_probabilities(d)
    np.testing.assert_allclose(p, P0[np.arange(d.n), d.lengths - 1])
    with pytest.raises(InputError):
        m.trim_model(load_model())


def test_step_index_and_min_conditioned_variants():
    d = _traces(seed=5)
    m = CalibratedScoreModel(step_edges=(1, 3), n_init=1).fit(d)
    seq = m._sequences(m.transformed(d))[0]
    L = int(d.lengths[0])
    want = (np.searchsorted([1, 3], np.arange(L), side="right") + 0.5) / 3
    np.testing.assert_allclose(seq[:, 0], want)
    with pytest.raises(InputError, match="step"):
        m.trim_model(load_model())
    # the running minimum as a feature: P(s | min_prev, c) is a TrimModel whose filter equals
    # the fitted model's on raw scores
    c = CalibratedScoreModel(emission="conditional", n_init=1).fit(d)
    tm = c.trim_model(load_model())
    p, _ = model_step_probabilities(tm, d, lam=None, density="binned")
    ok = d.mask()
    np.testing.assert_allclose(p[ok], c.step_probabilities(d)[ok], atol=1e-10)
    with pytest.raises(InputError, match="bands"):
        CalibratedScoreModel(emission="conditional", min_bands=4, n_init=1).fit(d).trim_model(
            load_model())
