"""The opt-in step effects of the calibrated simulator (issue 19: assumptions 1c, 1d, 3b, 5c).

None is in the default calibration; these tests check that each does what its docstring says
and leaves the endpoints (weak-only / strong-only accuracy) where the fit puts them.
"""
import numpy as np
import pytest

from trimpomdp import InputError
from trimpomdp.data.schema import StepTrace
from trimpomdp.sim import ScorePools, load_simulator, rollout
from trimpomdp.sim.calibrated import _remap_uniform
from trimpomdp.sim.fitting import params_of


def _weak(sc):
    return rollout(sc, lambda t, i, s, n, f: np.zeros(len(i), bool))


def _strong(sc):
    return rollout(sc, lambda t, i, s, n, f: np.ones(len(i), bool))


def _first_error_step(sc):
    """Step (0-based) of each weak-only solution's first wrong step, -1 if none."""
    t = np.arange(sc.horizon)[None, :]
    err = (sc.u_w >= sc.p_w[:, None]) & (t < sc.L[:, None])
    return np.where(err.any(1), err.argmax(1), -1)


@pytest.fixture(scope="module")
def base():
    return load_simulator()


def test_remap_uniform_gives_the_wanted_probability_and_keeps_order():
    rng = np.random.default_rng(0)
    u = rng.random((200000, 1))
    p, q = np.full((1, 1), 0.9), np.full((1, 1), 0.6)
    v = _remap_uniform(u, p, q)
    assert np.mean(v < p) == pytest.approx(0.6, abs=0.005)
    np.testing.assert_array_equal(v < p, u < q)        # the same draws decide
    assert np.all(np.diff(v[np.argsort(u[:, 0]), 0]) >= 0)   # monotone
    assert v.min() >= 0.0 and v.max() <= 1.0


def test_default_calibration_has_no_step_effect(base):
    assert base.step_profile_ is None and base.hard_share_ == 0.0
    assert not base.invisible_failures and base.err_len_scale_ == 1.0
    assert "err_len_scale" not in params_of(base)     # older fits' parameter dicts stay equal


def test_weak_step_profile_lowers_step_one_errors_and_keeps_weak_accuracy(base):
    sim = base.with_shape(weak_step_profile=(0.4, 1.0))
    sc0, sc1 = base.scenario(20000, 5), sim.scenario(20000, 5)
    assert _weak(sc1).accuracy == pytest.approx(base.weak_accuracy, abs=0.015)
    assert _strong(sc1).accuracy == pytest.approx(_strong(sc0).accuracy, abs=1e-12)
    e0, e1 = _first_error_step(sc0), _first_error_step(sc1)
    # hazard at step 1 falls (0.4 x the per-step error for the same problem)
    assert np.mean(e1 == 0) < 0.75 * np.mean(e0 == 0)
    # δ_w is refitted: later steps carry more of the errors
    assert np.mean(e1 >= 1) > np.mean(e0 >= 1)


def test_hard_step_concentrates_errors_and_keeps_both_endpoints(base):
    sim = base.with_shape(hard_step_share=0.65)
    sc0, sc1 = base.scenario(20000, 6), sim.scenario(20000, 6)
    for run in (_weak, _strong):
        assert run(sc1).accuracy == pytest.approx(run(sc0).accuracy, abs=0.012)
    # with φ = 0.65 of the hazard on one step, a solution of L >= 4 steps has its first error
    # far less often on its first step than under a constant hazard
    long = sc1.L >= 4
    e0, e1 = _first_error_step(sc0), _first_error_step(sc1)
    assert np.mean(e1[long] == 0) < 0.8 * np.mean(e0[long] == 0)


def test_step_effects_reject_bad_values(base):
    with pytest.raises(InputError, match="weak_step_profile"):
        base.with_shape(weak_step_profile=(0.0, 1.0))
    with pytest.raises(InputError, match="combined"):
        base.with_shape(weak_step_profile=(0.5,), hard_step_share=0.5)
    with pytest.raises(InputError, match="err_len_scale"):
        base.with_shape(err_len_scale=0.0)


def test_err_len_scale_shortens_first_wrong_drafts_only(base):
    sim = base.with_shape(err_len_scale=0.5)
    a, b = base.scenario(3000, 7), sim.scenario(3000, 7)
    # weak tokens are rescaled to the weak-only target, so compare ratios of classes
    ra = a.n_w_err.mean() / a.n_w.mean()
    rb = b.n_w_err.mean() / b.n_w.mean()
    assert rb == pytest.approx(0.5 * ra, rel=0.05)
    np.testing.assert_array_equal(a.sc_err, b.sc_err)


def _trace(pid, scores, correct, boxed):
    return StepTrace(problem_id=pid, scores=tuple(scores), tokens=tuple(10 for _ in scores),
                     correct=correct, meta={"boxed_answer": boxed})


def test_unboxed_wrong_solutions_become_invisible_failures():
    traces = [_trace("p1#0", [0.9, 0.95], True, "1"),
              _trace("p1#1", [0.9, 0.1, 0.2], False, "2"),
              _trace("p1#2", [0.99, 0.97], False, None),      # no boxed answer
              _trace("p2#0", [0.8, 0.9], True, "3")]
    plain = ScorePools.from_traces(traces)
    inv = ScorePools.from_traces(traces, unboxed_invisible=True)
    assert plain.n_invisible is None
    np.testing.assert_array_equal(inv.n_invisible, [1, 0])
    # the unboxed solution's lowest step is a first error only in the plain pools
    assert plain.counts["err"][0] == 2 and inv.counts["err"][0] == 1
    assert inv.values["err"][0] == pytest.approx(0.1)
    np.testing.assert_array_equal(inv.counts["lengths"], plain.counts["lengths"])


def test_invisible_failures_round_trip_and_simulate(tmp_path, shared_data):
    from trimpomdp.data import read_score_dump

    dump = shared_data / "prm_scores_strictprmbench" / "math500_bon32_prm_step_scores.jsonl.gz"
    if not dump.exists():
        pytest.skip("needs the shared StrictPRMBench dump")
    pools = ScorePools.from_traces(read_score_dump(dump), unboxed_invisible=True)
    assert int(pools.n_invisible.sum()) == 1180          # the figure of assumption 3b
    path = tmp_path / "pools.json.gz"
    pools.save(path)
    back = ScorePools.load(path)
    np.testing.assert_array_equal(back.n_invisible, pools.n_invisible)
    sim = load_simulator(path, invisible_failures=True)
    sc = sim.scenario(20000, 8)
    assert _weak(sc).accuracy == pytest.approx(sim.weak_accuracy, abs=0.015)
    assert _strong(sc).accuracy == pytest.approx(sim.strong_accuracy, abs=0.015)
    # the failing last step of an invisible failure is scored like a correct step
    last = sc.L - 1
    i = np.arange(sc.n)
    forced = sc.u_s[i, last] >= 1.0
    assert forced.mean() == pytest.approx(float(np.mean(sim.invisible_rate_[sc.problem])),
                                          abs=0.01)
    np.testing.assert_array_equal(sc.sc_err[i[forced], last[forced]],
                                  sc.sc_ok[i[forced], last[forced]])


def test_invisible_failures_need_pools_with_counts(base):
    with pytest.raises(InputError, match="invisible_failures"):
        load_simulator(invisible_failures=True)
