"""Issue 17: does a TRIM model's belief beat the minimum score? Held-out measurements on real PRM
traces, step-level checks on simulated traces with true labels, and cost–accuracy in the
calibrated simulator.

    python benchmarks/assess_real.py                 # everything (writes results/assess_real.*)
    python benchmarks/assess_real.py --quick         # MATH-500 only, 50 resamples, no simulator

Real data: ``../shared/data/prm_scores_strictprmbench`` (MATH-500 with Qwen2.5-Math-PRM-7B, GSM8K
with five PRMs; final-answer outcomes only). Each file is split by problem, 250 / 250 with
``numpy.random.default_rng(0)``; everything is fitted on the training half and measured on the
other. Models: the release model (bundled), today's EM model (``fit-em`` defaults on the training
half), the calibrated-score EM model (:mod:`trimpomdp.evaluation.score_model`, one type and two
types); baselines: Platt-scaled min and last score, logistic regression on six features.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from trimpomdp.builders import em_trim_model
from trimpomdp.cli.assess import _clean
from trimpomdp.data.schema import StepTrace
from trimpomdp.data.traces import write_traces
from trimpomdp.evaluation.assess import (
    assess,
    heldout_comparison,
    load_step_traces,
    scenario_traces,
    score_log_likelihood,
    solution_features,
    split_problems,
)
from trimpomdp.evaluation.curves import point_from_run, references_from_runs
from trimpomdp.evaluation.metrics import cpt, pgr
from trimpomdp.evaluation.score_model import CalibratedScoreModel
from trimpomdp.model import load_model
from trimpomdp.observation.em import LatentClassObservationModel
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.resources import shared_data_dir
from trimpomdp.routing.spec import make_router, pomdp_router
from trimpomdp.sim import load_simulator, simulate
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

OUT = Path(__file__).resolve().parent / "results"
DATASETS = [("MATH-500", "math500_bon32_prm_step_scores.jsonl.gz", "qwen_prm")] + [
    ("GSM8K", "gsm8k_bon32_prm_step_scores.jsonl.gz", prm)
    for prm in ("qwen_prm", "skywork_prm", "skywork_prm_1_5b", "rlhflow_prm", "math_shepherd")]


def fit_em(train: Any, base: Any) -> Any:
    est = LatentClassObservationModel(random_state=0).fit(train.sequences(),
                                                            train.correct.tolist())
    return em_trim_model(est, base, source="train split")


def stacked(train: Any, test: Any, model: Any) -> np.ndarray:
    """Logistic regression on the six baseline features plus the model's log-odds of P(correct)
    (fitted on the training half, in-sample model probabilities): does the belief add anything
    beyond the features?"""
    def lo(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p) - np.log1p(-p)

    Xa = np.column_stack([solution_features(train), lo(model.predict_correct(train))])
    Xb = np.column_stack([solution_features(test), lo(model.predict_correct(test))])
    mu, sd = Xa.mean(axis=0), Xa.std(axis=0) + 1e-12
    lr = LogisticRegression(C=1.0, max_iter=3000).fit((Xa - mu) / sd, train.correct.astype(int))
    return lr.predict_proba((Xb - mu) / sd)[:, 1]


def real(name: str, file: Path, prm: str, n_boot: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    data = load_step_traces([file], prm=prm)
    tr, te = split_problems(data, 250, seed=0)
    train, test = data.subset(tr), data.subset(te)
    release = load_model()
    em = fit_em(train, release)
    new1 = CalibratedScoreModel(n_types=1).fit(train)
    new2 = CalibratedScoreModel(n_types=2).fit(train)
    new1e = CalibratedScoreModel(n_types=1, learn_epsilon=True).fit(train)
    tok = CalibratedScoreModel(n_types=1, token_bins=4).fit(train)
    toke = CalibratedScoreModel(n_types=1, token_bins=4, learn_epsilon=True).fit(train)
    res = heldout_comparison(train, test, {"release model": release, "EM model (today)": em},
                             extra={"calibrated EM, 1 type": new1.predict_correct(test),
                                    "calibrated EM, 1 type, learned ε":
                                        new1e.predict_correct(test),
                                    "calibrated EM, 2 types": new2.predict_correct(test),
                                    "calibrated EM, token-dependent": tok.predict_correct(test),
                                    "calibrated EM, token-dependent, learned ε":
                                        toke.predict_correct(test),
                                    "logistic + calibrated belief (stacked)":
                                        stacked(train, test, new1e)},
                             n_boot=n_boot, seed=0)
    res["score_loglik"].update({"calibrated EM, 1 type": new1.step_log_likelihood(test),
                                "calibrated EM, 1 type, learned ε": new1e.step_log_likelihood(test),
                                "calibrated EM, 2 types": new2.step_log_likelihood(test),
                                "calibrated EM, token-dependent": tok.step_log_likelihood(test),
                                "calibrated EM, token-dependent, learned ε":
                                    toke.step_log_likelihood(test)})
    res.update(dataset=name, prm=prm, file=file.name, seconds=time.perf_counter() - t0,
               em_p=em.p_weak, new1_p=float(new1.em_.p_[0]), new1e_p=float(new1e.em_.p_[0]),
               new1e_epsilon=new1e.em_.epsilon_, new_p=[float(x) for x in new2.em_.p_],
               new_weights=[float(x) for x in new2.em_.weights_])
    return res


# ----------------------------------------------------------------------------------------------
def simulated(n_fit: int, n_test: int, lams: list[float], thr: list[float], n_boot: int
              ) -> dict[str, Any]:
    sim = load_simulator()
    release = load_model()
    fit_data = scenario_traces(sim.scenario(n_fit, 1))
    em = fit_em(fit_data, release)
    new = CalibratedScoreModel(n_types=1).fit(fit_data)
    new_model = new.trim_model(release, name="calibrated-score-em (sim)")
    sc = sim.scenario(n_test, 0)
    test = scenario_traces(sc)
    out: dict[str, Any] = {"n_fit": n_fit, "n_test": n_test, "em_p_weak": em.p_weak,
                           "new_p_weak": new_model.p_weak}
    # step level with true labels (passive replay of the weak drafts), λ = 0.25
    step = {}
    for name, m, d in (("release model", release, test), ("EM model (today)", em, test),
                       ("calibrated EM, 1 type", new_model, test)):
        a = assess(m, d, lam=0.25, n_boot=n_boot, seed=0)
        step[name] = {k: a.summary[k] for k in ("step", "solution", "targeting")}
    out["assess"] = step
    out["score_loglik"] = {"release model": score_log_likelihood(release, test),
                           "EM model (today)": score_log_likelihood(em, test),
                           "calibrated EM, 1 type": new.step_log_likelihood(test)}
    # cost–accuracy
    runs = {s: simulate(make_router(s, release, record=False), sc) for s in
            ("weak", "strong", "oracle")}
    ref = references_from_runs(runs["weak"], runs["strong"], runs["oracle"])
    curves: dict[str, list[Any]] = {}
    solve_s: dict[str, list[float]] = {}
    for name, m, s in (("TRIM-POMDP, release model", release, sc),
                       ("TRIM-POMDP, EM model (today)", em, sc),
                       ("TRIM-POMDP, calibrated EM", new_model, sc)):  # it carries g
        for lam in lams:
            t0 = time.perf_counter()
            pol = FiniteHorizonSolver().solve(TrimPOMDP(model=m, lam=lam))
            solve_s.setdefault(name, []).append(time.perf_counter() - t0)
            r = simulate(pomdp_router(pol, belief="filter", record=False), s)
            curves.setdefault(name, []).append(point_from_run(r, lam, name))
    for k in thr:
        r = simulate(make_router(f"thr:{k}", release, record=False), sc)
        curves.setdefault("TRIM-Thr", []).append(point_from_run(r, k, "TRIM-Thr"))
    so = ref.strong_tokens
    out["references"] = {"weak": ref.weak_accuracy, "strong": ref.strong_accuracy,
                         "oracle": ref.oracle_accuracy, "strong_tokens": so}
    out["curves"] = {
        name: {"points": [{"param": p.param, "accuracy": p.accuracy,
                           "cost": p.strong_tokens / so, "pgr": pgr(p.accuracy, ref)}
                          for p in pts],
               "cpt50": cpt(pts, 0.5, ref), "cpt80": cpt(pts, 0.8, ref),
               "cpt95": cpt(pts, 0.95, ref),
               "max_accuracy": max(p.accuracy for p in pts),
               "max_pgr": max(pgr(p.accuracy, ref) for p in pts)}
        for name, pts in curves.items()}
    out["solve_seconds"] = {k: {"per_lambda": v, "mean": float(np.mean(v))}
                            for k, v in solve_s.items()}
    out["lambdas"], out["thresholds"] = lams, thr
    return out


# ----------------------------------------------------------------------------------------------
def ci(v: dict[str, float] | None, d: int = 4, signed: bool = False) -> str:
    if not v or v.get("value") is None:
        return "—"
    f = f"{{:{'+' if signed else ''}.{d}f}}"
    return f"{f.format(v['value'])} [{f.format(v['lo'])}, {f.format(v['hi'])}]"


def markdown(doc: dict[str, Any]) -> str:
    L = ["# Issue 17: TRIM belief vs baselines (held-out), step-level checks, simulator curves",
         "", (f"Command: `{doc['command']}` · {doc['n_boot']} problem resamples (percentile "
         "95% intervals, paired) · wall time "
         f"{doc['seconds']:.0f} s on the shared 2-core machine."), ""]
    for r in doc["real"]:
        L += [(f"## {r['dataset']} · {r['prm']} — {r['test_solutions']} held-out solutions of "
              f"{r['test_problems']} problems (fitted on {r['train_solutions']} of "
              f"{r['train_problems']}); held-out accuracy {r['test_accuracy']:.3f}"), "",
              f"Best baseline (held-out AUROC): **{r['best_baseline']}**.", "",
              ("| score | AUROC (95% CI) | AUROC − best baseline (paired 95% CI) | Brier | "
              "log-loss | ECE |"), "|---|---|---|---|---|---|"]
        for name, m in r["scores"].items():
            L.append(f"| {name} | {ci(m['auroc'])} | {ci(m['auroc_minus_best_baseline'], signed=True)}"
                     f" | {m['brier']['value']:.4f} | {m['log_loss']['value']:.4f} | "
                     f"{m['ece']['value']:.4f} |")
        L += ["", "Held-out log-likelihood per step (nats): TRIM observation (min_prev, current) "
              "on the 0.05 grid, as `fit-em` measures it — " + ", ".join(
                  f"{k} {v:.4f}" for k, v in r["step_loglik"].items()) + "; density of the raw "
              "score sequence — " + ", ".join(f"{k} {v:.3f}" for k, v in
                                              r["score_loglik"].items()) + ".", ""]
    s = doc.get("sim")
    if s:
        L += [(f"## Calibrated simulator: step level with true labels ({s['n_test']} problems, "
              f"weak-only drafts replayed; models fitted on {s['n_fit']} other simulated "
              "problems' outcomes)"), "",
              ("| model | step AUROC | min-so-far AUROC | step Brier | step ECE | solution AUROC |"
              " solution Brier |"), "|---|---|---|---|---|---|---|"]
        for name, a in s["assess"].items():
            st, so = a["step"], a["solution"]
            L.append(f"| {name} | {ci(st['auroc'])} | {ci(st['auroc_min_so_far'])} | "
                     f"{st['brier']['value']:.4f} | {st['ece']['value']:.4f} | "
                     f"{ci(so['auroc'])} | {so['brier']['value']:.4f} |")
        L += ["", ("First-error targeting at λ = 0.25 (regenerate decisions on the passive replay "
              "vs TRIM-Thr at the same number of regenerations):"), "",
              ("| model | regenerations | precision | TRIM-Thr precision | recall | TRIM-Thr "
              "recall | first regeneration before the first error (share of wrong solutions) "
              "| TRIM-Thr |"), "|---|---|---|---|---|---|---|---|"]
        for name, a in s["assess"].items():
            t = a["targeting"]
            L.append(f"| {name} | {t['regenerations']['value']:.0f} | "
                     f"{ci(t['pomdp_precision'], 3)} | {ci(t['thr_precision'], 3)} | "
                     f"{ci(t['pomdp_recall'], 3)} | {ci(t['thr_recall'], 3)} | "
                     f"{ci(t['pomdp_first_before'], 3)} | {ci(t['thr_first_before'], 3)} |")
        ref = s["references"]
        L += ["", "Score-sequence log-likelihood per step (nats): " + ", ".join(
            f"{k} {v:.3f}" for k, v in s["score_loglik"].items()) + ".", "",
              (f"## Calibrated simulator: cost–accuracy ({s['n_test']} problems, seed 0; weak "
              f"{ref['weak']:.3f}, strong {ref['strong']:.3f} at {ref['strong_tokens']:.0f} "
              "strong tokens; c = strong tokens / strong-only)"), "",
              "| policy | CPT(50%) | CPT(80%) | CPT(95%) | max accuracy | max PGR |",
              "|---|---|---|---|---|---|"]
        for name, c in s["curves"].items():
            f = lambda x: "—" if x is None else f"{x:.3f}"
            L.append(f"| {name} | {f(c['cpt50'])} | {f(c['cpt80'])} | {f(c['cpt95'])} | "
                     f"{c['max_accuracy']:.3f} | {c['max_pgr']:.3f} |")
        L += ["", "Solve time per λ (exact backward induction, s): " + ", ".join(
            f"{k} {v['mean']:.2f}" for k, v in s["solve_seconds"].items()) + ".", ""]
    return "\n".join(L) + "\n"


def write_sim_traces(path: str, n: int = 1000, seed: int = 0) -> None:
    d = scenario_traces(load_simulator().scenario(n, seed))
    out = []
    for i in range(d.n):
        L, fe = int(d.lengths[i]), int(d.first_error[i])
        out.append(StepTrace(problem_id=d.ids[i], scores=tuple(map(float, d.scores[i, :L])),
                             tokens=tuple(map(int, d.tokens[i, :L])),
                             labels=tuple(int(fe < 0 or t < fe) for t in range(L)),
                             correct=bool(d.correct[i])))
    write_traces(path, out)


EXPERIMENTS: list[tuple[str, dict[str, Any], bool]] = [
    # (name, CalibratedScoreModel options, usable by the router as a TrimModel)
    ("calibrated, current score", {}, True),
    ("+ learned ε", {"learn_epsilon": True}, True),
    ("+ ε, smoothing α = 1", {"learn_epsilon": True, "alpha": 1.0}, True),
    ("+ ε, finer grid 0.0125", {"learn_epsilon": True, "bin_size": 0.0125}, True),
    ("min as a feature: P(s given min_prev, c)", {"emission": "conditional"}, True),
    ("min in 4 bands: P(s given band, c)", {"emission": "conditional", "min_bands": 4}, False),
    ("token-dependent + ε", {"token_bins": 4, "learn_epsilon": True}, False),
    ("step-index-dependent + ε", {"step_edges": (1, 2, 3, 5, 8), "learn_epsilon": True}, False),
]


def experiments(n_boot: int, out: Path) -> dict[str, Any]:
    """Issue 17 item 2: model changes on the MATH-500 held-out half against the logistic
    regression (paired bootstrap), plus a gradient-boosting check of how much ranking
    information the six baseline features hold beyond a linear model."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from trimpomdp.evaluation.assess import (
        SolutionBaselines,
        auroc_fast,
        bootstrap,
        brier,
        log_loss,
    )

    root = shared_data_dir()
    if root is None:
        raise SystemExit("no ../shared/data: nothing to measure")
    d = load_step_traces([root / "prm_scores_strictprmbench" / DATASETS[0][1]], prm="qwen_prm")
    tr, te = split_problems(d, 250, seed=0)
    train, test = d.subset(tr), d.subset(te)
    preds = SolutionBaselines().fit(train).predict(test)
    rows: list[dict[str, Any]] = []
    y = test.correct
    fits: dict[str, Any] = {}
    for name, kw, usable in EXPERIMENTS:
        t0 = time.perf_counter()
        m = CalibratedScoreModel(n_init=1, **kw).fit(train)
        preds[name] = m.predict_correct(test)
        fits[name] = {"usable_by_router": usable, "fit_seconds": time.perf_counter() - t0,
                      "score_loglik": m.step_log_likelihood(test),
                      "epsilon": float(m.em_.epsilon_), "p": float(m.em_.p_[0])}
    Xa, Xb = solution_features(train), solution_features(test)
    gb = HistGradientBoostingClassifier(learning_rate=0.03, max_iter=300, max_leaf_nodes=15,
                                        l2_regularization=1.0, random_state=0)
    preds["gradient boosting on the 6 baseline features"] = gb.fit(
        Xa, train.correct.astype(int)).predict_proba(Xb)[:, 1]
    mu, sd = Xa.mean(axis=0), Xa.std(axis=0) + 1e-12
    A, B = (Xa - mu) / sd, (Xb - mu) / sd
    iu = np.triu_indices(A.shape[1])
    A2 = np.column_stack([A, (A[:, :, None] * A[:, None, :])[:, iu[0], iu[1]]])
    B2 = np.column_stack([B, (B[:, :, None] * B[:, None, :])[:, iu[0], iu[1]]])
    m2, s2 = A2.mean(axis=0), A2.std(axis=0) + 1e-12
    lr2 = LogisticRegression(C=1.0, max_iter=5000).fit((A2 - m2) / s2, train.correct.astype(int))
    preds["logistic, degree 2 (squares and pairwise products)"] = lr2.predict_proba(
        (B2 - m2) / s2)[:, 1]

    def stat(i: np.ndarray) -> dict[str, float]:
        ref = auroc_fast(y[i], preds["logistic"][i])
        return {f"{k}|{m}": v for k, p in preds.items() for m, v in (
            ("auroc", auroc_fast(y[i], p[i])), ("delta", auroc_fast(y[i], p[i]) - ref))}

    boot = bootstrap(test.problems(), stat, n_boot=n_boot, seed=0)
    for k, p in preds.items():
        rows.append({"name": k, "auroc": boot[f"{k}|auroc"], "delta": boot[f"{k}|delta"],
                     "brier": brier(y, p), "log_loss": log_loss(y, p), **fits.get(k, {})})
    doc = {"command": "python benchmarks/assess_real.py --experiments", "n_boot": n_boot,
           "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(_clean(doc), indent=1) + "\n")
    L = ["# Issue 17 item 2: model changes on the MATH-500 held-out half (250 / 250, seed 0)", "",
         f"`{doc['command']}` · {n_boot} problem resamples, paired.", "",
         ("| score | router-usable | AUROC (95% CI) | − logistic (paired 95% CI) | Brier | "
         "log-loss | raw-score ll/step |"), "|---|---|---|---|---|---|---|"]
    for r in rows:
        u = {True: "yes", False: "no"}.get(r.get("usable_by_router"), "—")  # type: ignore[arg-type]
        ll = f"{r['score_loglik']:.3f}" if "score_loglik" in r else "—"
        L.append(f"| {r['name']} | {u} | {ci(r['auroc'])} | {ci(r['delta'], signed=True)} | "
                 f"{r['brier']:.4f} | {r['log_loss']:.4f} | {ll} |")
    out.with_suffix(".md").write_text("\n".join(L) + "\n")
    print("\n".join(L))
    return doc


def _cli(*argv: str) -> tuple[dict[str, Any], float]:
    """Run one ``trimpomdp`` command in a subprocess; (its JSON output or {}, CPU seconds)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "trimpomdp", *argv], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"trimpomdp {' '.join(argv)} failed: {r.stderr.strip()}")
    out = r.stdout.strip().splitlines()
    doc = json.loads(out[-1]) if out and out[-1].startswith("{") else {}
    return doc, time.perf_counter() - t


def router_curve(model_file: str, out: Path, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Cost–accuracy of a TRIM model file through the command line only: ``trimpomdp solve
    --model FILE --lambda λ`` then ``trimpomdp simulate --policy pomdp-filter:POLICY
    --simulator calibrated`` (the router applies the file's score transform), against the
    bundled model's POMDP and TRIM-Thr on the same scenario."""
    from tempfile import TemporaryDirectory

    from trimpomdp.evaluation.curves import CurvePoint, References
    from trimpomdp.policies.trim_policy import TrimPolicy

    lams = [0.02, 0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.85]
    thr = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    sim = ["--simulator", "calibrated", "--n", str(n), "--seed", str(seed), "--json"]
    refs = {k: _cli("simulate", "--policy", k, *sim)[0] for k in ("weak", "strong")}
    ref = References(weak_accuracy=refs["weak"]["accuracy"],
                     strong_accuracy=refs["strong"]["accuracy"],
                     strong_tokens=refs["strong"]["mean_strong_tokens"],
                     weak_tokens=refs["weak"]["mean_strong_tokens"])
    curves: dict[str, list[CurvePoint]] = {}
    solve: dict[str, list[float]] = {}
    with TemporaryDirectory() as tmp:
        for name, model in (("TRIM-POMDP, bundled model", None), ("TRIM-POMDP, " + Path(
                model_file).name, model_file)):
            for lam in lams:
                if model is None:
                    spec = f"pomdp-filter:{lam:g}"
                else:
                    pol = str(Path(tmp) / f"pol_{lam:g}.json")
                    _cli("solve", "--model", model, "--lambda", str(lam), "--out", pol, "--quiet")
                    solve.setdefault(name, []).append(_solve_seconds(TrimPolicy.load(pol)))
                    spec = f"pomdp-filter:{pol}"
                r = _cli("simulate", "--policy", spec, *sim)[0]
                curves.setdefault(name, []).append(CurvePoint(
                    policy=name, accuracy=r["accuracy"], strong_tokens=r["mean_strong_tokens"],
                    param=lam, n=n))
        for k in thr:
            r = _cli("simulate", "--policy", f"thr:{k}", *sim)[0]
            curves.setdefault("TRIM-Thr", []).append(CurvePoint(
                policy="TRIM-Thr", accuracy=r["accuracy"], strong_tokens=r["mean_strong_tokens"],
                param=k, n=n))
    so = ref.strong_tokens
    doc = {"model_file": model_file, "n": n, "seed": seed,
           "references": {"weak": ref.weak_accuracy, "strong": ref.strong_accuracy,
                          "strong_tokens": so},
           "curves": {name: {"points": [{"param": p.param, "accuracy": p.accuracy,
                                         "cost": p.strong_tokens / so,
                                         "pgr": pgr(p.accuracy, ref)} for p in pts],
                             "cpt50": cpt(pts, 0.5, ref), "cpt80": cpt(pts, 0.8, ref),
                             "cpt95": cpt(pts, 0.95, ref),
                             "max_accuracy": max(p.accuracy for p in pts),
                             "max_pgr": max(pgr(p.accuracy, ref) for p in pts)}
                      for name, pts in curves.items()},
           "solve_seconds": solve}
    out.with_suffix(".json").write_text(json.dumps(_clean(doc), indent=1) + "\n")
    f = lambda x: "—" if x is None else f"{x:.3f}"
    L = [f"# Router curve of `{model_file}` through `trimpomdp solve` / `trimpomdp simulate`", "",
         (f"Calibrated simulator, {n} problems, seed {seed}: weak {ref.weak_accuracy:.3f}, strong "
          f"{ref.strong_accuracy:.3f} at {so:.0f} strong tokens; c = strong tokens / strong-only;"
          f" λ ∈ {lams}, k ∈ {thr}."), "",
         "| policy | CPT(50%) | CPT(80%) | CPT(95%) | max accuracy | max PGR |",
         "|---|---|---|---|---|---|"]
    for name, c in doc["curves"].items():
        L.append(f"| {name} | {f(c['cpt50'])} | {f(c['cpt80'])} | {f(c['cpt95'])} | "
                 f"{c['max_accuracy']:.3f} | {c['max_pgr']:.3f} |")
    for name, v in solve.items():
        L += ["", f"Exact solve time per λ ({name}, s): " + ", ".join(
            f"{lam:g}: {t:.2f}" for lam, t in zip(lams, v, strict=True))
            + f" (mean {np.mean(v):.2f})."]
    out.with_suffix(".md").write_text("\n".join(L) + "\n")
    print("\n".join(L))
    return doc


def _solve_seconds(policy: Any) -> float:
    """Re-solve ``policy``'s POMDP in-process to time the exact solver alone (no start-up)."""
    t = time.process_time()
    FiniteHorizonSolver().solve(policy.pomdp)
    return time.process_time() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--out", default=str(OUT / "assess_real"))
    ap.add_argument("--sim-traces", default=None, metavar="PATH", help="only write the step-"
                    "labelled weak-only traces of a simulator scenario (default: the test "
                    "scenario, 1000 problems, seed 0) as a step-trace JSONL file, for "
                    "`trimpomdp assess`")
    ap.add_argument("--sim-n", type=int, default=1000, help="problems of --sim-traces")
    ap.add_argument("--experiments", action="store_true", help="only the model-change table on "
                    "MATH-500 (-> results/assess_experiments.{md,json})")
    ap.add_argument("--router-curve", default=None, metavar="MODEL", help="only the cost–accuracy "
                    "curve of a TRIM model file through `trimpomdp solve` and `trimpomdp "
                    "simulate` (-> results/assess_router_curve.{md,json})")
    ap.add_argument("--sim-seed", type=int, default=0, help="scenario seed of --sim-traces")
    args = ap.parse_args(argv)
    if args.sim_traces:
        write_sim_traces(args.sim_traces, n=args.sim_n, seed=args.sim_seed)
        return 0
    if args.experiments:
        experiments(args.n_boot, OUT / "assess_experiments")
        return 0
    if args.router_curve:
        router_curve(args.router_curve, OUT / "assess_router_curve")
        return 0
    t0 = time.perf_counter()
    root = shared_data_dir()
    if root is None or not (root / "prm_scores_strictprmbench").is_dir():
        print("no ../shared/data/prm_scores_strictprmbench: nothing to measure", file=sys.stderr)
        return 1
    n_boot = 50 if args.quick else args.n_boot
    doc: dict[str, Any] = {"command": "python benchmarks/assess_real.py" + (
        " --quick" if args.quick else ""), "n_boot": n_boot, "real": []}
    for name, file, prm in DATASETS[:1] if args.quick else DATASETS:
        r = real(name, root / "prm_scores_strictprmbench" / file, prm, n_boot)
        doc["real"].append(r)
        print(f"{name} {prm}: " + ", ".join(f"{k} {v['auroc']['value']:.4f}"
                                            for k, v in r["scores"].items()), flush=True)
    if not args.quick:
        lams = [0.02, 0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.85]
        thr = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
        doc["sim"] = simulated(4000, 1000, lams, thr, n_boot)
        print("simulator done", flush=True)
    doc["seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(_clean(doc), indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
