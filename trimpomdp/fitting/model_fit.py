"""Fit every parameter of a TRIM model from step traces (``trimpomdp fit-model``).

* P(o | c), p_w and p_s jointly by EM over routed traces (:class:`TrimModelEM`, emission as
  in :mod:`trimpomdp.fitting.emission`): supervised where step labels exist, from final-answer
  correctness otherwise, any mix;
* the termination hazard from the solution lengths, Kaplan–Meier style so that solutions cut
  at the step limit (``max_steps``, censored) count as "still running";
* the future-token count (mean strong-rewrite tokens, else mean draft tokens) and the horizon.

Uncertainty: standard errors of p_w and p_s from the observed information (numerical Hessian
of the marginal log-likelihood, P(o | c) held at its fit), of the hazard's mean length and of
the future tokens by their sampling error; ``bootstrap=B`` refits B resamples of the traces
for all of them. Provenance records the inputs' sha256, counts and the log-likelihood.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trimpomdp._version import __version__
from trimpomdp.builders import fitted_trim_model
from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import DataWarning, InputError
from trimpomdp.fitting.emission import TrimModelEM, resolve_emission
from trimpomdp.model import TrimModel
from trimpomdp.pomdp.dynamics import length_pmf

#: fewer regenerated steps than this: p_s is poorly identified (warning)
MIN_REGENERATED = 200
#: future tokens come from strong rewrites when at least this many have token counts
MIN_STRONG_TOKENS = 30


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fit_hazard(traces: Sequence[StepTrace], max_steps: int) -> tuple[np.ndarray, dict[str, Any]]:
    """h(0..max_steps) from solution lengths, censored ones counted at risk, not as endings.

    h(k) = #(uncensored ending at k) / #(length >= k); h(max_steps) = 1 (the horizon);
    a step nobody reached gets h = 1. Returns the hazard and a report (mean length and its
    standard error from the length distribution, counts).
    """
    L = np.array([tr.n_steps for tr in traces])
    cens = np.array([tr.censored for tr in traces])
    if L.max() > max_steps:
        raise InputError(f"max_steps ({max_steps}) must cover the longest trace ({int(L.max())} "
                         "steps).", field="max_steps")
    ends = np.bincount(L[~cens], minlength=max_steps + 1).astype(float)
    at_risk = np.array([(L >= k).sum() for k in range(max_steps + 1)], dtype=float)
    h = np.divide(ends, at_risk, out=np.ones(max_steps + 1), where=at_risk > 0)
    h[0] = 0.0 if at_risk[0] > 0 else h[0]
    h[max_steps] = 1.0
    pmf = length_pmf(h.tolist())
    ks = np.arange(max_steps + 1)
    mean = float(pmf @ ks)
    sd = float(np.sqrt(max(float(pmf @ ks ** 2) - mean ** 2, 0.0)))
    rep = {"n_lengths": int(L.size), "n_censored": int(cens.sum()), "mean_length": mean,
           "mean_length_se": sd / np.sqrt(max(int((~cens).sum()), 1)),
           "at_risk": at_risk.astype(int).tolist()}
    return h, rep


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray, step: float = 1e-4) -> np.ndarray:
    n = x.size
    H = np.empty((n, n))
    f0 = f(x)
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * step, np.eye(n)[j] * step
            if i == j:
                H[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / step ** 2
            else:
                H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                                     + f(x - ei - ej)) / (4 * step ** 2)
    return H


def accuracy_standard_errors(est: TrimModelEM) -> dict[str, float | None]:
    """SEs of p_w (and p_s when identified) from the observed information at the fit."""
    pw, ps = est.p_, est.p_strong_
    step = 1e-4
    if est.strong_identified_ and 2 * step < ps < 1 - 2 * step:
        x = np.array([pw, ps])
        H = _hessian(lambda v: est.loglik(float(v[0]), float(v[1])), x, step)
    else:
        x = np.array([pw])
        H = _hessian(lambda v: est.loglik(float(v[0]), ps), x, step)
    try:
        cov = np.linalg.inv(-H)
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    except np.linalg.LinAlgError:
        se = np.full(x.size, np.nan)
    out: dict[str, float | None] = {"p_weak": float(se[0]) if np.isfinite(se[0]) else None,
                                    "p_strong": None}
    if x.size == 2 and np.isfinite(se[1]):
        out["p_strong"] = float(se[1])
    return out


def informative_rewrites(traces: Sequence[StepTrace]) -> int:
    """Regenerated steps that inform p_s: followed by another step, or the last step of a
    solution whose final answer is known (and not censored)."""
    n = 0
    for tr in traces:
        a = tr.action_array()
        n += int(a[:-1].sum())
        if a[-1] and tr.correct is not None and not tr.censored:
            n += 1
    return n


def future_tokens(traces: Sequence[StepTrace]) -> tuple[int, dict[str, Any]]:
    """Tokens a future regeneration costs: the mean strong rewrite (enough of them), else the
    mean weak draft; 60 (the release's) when no trace has token counts."""
    strong = [v for tr in traces if tr.strong_tokens is not None and tr.actions is not None
              for a, v in zip(tr.actions, tr.strong_tokens) if a]
    draft = [v for tr in traces if tr.tokens is not None for v in tr.tokens]
    if len(strong) >= MIN_STRONG_TOKENS:
        x, src = np.asarray(strong, float), "mean tokens of the strong rewrites"
    elif draft:
        x = np.asarray(draft, float)
        src = "mean tokens of the weak drafts (too few strong rewrites with token counts)"
    else:
        warnings.warn("no trace has token counts: future_tokens stays at 60 (the release's)",
                      DataWarning, stacklevel=3)
        return 60, {"source": "default (no token counts)", "mean": 60.0, "se": None, "n": 0}
    mean = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else None
    return max(1, round(mean)), {"source": src, "mean": mean, "se": se, "n": int(x.size),
                                      "mean_strong_tokens": float(np.mean(strong)) if strong
                                      else None,
                                      "mean_draft_tokens": float(np.mean(draft)) if draft
                                      else None}


def truncate_trace(tr: StepTrace, n: int) -> StepTrace:
    """The first ``n`` steps of a trace, marked as cut at the step limit ``n`` (censored)."""
    cut = {name: None if getattr(tr, name) is None else tuple(getattr(tr, name)[:n])
           for name in ("scores", "tokens", "labels", "actions", "strong_tokens",
                        "strong_scores")}
    fe = tr.first_error if tr.first_error is not None and tr.first_error < n else None
    if tr.first_error is not None and fe is None and cut["labels"] is None:
        cut["labels"] = (1,) * n  # the first error lies beyond the cut
    return StepTrace(problem_id=tr.problem_id, first_error=fe, correct=tr.correct,
                     max_steps=n, **cut)  # type: ignore[arg-type]


@dataclass
class FitReport:
    """What ``fit_trim_model`` fitted, with uncertainty and counts."""

    model: TrimModel
    estimator: TrimModelEM
    summary: dict[str, Any] = field(default_factory=dict)


def fit_trim_model(traces: Sequence[StepTrace], *, sources: Sequence[str | os.PathLike[str]] = (),
                   p_strong: float | None = None, max_steps: int | None = None,
                   emission: str = "auto", bin_size: float = 0.05, alpha: float = 0.1,
                   n_init: int = 8, max_iter: int = 500, tol: float = 1e-7,
                   random_state: int = 0, bootstrap: int = 0, name: str | None = None,
                   callback: Callable[[int, int, float], None] | None = None) -> FitReport:
    """Fit a whole :class:`TrimModel` from routed (or continue-only) step traces.

    ``p_strong``: used only when no step was regenerated (p_s is then not identifiable from
    the traces: without it that is an error). ``max_steps``: the horizon (default: the largest
    ``max_steps`` of a censored trace or the longest trace).
    """
    traces = list(traces)
    if not traces:
        raise InputError("no traces to fit.", field="traces")
    requested, emission = emission, resolve_emission(emission, traces)
    n_regen_all = sum(tr.n_regenerated for tr in traces)
    n_regen = informative_rewrites(traces)
    if n_regen == 0 and p_strong is None:
        why = (f"none of their {sum(tr.n_steps for tr in traces)} steps was regenerated"
               if n_regen_all == 0 else
               f"none of their {n_regen_all} regenerated steps is followed by a step or a "
               "known final answer")
        raise InputError(f"the strong accuracy p_s is not identifiable from these traces: {why}. "
                         "Collect traces with `trimpomdp run --policy explore:0.3` (then "
                         "`trimpomdp traces`), or give p_s with --p-strong.", field="actions")
    horizon = max_steps
    if horizon is not None:
        long = [i for i, tr in enumerate(traces) if tr.n_steps > int(horizon)]
        if long:
            warnings.warn(f"{len(long)} of {len(traces)} traces are longer than max_steps="
                          f"{int(horizon)}: they are cut there and count as censored (length >= "
                          f"{int(horizon)}, no outcome)", DataWarning, stacklevel=2)
            for i in long:
                traces[i] = truncate_trace(traces[i], int(horizon))
    else:
        cens = [tr.max_steps for tr in traces if tr.max_steps is not None]
        horizon = max([tr.n_steps for tr in traces] + cens)
    horizon = max(int(horizon), 2)
    hazard, haz_rep = fit_hazard(traces, horizon)
    ft, ft_rep = future_tokens(traces)
    est = TrimModelEM(bin_size=bin_size, alpha=alpha, n_init=n_init, max_iter=max_iter,
                       tol=tol, random_state=random_state, emission=emission,
                       p_strong_init=0.9 if p_strong is None else float(p_strong))
    est.fit(traces, callback=callback)
    se = accuracy_standard_errors(est)
    ps = est.p_strong_ if n_regen else float(p_strong)  # type: ignore[arg-type]
    if n_regen == 0:
        warnings.warn(f"the strong accuracy p_s is not identifiable from these traces (no "
                      f"informative regenerated step): p_s = {ps:g} is the value given with "
                      "--p-strong, not fitted", DataWarning, stacklevel=2)
    elif n_regen < MIN_REGENERATED or (se["p_strong"] or 0.0) > 0.05:
        se_txt = f"{se['p_strong']:.3g}" if se["p_strong"] is not None else "unknown"
        warnings.warn(f"p_s is poorly identified: only {n_regen} regenerated steps followed by a "
                      f"step or a known answer (standard error {se_txt}); "
                      f"collect more with `run --policy explore:0.3` (>= {MIN_REGENERATED} "
                      "regenerated steps recommended)", DataWarning, stacklevel=2)
    boot = _bootstrap(traces, est, horizon, bootstrap, random_state) if bootstrap else None
    counts = {"traces": len(traces), "steps": int(sum(tr.n_steps for tr in traces)),
              "regenerated_steps": int(n_regen_all),
              "informative_regenerated_steps": int(n_regen),
              "regenerated_with_next_step": int(sum(int(tr.action_array()[:-1].sum())
                                                    for tr in traces)),
              "step_labelled_traces": est.n_labelled_,
              "outcome_traces": est.n_outcomes_,
              "censored_traces": haz_rep["n_censored"],
              "expected_class_steps": {"S0": float(est.class_counts_[0]),
                                       "S1": float(est.class_counts_[1]),
                                       "S2": float(est.class_counts_[2])}}
    fitted = {
        "p_weak": {"value": est.p_, "se": se["p_weak"]},
        "p_strong": {"value": ps, "se": se["p_strong"] if n_regen else None,
                     "identified": bool(n_regen), "expected_rewrites": {
                         "right": est.strong_counts_[0], "wrong": est.strong_counts_[1]}},
        "hazard": {"mean_length": haz_rep["mean_length"], "se": haz_rep["mean_length_se"],
                   "max_steps": horizon},
        "future_tokens": {"value": ft, "mean": ft_rep["mean"], "se": ft_rep["se"],
                          "source": ft_rep["source"]},
        "observation_model": {"bins": est.probs_.shape[1], "bin_size": bin_size,
                              "emission": emission, "emission_requested": requested,
                              "alpha": alpha},
    }
    if boot is not None:
        for key in ("p_weak", "p_strong"):
            fitted[key]["bootstrap_se"] = boot[key]
        fitted["hazard"]["bootstrap_se"] = boot["mean_length"]
        fitted["observation_model"]["bootstrap_tv"] = boot["obs_tv"]
    inputs = []
    for src in sources:
        p = Path(src)
        inputs.append({"path": str(p), "sha256": sha256_file(p) if p.is_file() else None})
    provenance = {
        "source": "trimpomdp fit-model (EM over step traces)", "trimpomdp_version": __version__,
        "inputs": inputs, "counts": counts, "loglik": est.lower_bound_,
        "loglik_per_step": est.lower_bound_ / max(counts["steps"], 1), "n_iter": est.n_iter_,
        "converged": est.converged_, "restart_logliks": est.restart_logliks_.tolist(),
        "fitted": fitted,
        "p_weak/p_strong": "EM next-step accuracies over routed traces (TRIM transitions)",
        "hazard": "Kaplan-Meier from solution lengths (censored at max_steps)",
        "options": {"emission": emission, "emission_requested": requested, "alpha": alpha,
                    "bin_size": bin_size,
                    "n_init": n_init, "max_iter": max_iter, "tol": tol, "seed": random_state,
                    "p_strong_given": p_strong if n_regen == 0 else None}}
    model = fitted_trim_model(est, hazard=hazard, p_strong=ps, future_tokens=ft,
                              max_steps=horizon, name=name or "fitted", provenance=provenance)
    summary = {"fitted": fitted, "counts": counts, "loglik": est.lower_bound_,
               "n_iter": est.n_iter_, "converged": est.converged_}
    return FitReport(model=model, estimator=est, summary=summary)


def _bootstrap(traces: list[StepTrace], est: TrimModelEM, horizon: int, B: int, seed: int
               ) -> dict[str, Any]:
    """Bootstrap SEs over traces (each resample refitted with one EM start)."""
    rng = np.random.default_rng(seed + 1)
    pw, ps, ml, tv = [], [], [], []
    n = len(traces)
    for _ in range(int(B)):
        idx = rng.integers(0, n, n)
        sample = [traces[i] for i in idx]
        b = TrimModelEM(bin_size=est.bin_size, alpha=est.alpha, n_init=1,
                         max_iter=est.max_iter, tol=est.tol, emission=est.emission,
                         random_state=int(rng.integers(0, 2**31)),
                         p_strong_init=est.p_strong_).fit(sample)
        pw.append(b.p_)
        ps.append(b.p_strong_)
        _, rep = fit_hazard(sample, horizon)
        ml.append(rep["mean_length"])
        tv.append((0.5 * np.abs(b.probs_ - est.probs_).sum(axis=1)).tolist())
    sd = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else None
    return {"p_weak": sd(pw), "p_strong": sd(ps) if est.strong_identified_ else None,
            "mean_length": sd(ml), "obs_tv": np.mean(tv, axis=0).tolist(), "B": int(B)}


__all__ = ["FitReport", "accuracy_standard_errors", "fit_hazard", "fit_trim_model",
           "future_tokens", "informative_rewrites", "sha256_file", "truncate_trace"]
