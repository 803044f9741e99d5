"""Step-level assessment: metrics against sklearn / brute force, targeting against a plain loop,
the Bayes-filter probabilities against the scalar updater, the CLI and its bad inputs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss

from trimpomdp.belief import BayesFilterUpdater
from trimpomdp.cli.main import main
from trimpomdp.data.schema import StepTrace
from trimpomdp.data.traces import write_traces
from trimpomdp.evaluation.assess import (
    EPS,
    SolutionBaselines,
    StepData,
    assess,
    auroc_fast,
    bootstrap,
    brier,
    ece,
    heldout_comparison,
    load_step_traces,
    log_loss,
    model_step_probabilities,
    solution_features,
    split_problems,
    step_log_likelihood,
    targeting,
)
from trimpomdp.model import load_model
from trimpomdp.observation.em import trace_log_likelihood


def synthetic(n_problems: int = 40, per: int = 4, seed: int = 0, labels: bool = True
              ) -> list[StepTrace]:
    """Traces with a known first error: correct steps score high, the first wrong step low."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_problems):
        acc = rng.uniform(0.8, 0.97)
        for j in range(per):
            L = int(rng.integers(2, 12))
            e = int(rng.geometric(1 - acc)) - 1
            sc = np.where(np.arange(L) < e, rng.beta(9, 1, L),
                          np.where(np.arange(L) == e, rng.beta(1.5, 3, L), rng.beta(3, 2, L)))
            lab = tuple(int(t < e) for t in range(L))
            out.append(StepTrace(problem_id=f"p{p}#{j}", scores=tuple(float(s) for s in sc),
                                 tokens=tuple(int(x) for x in rng.integers(5, 90, L)),
                                 labels=lab if labels else None, correct=bool(e >= L)))
    return out


@pytest.fixture(scope="module")
def data() -> StepData:
    return StepData.from_traces(synthetic(25, 4))


@pytest.fixture(scope="module")
def model():
    return load_model()


# ---------------------------------------------------------------------------------------------
def test_metrics_match_sklearn_and_brute_force():
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.6
    s = np.round(rng.random(500), 1)  # many ties
    assert auroc_fast(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    p = np.clip(rng.random(500), 0, 1)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    pc = np.clip(p, EPS, 1 - EPS)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, pc), abs=1e-9)
    # ECE: brute force over 10 equal-width bins, p == 1 in the last bin
    p[:5] = 1.0
    tot = 0.0
    for b in range(10):
        sel = [i for i in range(500) if min(int(p[i] * 10), 9) == b]
        if sel:
            tot += len(sel) / 500 * abs(np.mean(p[sel]) - np.mean(y[sel]))
    assert ece(y, p) == pytest.approx(tot, abs=1e-12)
    assert math.isnan(auroc_fast(np.ones(5, bool), np.arange(5.0)))


def test_prefix_labels_from_labels_and_first_error():
    trs = [StepTrace(problem_id="a", scores=(0.9, 0.8, 0.1), labels=(1, 1, 0)),
           StepTrace(problem_id="b", scores=(0.9, 0.2), first_error=0),
           StepTrace(problem_id="c", scores=(0.9,), labels=(1,), correct=True),
           StepTrace(problem_id="d", scores=(0.9, 0.5), correct=False)]
    d = StepData.from_traces(trs)
    lab = d.prefix_correct()
    np.testing.assert_array_equal(lab[0], [1, 1, 0])
    np.testing.assert_array_equal(lab[1, :2], [0, 0])
    assert np.isnan(lab[1, 2]) and lab[2, 0] == 1 and np.isnan(lab[3]).all()
    np.testing.assert_array_equal(d.first_error, [2, 0, -1, -2])
    np.testing.assert_array_equal(d.has_outcome, [False, False, True, True])


def test_filter_probabilities_match_scalar_updater(data, model):
    p, act = model_step_probabilities(model, data, lam=0.85)
    filt = BayesFilterUpdater.from_model(model, "continuous")
    for i in range(0, data.n, 17):
        b = None
        prev = 1.0
        for t in range(data.lengths[i]):
            s = float(data.scores[i, t])
            b = filt.update(b, 0, (prev, s))
            prev = min(prev, s)
            assert p[i, t] == pytest.approx(b.probs[0], abs=1e-12)
    assert set(np.unique(act[data.mask()])) <= {0, 1}


def test_targeting_matches_plain_loop(data):
    rng = np.random.default_rng(3)
    act = np.where(data.mask(), (rng.random(data.scores.shape) < 0.2).astype(np.int8), -1)
    res = targeting(data, act)
    hits = m = err = rec = before = 0
    pairs = []
    for i in range(data.n):
        fe = data.first_error[i]
        for t in range(data.lengths[i]):
            pairs.append((data.scores[i, t], i, t))
            if act[i, t] == 1:
                m += 1
                hits += int(t == fe)
        if fe >= 0:
            err += 1
            rec += int(act[i, fe] == 1)
            regs = [t for t in range(data.lengths[i]) if act[i, t] == 1]
            before += int(bool(regs) and regs[0] < fe)
    assert res["regenerations"] == m
    assert res["pomdp_precision"] == pytest.approx(hits / m)
    assert res["pomdp_recall"] == pytest.approx(rec / err)
    assert res["pomdp_first_before"] == pytest.approx(before / err)
    # TRIM-Thr: the m lowest scores
    pairs.sort(key=lambda x: x[0])
    chosen = {(i, t) for _, i, t in pairs[:m]}
    thr_hits = sum(1 for i, t in chosen if data.first_error[i] == t)
    assert res["thr_precision"] == pytest.approx(thr_hits / m)
    assert res["thr_recall"] == pytest.approx(thr_hits / err)
    assert res["thr_threshold"] == pytest.approx(pairs[m - 1][0])
    s = sum(res[f"pomdp_first_{w}"] for w in ("before", "at", "after", "none"))
    assert s == pytest.approx(1.0)


def test_bootstrap_resamples_whole_groups():
    groups = np.repeat(np.arange(6), [1, 2, 3, 1, 2, 3])
    x = np.arange(groups.size, dtype=float)
    res = bootstrap(groups, lambda i: {"mean": x[i].mean(), "n": float(i.size)}, n_boot=30,
                    seed=5)
    assert res["mean"]["value"] == pytest.approx(x.mean())
    rng = np.random.default_rng(5)
    members = [np.flatnonzero(groups == g) for g in range(6)]
    ref = [x[np.concatenate([members[j] for j in rng.integers(0, 6, 6)])].mean()
           for _ in range(30)]
    assert res["mean"]["lo"] == pytest.approx(np.percentile(ref, 2.5))
    assert res["mean"]["hi"] == pytest.approx(np.percentile(ref, 97.5))


def test_assess_sections_and_reference_values(data, model):
    a = assess(model, data, lam=0.5, n_boot=8)
    s = a.summary
    assert s["solutions"] == data.n and s["with_step_labels"] == data.n
    lab = data.prefix_correct()
    ok = ~np.isnan(lab)
    assert s["step"]["auroc"]["value"] == pytest.approx(roc_auc_score(lab[ok], a.p_step[ok]))
    rows = np.arange(data.n)
    final = a.p_step[rows, data.lengths - 1]
    assert s["solution"]["auroc"]["value"] == pytest.approx(roc_auc_score(data.correct, final))
    assert s["solution"]["auroc_min_score"]["value"] == pytest.approx(
        roc_auc_score(data.correct, np.nanmin(data.scores, axis=1)))
    for sec in ("step", "solution", "targeting"):
        for k, v in s[sec].items():
            if math.isfinite(v["value"]) and math.isfinite(v["lo"]):
                assert v["lo"] - 1e-9 <= v["hi"], (sec, k)
    assert s["step"]["auroc"]["value"] > 0.7  # synthetic errors score low
    # outcome-only traces: no step section
    d2 = StepData.from_traces(synthetic(10, 3, labels=False))
    s2 = assess(model, d2, n_boot=5).summary
    assert "step" not in s2 and "targeting" not in s2 and "solution" in s2


def test_split_baselines_and_heldout(data, model):
    tr, te = split_problems(data, 12, seed=0)
    assert not (tr & te).any() and (tr | te).all()
    pt, pe = set(data.problems()[tr]), set(data.problems()[te])
    assert len(pt) == 12 and not pt & pe
    train, test = data.subset(tr), data.subset(te)
    b = SolutionBaselines().fit(train)
    X = solution_features(train)
    Z = (X - X.mean(0)) / (X.std(0) + 1e-12)
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(Z, train.correct.astype(int))
    Zt = (solution_features(test) - X.mean(0)) / (X.std(0) + 1e-12)
    np.testing.assert_allclose(b.predict(test)["logistic"], ref.predict_proba(Zt)[:, 1],
                               atol=1e-8)
    res = heldout_comparison(train, test, {"release": model}, n_boot=5)
    assert set(res["scores"]) == {"min score", "last score", "logistic", "release"}
    assert res["scores"]["min score"]["auroc"]["value"] == pytest.approx(
        roc_auc_score(test.correct, np.nanmin(test.scores, axis=1)))
    ll = trace_log_likelihood(model.obs_probs, model.p_weak, test.sequences(),
                              test.correct.tolist())
    assert step_log_likelihood(model, test) == pytest.approx(ll.sum() / test.lengths.sum())


# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def trace_file(tmp_path):
    p = tmp_path / "traces.jsonl"
    write_traces(p, synthetic(8, 3))
    return p


def test_cli_json_and_out(trace_file, tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["assess", "default", str(trace_file), "--json", "--n-boot", "3", "--out",
               str(out), "--train-problems", "4", "--lambda", "0.85"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"solution", "step", "targeting", "heldout"} <= set(doc)
    saved = json.loads((out / "assessment.json").read_text())
    assert saved["solutions"] == doc["solutions"]
    assert (out / "reliability_step.png").stat().st_size > 1000
    assert (out / "reliability_solution.png").exists()
    d = load_step_traces([trace_file])
    assert doc["with_step_labels"] + d.n - doc["solutions"] >= 0


def test_cli_text(trace_file, capsys):
    assert main(["assess", "default", str(trace_file), "--n-boot", "3", "--lambda", "0.85"]) == 0
    txt = capsys.readouterr().out
    assert "step level" in txt and "first-error targeting" in txt


@pytest.mark.parametrize("case", ["missing", "bad_score", "no_scores", "lambda", "nboot", "out",
                                  "model", "empty", "train"])
def test_cli_bad_inputs_one_line_exit_2(case, trace_file, tmp_path, capsys):
    args = ["assess", "default", str(trace_file)]
    if case == "missing":
        args[2] = str(tmp_path / "nope.jsonl")
    elif case == "bad_score":
        p = tmp_path / "bad.jsonl"
        p.write_text('{"problem_id": "a", "scores": [0.5]}\n{"problem_id": "b", "scores": [1.5]}\n')
        args[2] = str(p)
    elif case == "no_scores":
        p = tmp_path / "bad.jsonl"
        p.write_text('{"problem_id": "a"}\n')
        args[2] = str(p)
    elif case == "lambda":
        args += ["--lambda", "-1"]
    elif case == "nboot":
        args += ["--n-boot", "0"]
    elif case == "out":
        f = tmp_path / "file.txt"
        f.write_text("x")
        args += ["--out", str(f)]
    elif case == "model":
        m = tmp_path / "m.json"
        m.write_text("{}")
        args[1] = str(m)
    elif case == "empty":
        p = tmp_path / "empty.jsonl"
        p.write_text("")
        args[2] = str(p)
    elif case == "train":
        args += ["--train-problems", "100"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("trimpomdp assess: error:"), err
    if case == "bad_score":
        assert "bad.jsonl:2" in err[0] and "scores" in err[0]
