"""The out-of-sample validation protocol and the paired-step simulator, on a small scale."""
import numpy as np
import pytest

from trimpomdp import InputError
from trimpomdp.data.trim_release import read_release_results
from trimpomdp.resources import resource_path
from trimpomdp.routing.router import StepRouter
from trimpomdp.routing.threshold import ThresholdRule
from trimpomdp.sim import (
    CALIBRATION_FILE_V1,
    PAIRED_CALIBRATION_FILE,
    CalibratedSimulator,
    ScorePools,
    load_simulator,
    rollout,
    simulate,
    threshold_act,
)
from trimpomdp.sim.fitting import fit_thr, params_of, thr_loss, tolerance_errors
from trimpomdp.sim.validation import (
    bootstrap_predictions,
    compare,
    intervals,
    pomdp_policies,
    split_thr,
    thr_split_check,
    thr_to_pomdp,
)


@pytest.fixture(scope="module")
def rows():
    rel = resource_path("data", "trim_release")
    return (read_release_results(rel / "thr_results_math500_summary.jsonl"),
            sorted(read_release_results(rel / "pomdp_results_math500_summary.jsonl"),
                   key=lambda r: r["cost_per_token"]))


@pytest.fixture(scope="module")
def paired():
    return load_simulator(calibration=PAIRED_CALIBRATION_FILE)


def test_paired_pools_pair_scores_with_their_steps_tokens():
    P = ScorePools.load(resource_path("data", "sim/math500_qwen2.5-7b_qwen-prm_pools_paired"
                                              ".json.gz"))
    assert P.paired and not ScorePools.load().paired
    for k in ("ok", "err", "post"):
        np.testing.assert_array_equal(P.counts[k], P.counts[f"{k}_tokens"])
    # the real data: a first wrong step is ~3x as long as a correct one
    assert P.values["err_tokens"].mean() > 2.5 * P.values["ok_tokens"].mean()
    s, n = P.draw_paired("err", np.array([0, 1]), np.full((2, 3), 0.5))
    assert s.shape == n.shape == (2, 3)
    with pytest.raises(InputError):
        ScorePools.load().draw_paired("ok", np.array([0]), np.full((1, 1), 0.5))


@pytest.mark.parametrize("k", [0.1, 0.6])
def test_router_engine_equals_vectorised_engine_with_class_tokens(paired, k):
    sc = paired.scenario(300, seed=4)
    assert sc.n_w_err is not None and sc.n_s_post is not None
    a = simulate(StepRouter(ThresholdRule(k), record=False), sc)
    b = rollout(sc, threshold_act(k))
    for f in ("correct", "strong_tokens", "weak_kept", "weak_discarded", "strong_calls"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    sub = sc.subset(np.arange(10))
    assert sub.n_w_err.shape == (10, sc.horizon)


def test_paired_endpoints_match_release(paired):
    big = paired.scenario(20000, seed=11)
    weak = rollout(big, lambda t, i, s, n, f: np.zeros(len(i), bool)).summary()
    strong = rollout(big, lambda t, i, s, n, f: np.ones(len(i), bool)).summary()
    assert weak["accuracy"] == pytest.approx(0.364, abs=0.015)
    assert strong["accuracy"] == pytest.approx(0.73, abs=0.015)
    assert weak["mean_weak_kept"] == pytest.approx(400.9, rel=0.03)
    assert strong["mean_strong_tokens"] == pytest.approx(494.8, rel=0.03)


def test_default_and_first_calibration_still_load():
    v1 = load_simulator(calibration=CALIBRATION_FILE_V1)
    assert not v1.paired_tokens and v1.score_shift_ == (0.5, 1.0, 4.0)
    assert load_simulator(score_shift=(0.0, 0.0, 0.0)).score_shift_ == (0.0, 0.0, 0.0)
    sc = load_simulator().scenario(20, 0)
    assert sc.n == 20


def test_with_shape_keeps_endpoints_and_validates(paired):
    other = paired.with_shape(draft_len_exp=1.0)
    assert other.delta_w_ == paired.delta_w_ and other.gamma_ == 1.0
    with pytest.raises(InputError):
        paired.with_shape(max_steps=3)
    with pytest.raises(InputError):
        CalibratedSimulator(paired_tokens=True, strong_len_corr=1.5).fit()


def test_tolerance_errors_arithmetic():
    m = {"accuracy": 0.5, "avg_target_tokens_per_question": 40.0,
         "avg_target_calls_per_question": 1.0, "target_token_frac": 0.1}
    s = {"accuracy": 0.52, "mean_strong_tokens": 49.0, "mean_strong_calls": 1.2,
         "target_token_frac": 0.12}
    e = tolerance_errors(s, m)
    assert e["d_acc"] == pytest.approx(0.02) and e["acc_ok"]
    assert e["d_tokens"] == pytest.approx(9.0) and e["tokens_ok"]  # ±10 tokens floor
    e = tolerance_errors(dict(s, mean_strong_tokens=200.0),
                         dict(m, avg_target_tokens_per_question=150.0))
    assert not e["tokens_ok"]  # +33 %


def test_protocol_small_scale(rows, paired, default_model):
    thr, pom = rows
    few = pom[::3]
    pols = pomdp_policies(default_model, [r["cost_per_token"] for r in few])
    res = thr_to_pomdp(paired, thr, few, pols, n=300, seed=1)
    assert len(res["pomdp"]) == len(few) and len(res["thr"]) == 19
    for r in res["pomdp"]:
        assert r["accuracy_se"] > 0 and r["mean_strong_tokens_se"] > 0
        assert r["d_acc"] == pytest.approx(r["accuracy_sim"] - r["accuracy_meas"])
    # the bundled paired fit predicts the measured POMDP curve far better than chance
    assert res["pomdp_score"]["acc_mae"] < 0.08
    fit_rows, held = split_thr(thr, "low")
    assert max(r["threshold"] for r in fit_rows) <= 0.45 < min(r["threshold"] for r in held)
    grid = {"d_ok": (params_of(paired)["d_ok"], 0.0)}
    sp = thr_split_check(lambda rs: fit_thr(paired, rs, grid=grid, sweeps=1, n=300)[0], thr,
                         "alternate", n=300)
    assert sp["score"]["n_points"] == 9
    boot = bootstrap_predictions(paired, thr, few, pols, start=params_of(paired), b=2, n=200,
                                 fit_n=200, grid=grid)
    iv = intervals(boot["pomdp"], few, "cost_per_token")
    assert all(r["accuracy_lo"] <= r["accuracy_hi"] for r in iv)
    assert len(boot["params"]) == 2


def test_thr_loss_is_zero_on_own_simulation(paired):
    sc = paired.scenario(500, 5)
    fake = []
    for k in (0.1, 0.5):
        s = rollout(sc, threshold_act(k)).summary()
        fake.append({"threshold": k, "accuracy": s["accuracy"],
                     "target_token_frac": s["target_token_frac"],
                     "avg_target_tokens_per_question": s["mean_strong_tokens"],
                     "avg_discarded_draft_tokens_per_question": s["mean_weak_discarded"],
                     "avg_target_calls_per_question": s["mean_strong_calls"]})
    loss, _ = thr_loss(paired, fake, sc)
    assert loss == pytest.approx(0.0, abs=1e-12)
    assert compare([{"accuracy": 0.5, "mean_strong_tokens": 1.0, "mean_strong_calls": 0.1,
                     "target_token_frac": 0.01}],
                   [{"threshold": 0.1, **fake[0]}], "threshold")[0]["param"] == 0.1


def test_step_oracle_is_the_limit_line(paired):
    from trimpomdp.sim import step_oracle

    sc = paired.scenario(2000, seed=8)
    o = step_oracle(sc)
    strong = rollout(sc, lambda t, i, s, n, f: np.ones(len(i), bool))
    thr = rollout(sc, threshold_act(0.5))
    assert o.accuracy >= strong.accuracy - 1e-12  # never worse than strong-only ...
    assert o.mean_strong_tokens < thr.mean_strong_tokens  # ... at a fraction of the cost
    # pathwise: a step the oracle keeps or regenerates is correct iff weak or strong is
    assert np.all(o.correct >= thr.correct) and np.all(o.correct >= strong.correct)
