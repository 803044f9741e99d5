import numpy as np
import pytest

from trimpomdp import InputError
from trimpomdp.routing.router import StepRouter
from trimpomdp.data.schema import StepTrace
from trimpomdp.routing.baselines import (
    OracleQueryRule,
    QueryLevelRule,
    StrongOnlyRule,
    WeakOnlyRule,
)
from trimpomdp.routing.threshold import ThresholdRule
from trimpomdp.sim import (
    CalibratedSimulator,
    NaiveSimulator,
    ScorePools,
    load_simulator,
    rollout,
    simulate,
    threshold_act,
)


@pytest.fixture(scope="module")
def sim():
    return load_simulator()


@pytest.fixture(scope="module")
def sc(sim):
    return sim.scenario(600, seed=3)


@pytest.mark.parametrize("k", [0.0, 0.1, 0.5, 0.95])
def test_router_engine_equals_vectorised_engine(sc, k):
    a = simulate(StepRouter(ThresholdRule(k), record=False), sc)
    b = rollout(sc, threshold_act(k))
    for f in ("correct", "strong_tokens", "weak_kept", "weak_discarded", "strong_calls"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_endpoints_match_calibration_targets(sim):
    big = sim.scenario(20000, seed=11)
    weak = rollout(big, lambda t, i, s, n, f: np.zeros(len(i), bool))
    strong = rollout(big, lambda t, i, s, n, f: np.ones(len(i), bool))
    assert weak.accuracy == pytest.approx(sim.weak_accuracy, abs=0.015)
    assert strong.accuracy == pytest.approx(sim.strong_accuracy, abs=0.015)
    assert strong.mean_strong_tokens == pytest.approx(sim.strong_tokens, rel=0.03)
    assert weak.summary()["mean_weak_kept"] == pytest.approx(sim.weak_tokens, rel=0.03)


def test_same_seed_same_draws_other_seed_differs(sim):
    a, b, c = sim.scenario(50, 1), sim.scenario(50, 1), sim.scenario(50, 2)
    np.testing.assert_array_equal(a.sc_ok, b.sc_ok)
    assert not np.array_equal(a.sc_ok, c.sc_ok)


def test_oracle_dominates_query_baselines(sc):
    res = {p.name: simulate(StepRouter(p, record=False), sc)
           for p in (WeakOnlyRule(), StrongOnlyRule(), OracleQueryRule())}
    w, s, o = res["weak"], res["strong"], res["oracle-query"]
    assert o.accuracy >= max(w.accuracy, s.accuracy)
    assert o.mean_strong_tokens <= s.mean_strong_tokens
    np.testing.assert_array_equal(w.correct, sc.weak_correct())
    np.testing.assert_array_equal(s.correct, sc.strong_correct())


def test_threshold_cost_monotone_in_k(sc):
    costs = [rollout(sc, threshold_act(k)).mean_strong_tokens for k in (0.0, 0.1, 0.3, 0.6, 0.9)]
    assert costs == sorted(costs) and costs[0] == 0


def test_query_level_costs_between(sc):
    q = simulate(StepRouter(QueryLevelRule(0.5), record=False), sc)
    assert 0 < q.mean_strong_tokens < rollout(sc, threshold_act(1.0)).mean_strong_tokens * 1.01


def test_traces_kept_and_observe_regenerated(sc):
    r = simulate(StepRouter(ThresholdRule(0.5)), sc.subset(np.arange(20)), keep_traces=True,
                 observe_regenerated=True)
    assert len(r.traces) == 20
    events = [e for tr in r.traces for e in tr if e.get("event") == "observe_regenerated"]
    assert events  # strong-step scores were passed on


def test_bad_n_and_seed(sim):
    for n, seed in [(0, 0), (-1, 0), (2.5, 0), (10, -1), (True, 0)]:
        with pytest.raises(InputError):
            sim.scenario(n, seed)


def test_naive_simulator_runs(default_model):
    sc = NaiveSimulator(default_model).scenario(300, 0)
    r = rollout(sc, threshold_act(0.5))
    assert 0 < r.accuracy < 1 and set(np.unique(sc.n_s)) == {default_model.future_tokens}


def test_pools_round_trip_and_fit(tmp_path):
    rng = np.random.default_rng(0)
    traces = []
    for p in range(6):
        for c in range(8):
            n = int(rng.integers(2, 6))
            ok = bool(rng.random() < 0.3 + 0.1 * p)
            sc = rng.random(n).round(3)
            traces.append(StepTrace(problem_id=f"p{p}#{c}", scores=tuple(float(x) for x in sc),
                                    tokens=tuple(int(x) for x in rng.integers(5, 40, n)),
                                    correct=ok))
    pools = ScorePools.from_traces(traces)
    pools.save(tmp_path / "p.json.gz")
    back = ScorePools.load(tmp_path / "p.json.gz")
    assert back.problem_ids == pools.problem_ids
    np.testing.assert_allclose(back.values["ok"], pools.values["ok"], atol=1e-4)
    sim = CalibratedSimulator(weak_accuracy=0.3, strong_accuracy=0.6).fit(back)
    big = sim.scenario(8000, 0)
    strong = rollout(big, lambda t, i, s, n, f: np.ones(len(i), bool))
    assert strong.accuracy == pytest.approx(0.6, abs=0.03)
    with pytest.raises(InputError):
        CalibratedSimulator(weak_accuracy=1.5).fit(back)


def test_unfitted_simulator_raises():
    from trimpomdp.errors import NotFittedError

    with pytest.raises(NotFittedError):
        CalibratedSimulator().scenario(5, 0)


def test_pools_from_shared_dump_agree_with_bundled(shared_data):
    from trimpomdp.data import read_score_dump

    tr = read_score_dump(shared_data / "prm_scores_strictprmbench" /
                         "math500_bon32_prm_step_scores.jsonl.gz", limit=320)
    pools = ScorePools.from_traces(tr)
    bundled = ScorePools.load()
    assert pools.problem_ids == bundled.problem_ids[:10]
    np.testing.assert_array_equal(pools.n_correct, bundled.n_correct[:10])


def test_bundled_calibration_reproduces_measured_thr_curve(sim):
    """Regression guard: the bundled fit stays near the release's measured TRIM-Thr points."""
    from trimpomdp.data.trim_release import read_release_results
    from trimpomdp.resources import resource_path

    rows = {r["threshold"]: r for r in read_release_results(
        resource_path("data", "trim_release/thr_results_math500_summary.jsonl"))}
    sc = sim.scenario(4000, seed=21)
    for k in (0.05, 0.3, 0.5, 0.9):
        s = rollout(sc, threshold_act(k)).summary()
        assert abs(s["target_token_frac"] - rows[k]["target_token_frac"]) <= 0.05, k
        assert abs(s["accuracy"] - rows[k]["accuracy"]) <= 0.05, k
