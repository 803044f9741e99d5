"""Whole-model fit (fit-model): recovery on a known routed TRIM process, reduction to fit-em on
continue-only traces, the CLI and its error cases. The full 20,000-trace recovery is
``benchmarks/fit_model_recovery.py``; these run a smaller version (seconds)."""
from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.data.schema import StepTrace
from trimpomdp.data.traces import read_traces, write_traces
from trimpomdp.errors import DataWarning, InputError
from trimpomdp.fitting.emission import TrimModelEM, conditional_emission, resolve_emission
from trimpomdp.fitting.model_fit import fit_hazard, fit_trim_model, truncate_trace
from trimpomdp.fitting.synthetic import (
    SyntheticTrimProcess,
    empirical_class_probs,
    recovery_check,
)
from trimpomdp.model import load_model
from trimpomdp.observation import em as E
from trimpomdp.observation.em import LatentClassObservationModel, RoutedTrimEM


@pytest.fixture(scope="module")
def outcome_only():
    return recovery_check(4000, n_init=1, lams=(0.25,), random_state=11)


def test_recovery_outcome_only_small(outcome_only):
    r = outcome_only
    # 4,000 traces: looser than the 20,000-trace targets (±0.01, ±0.02, 0.05, 0.08, 1 %)
    assert abs(r["p_weak"] - r["p_weak_true"]) < 0.02, r
    assert abs(r["p_strong"] - r["p_strong_true"]) < 0.04, r
    assert r["length_tv"] < 0.05, r
    assert max(r["obs_tv"]) < 0.12, r
    assert r["policy"]["share"] < 0.02, r
    assert r["max_steps"] == 20 and 55 <= r["future_tokens"] <= 65


def test_recovery_with_step_labels_small():
    r = recovery_check(2000, n_init=1, step_labels=True, lams=(0.25,), random_state=5)
    assert abs(r["p_weak"] - r["p_weak_empirical"]) < 0.01, r
    assert abs(r["p_strong"] - r["p_strong_true"]) < 0.04, r
    assert max(r["obs_tv"]) < 0.06, r


def test_standard_errors_cover_the_truth(outcome_only):
    r = outcome_only
    assert 0 < r["p_weak_se"] < 0.01 and 0 < r["p_strong_se"] < 0.02
    assert abs(r["p_weak"] - r["p_weak_true"]) < 4 * r["p_weak_se"] + 0.005


def test_continue_only_joint_is_fit_em():
    """On continue-only outcome traces the routed EM (joint emission) is fit-em's EM."""
    traces, _ = SyntheticTrimProcess().sample(600, explore=0.0, random_state=2)
    traces = [dataclasses.replace(t, actions=None, strong_tokens=None, strong_scores=None,
                                  max_steps=None, correct=bool(t.correct)) for t in traces]
    a = LatentClassObservationModel(n_init=2, m_step="histogram").fit(traces)
    b = RoutedTrimEM(n_init=2, emission="joint").fit(traces)
    assert a.p_ == b.p_ and a.lower_bound_ == b.lower_bound_
    np.testing.assert_array_equal(a.probs_, b.probs_)
    assert not b.strong_identified_


def test_hazard_counts_censored_solutions_at_risk():
    traces, _ = SyntheticTrimProcess().sample(300, explore=0.0, random_state=1)
    h, rep = fit_hazard(traces, 20)
    assert h[0] == 0 and h[20] == 1 and rep["n_censored"] == sum(t.censored for t in traces)
    L = np.array([t.n_steps for t in traces])
    k = 10
    ends = sum(1 for t in traces if t.n_steps == k and not t.censored)
    assert h[k] == pytest.approx(ends / (L >= k).sum())
    cut = truncate_trace(traces[0], 2)
    assert cut.n_steps == 2 and cut.censored


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fm")
    proc = SyntheticTrimProcess()
    routed, _ = proc.sample(1500, random_state=3)
    write_traces(d / "routed.jsonl", routed)
    plain, _ = proc.sample(400, explore=0.0, random_state=4)
    write_traces(d / "plain.jsonl", [dataclasses.replace(t, actions=None, strong_tokens=None,
                                                         strong_scores=None) for t in plain])
    few, _ = proc.sample(150, explore=0.05, random_state=6)
    write_traces(d / "few.jsonl", few)
    write_traces(d / "nolabels.jsonl", [dataclasses.replace(t, correct=None, max_steps=None)
                                        for t in routed[:50] if not t.censored])
    return d


def test_cli_fit_model_then_solve_simulate(files, capsys):
    out = files / "m.json"
    assert main(["fit-model", "--traces", str(files / "routed.jsonl"), "--out", str(out),
                 "--emission", "score", "--n-init", "1", "--no-progress"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["p_strong"]["identified"] and rep["p_strong"]["se"] > 0
    assert rep["regenerated_steps"] > 0 and rep["hazard"]["max_steps"] == 20
    m = load_model(out)
    assert m.max_steps == 20 and abs(m.p_weak - 0.8) < 0.03 and abs(m.p_strong - 0.93) < 0.05
    prov = m.provenance
    assert len(prov["inputs"][0]["sha256"]) == 64 and prov["counts"]["traces"] == 1500
    assert np.isfinite(prov["loglik"]) and "bundled" not in json.dumps(prov)
    pol = files / "p.json"
    assert main(["solve", "--model", str(out), "--lambda", "0.25", "--out", str(pol)]) == 0
    capsys.readouterr()
    assert main(["simulate", "--policy", "thr:0.3", "--model", str(out), "--n", "200",
                 "--json"]) == 0


def test_cli_no_regenerated_steps(files, capsys):
    out = str(files / "x.json")
    assert main(["fit-model", "--traces", str(files / "plain.jsonl"), "--out", out,
                 "--n-init", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not identifiable" in err and "explore" in err and len(err.splitlines()) == 1
    assert main(["fit-model", "--traces", str(files / "plain.jsonl"), "--out", out,
                 "--p-strong", "0.95", "--n-init", "1", "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "warning: the strong accuracy p_s is not identifiable" in cap.err
    assert json.loads(cap.out)["p_strong"] == {"value": 0.95, "se": None, "identified": False,
                                               "expected_rewrites": {"right": 0.0,
                                                                     "wrong": 0.0}}


def test_cli_few_regenerated_steps_warn(files, capsys):
    assert main(["fit-model", "--traces", str(files / "few.jsonl"), "--out",
                 str(files / "f.json"), "--n-init", "1", "--no-progress"]) == 0
    assert "poorly identified" in capsys.readouterr().err


def test_cli_bad_inputs(files, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem_id": "a", "scores": [0.5, 0.4], "correct": True,
                               "actions": ["continue", "regenerate"],
                               "strong_tokens": [0]}) + "\n")
    bad2 = tmp_path / "bad2.jsonl"
    bad2.write_text(json.dumps({"problem_id": "a", "scores": [0.5, 0.4],
                                "actions": ["continue"]}) + "\n")
    cases = [
        (["--traces", str(files / "nolabels.jsonl")], "final-answer correctness"),
        (["--traces", str(bad)], "strong_tokens must have one entry per step"),
        (["--traces", str(bad2)], "actions must have one entry per step"),
        (["--traces", str(tmp_path / "missing.jsonl")], "not found"),
        (["--traces", str(files / "routed.jsonl"), "--p-strong", "1.5"], "--p-strong"),
        (["--traces", str(files / "routed.jsonl"), "--max-steps", "1"], "--max-steps"),
    ]
    for extra, msg in cases:
        assert main(["fit-model", *extra, "--out", str(tmp_path / "o.json"), "--n-init", "1",
                     "--no-progress"]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "o.json").exists()
    assert main(["fit-model", "--traces", str(files / "routed.jsonl"), "--out",
                 str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err


def test_max_steps_cuts_longer_traces(files):
    traces = read_traces(files / "routed.jsonl")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rep = fit_trim_model(traces, max_steps=10, n_init=1)
    assert rep.model.max_steps == 10
    assert any("longer than max_steps=10" in str(x.message) for x in w
               if issubclass(x.category, DataWarning))


def test_fit_requires_traces():
    with pytest.raises(InputError):
        fit_trim_model([])


def test_bootstrap_standard_errors(files):
    traces = read_traces(files / "few.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rep = fit_trim_model(traces, n_init=1, bootstrap=3, emission="score")
    f = rep.summary["fitted"]
    assert f["p_weak"]["bootstrap_se"] > 0 and f["p_strong"]["bootstrap_se"] > 0
    assert f["hazard"]["bootstrap_se"] > 0 and len(f["observation_model"]["bootstrap_tv"]) == 3
    assert rep.model.provenance["fitted"]["p_weak"]["bootstrap_se"] == f["p_weak"]["bootstrap_se"]


def test_rewrites_without_a_next_step_or_answer_do_not_identify_p_s():
    tr = [StepTrace(problem_id=f"u{i}", scores=(0.9, 0.2), actions=(0, 1)) for i in range(10)]
    tr += [StepTrace(problem_id=f"w{i}", scores=(0.9, 0.1), correct=i % 2 == 0)
           for i in range(6)]
    with pytest.raises(InputError, match="none of their 10 regenerated steps"):
        fit_trim_model(tr, n_init=1)


def test_joint_em_recovers_the_pomdp_own_generative_model():
    """Observations drawn i.i.d. from P(o | c) given the classes (the TRIM POMDP's own model):
    the routed forward-backward and closed-form M-step recover p_w and p_s."""
    traces, classes = SyntheticTrimProcess().sample(3000, random_state=9)
    emp = empirical_class_probs(traces, classes)
    rng = np.random.default_rng(0)
    seqs = []
    for c in classes:
        idx = np.array([rng.choice(400, p=emp[ci]) for ci in c])
        seqs.append(np.column_stack([(idx // 20 + 0.5) / 20, (idx % 20 + 0.5) / 20]))
    _, y, acts, _ = E.routed_inputs(traces)
    est = RoutedTrimEM(n_init=1)
    k = est._check_params()
    batch = E._Batch(seqs, y, 0.05, acts)
    probs, p, eps = est._init(batch, k, np.random.default_rng(0))
    res = est._em(batch, k, probs, p, eps, np.zeros((3, 2)), 0, None)
    allc = np.concatenate(classes)
    pw_emp = (allc == 0).sum() / ((allc == 0).sum() + (allc == 2).sum())
    assert abs(res["p"] - pw_emp) < 0.01 and abs(res["ps"] - 0.93) < 0.02, res["p"]
    assert np.all(np.diff(res["hist"]) > -1e-6)  # EM never decreases the likelihood


# -- the E-step emission: auto, and which likelihoods are proper --------------------------

def test_auto_emission_is_fit_em_on_continue_only_and_score_on_routed(files):
    plain = read_traces(files / "plain.jsonl")
    routed = read_traces(files / "routed.jsonl")
    assert resolve_emission("auto", plain) == "joint"
    assert resolve_emission("auto", routed) == "score"
    assert resolve_emission("conditional", routed) == "conditional"
    with pytest.raises(InputError, match="emission"):
        resolve_emission("min", routed)
    plain = [dataclasses.replace(t, max_steps=None) for t in plain]  # as the real traces: uncut
    em = LatentClassObservationModel(n_init=2, m_step="histogram").fit(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rep = fit_trim_model(plain, n_init=2, p_strong=0.9)  # the default: auto
    assert rep.summary["fitted"]["observation_model"]["emission"] == "joint"
    assert rep.model.provenance["options"]["emission_requested"] == "auto"
    assert rep.model.p_weak == em.p_ and rep.summary["loglik"] == em.lower_bound_
    np.testing.assert_array_equal(rep.model.obs_probs, em.probs_)
    scored = fit_trim_model(routed, n_init=1)
    assert scored.summary["fitted"]["observation_model"]["emission"] == "score"
    ref = fit_trim_model(routed, n_init=1, emission="score")
    assert scored.model.p_weak == ref.model.p_weak and scored.model.p_strong == ref.model.p_strong


def _all_length2_logliks(emission_probs, k):
    """log P(binned scores s0, s1, outcome) of every length-2 trace on a k x k grid."""
    centres = (np.arange(k) + 0.5) / k
    seqs, ys = [], []
    for a in centres:
        for b in centres:
            for y in (0.0, 1.0):
                seqs.append(E.observation_sequence([a, b]))
                ys.append(y)
    batch = E._Batch(seqs, np.array(ys), 1.0 / k)
    _, ll, _ = E._forward_backward(batch, emission_probs, 0.7, 0.0)
    return ll


def test_conditional_and_score_emissions_are_proper_likelihoods_joint_is_not():
    """Summed over every score sequence and outcome, a proper likelihood gives 1. The
    conditional emission P(s | c, m) = P(m, s | c) / P(m | c) does; the joint P(m, s | c)
    does not (the minimum, a function of the earlier scores, is counted again)."""
    k = 3
    rng = np.random.default_rng(1)
    J = rng.dirichlet(np.ones(k * k), size=3)
    cond = conditional_emission(J, k)
    np.testing.assert_allclose(cond.reshape(3, k, k).sum(axis=2), 1.0)
    score = np.repeat(J.reshape(3, k, k).sum(axis=1)[:, None, :], k, axis=1).reshape(3, k * k)
    with np.errstate(divide="ignore"):
        assert np.exp(_all_length2_logliks(cond, k)).sum() == pytest.approx(1.0)
        assert np.exp(_all_length2_logliks(score, k)).sum() == pytest.approx(1.0)
        assert np.exp(_all_length2_logliks(J, k)).sum() < 0.9


def test_conditional_emission_recovers_continue_only_accuracy(files):
    """On scores independent given the class the proper conditional emission recovers p_w
    where the joint one (fit-em's) is pulled up by the re-counted minimum."""
    traces, classes = SyntheticTrimProcess().sample(3000, explore=0.0, random_state=21)
    allc = np.concatenate(classes)
    pw = (allc == 0).sum() / ((allc == 0).sum() + (allc == 2).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        cond = fit_trim_model(traces, n_init=1, p_strong=0.93, emission="conditional")
        joint = fit_trim_model(traces, n_init=1, p_strong=0.93, emission="joint")
    assert abs(cond.model.p_weak - pw) < 0.015, cond.model.p_weak
    assert joint.model.p_weak - pw > abs(cond.model.p_weak - pw), joint.model.p_weak
    est = cond.estimator
    assert isinstance(est, TrimModelEM) and est.emission == "conditional"
    assert np.all(np.diff(est.loglik_history_) > -1e-6)  # EM never decreases it


def test_cli_reports_the_emission_used(files, capsys):
    assert main(["fit-model", "--traces", str(files / "routed.jsonl"), "--out",
                 str(files / "e.json"), "--n-init", "1", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["emission"] == "score"
    assert main(["fit-model", "--traces", str(files / "plain.jsonl"), "--out",
                 str(files / "e.json"), "--p-strong", "0.9", "--n-init", "1",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["emission"] == "joint"
    assert main(["fit-model", "--traces", str(files / "routed.jsonl"), "--out",
                 str(files / "e.json"), "--emission", "conditional", "--n-init", "1",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["emission"] == "conditional"
