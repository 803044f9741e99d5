"""Step-level and solution-level assessment of a TRIM model's belief on real step traces.

:func:`assess` replays every trace through the model's Bayes filter (passive: every step kept, as
the process that wrote the data did) and measures

- **per step**, on traces with step labels (``labels`` or ``first_error``): AUROC of P(prefix
  correct) = P(S0) against "every step so far is correct", ECE, Brier, log-loss, with the
  min-score-so-far and current-score rules as references;
- **first-error targeting**, on the same traces: the solved policy's regenerate decisions at
  λ (steps < the horizon) against the first wrong step — precision, recall, and where each
  solution's first regeneration lands (before / at / after the first error) — next to TRIM-Thr
  at the same number of regenerations (the m lowest-scoring steps, m = the policy's count);
- **per solution**, on traces with a final-answer outcome: AUROC, Brier, log-loss and ECE of
  the final P(S0) (= P(correct answer) under the model, which puts P(correct | S1, S2) = 0), with
  the min-score and last-score rules;

each with a percentile bootstrap interval that resamples whole problems (the id before ``#``),
the same resamples for every score, so differences are paired.

:func:`heldout_comparison` splits problems into train / test, fits the baselines
(:class:`SolutionBaselines`: calibrated min score, calibrated last score, logistic regression on
(min, last, mean, product, steps, tokens)) on the training part and compares them with any TRIM
models on the test part, including the per-step held-out log-likelihood of the scores.
"""
from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression

from trimpomdp._io import iter_jsonl
from trimpomdp.data.schema import StepTrace
from trimpomdp.data.score_dumps import read_score_dump
from trimpomdp.data.traces import read_traces
from trimpomdp.errors import DataWarning, InputError
from trimpomdp.evaluation.score_table import ScoreTable
from trimpomdp.evaluation.tracking import track
from trimpomdp.observation.em import trace_log_likelihood
from trimpomdp.observation.grid import grid_size
from trimpomdp.pomdp.trim import TrimPOMDP
from trimpomdp.solvers.finite_horizon import FiniteHorizonSolver

if TYPE_CHECKING:
    from trimpomdp.model import TrimModel

#: probabilities are clipped to [EPS, 1 - EPS] for the log-loss
EPS = 1e-6

__all__ = [
    "EPS",
    "Assessment",
    "SolutionBaselines",
    "StepData",
    "assess",
    "auroc_fast",
    "bootstrap",
    "brier",
    "ece",
    "heldout_comparison",
    "load_step_traces",
    "log_loss",
    "model_step_probabilities",
    "plot_reliability",
    "reliability",
    "scenario_traces",
    "score_log_likelihood",
    "solution_features",
    "split_problems",
    "step_log_likelihood",
    "targeting",
]


# ----------------------------------------------------------------------------------------------
# metrics (NaN when undefined: one class only, no data)
def auroc_fast(y: Any, s: Any) -> float:
    """AUROC of score ``s`` for binary ``y`` (Mann–Whitney with mid-ranks for ties); NaN if
    ``y`` holds one class only."""
    y = np.asarray(y, bool)
    s = np.asarray(s, float)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def brier(y: Any, p: Any) -> float:
    """Mean squared error of probabilities ``p`` for outcomes ``y`` (NaN if empty)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    return float(np.mean((p - y) ** 2)) if y.size else math.nan


def log_loss(y: Any, p: Any, eps: float = EPS) -> float:
    """Mean negative log-likelihood (nats) of ``y`` under ``p`` clipped to [eps, 1 - eps]."""
    y, p = np.asarray(y, float), np.clip(np.asarray(p, float), eps, 1.0 - eps)
    if not y.size:
        return math.nan
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def reliability(y: Any, p: Any, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins on [0, 1] (the last one closed): count, mean p and observed rate per bin
    (NaN where a bin is empty)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    cnt = np.bincount(b, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mp = np.bincount(b, weights=p, minlength=n_bins) / cnt
        my = np.bincount(b, weights=y, minlength=n_bins) / cnt
    return {"lo": np.arange(n_bins) / n_bins, "hi": np.arange(1, n_bins + 1) / n_bins,
            "count": cnt, "mean_p": mp, "rate": my}


def ece(y: Any, p: Any, n_bins: int = 10) -> float:
    """Expected calibration error: Σ_bins (n_b / n) |mean p − observed rate| (equal-width bins)."""
    r = reliability(y, p, n_bins)
    n = r["count"].sum()
    if n == 0:
        return math.nan
    ok = r["count"] > 0
    return float(np.sum(r["count"][ok] / n * np.abs(r["mean_p"][ok] - r["rate"][ok])))


def _prob_metrics(y: np.ndarray, p: np.ndarray, n_bins: int) -> dict[str, float]:
    return {"auroc": auroc_fast(y, p), "brier": brier(y, p), "log_loss": log_loss(y, p),
            "ece": ece(y, p, n_bins)}


# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class StepData:
    """Step traces as padded arrays (n, T); outcome and step labels where known.

    ``correct`` is 1/0/NaN (unknown); ``first_error`` is the first wrong step, ``-1`` if every
    step is correct and ``-2`` if the trace has no step labels.
    """

    scores: np.ndarray
    tokens: np.ndarray
    lengths: np.ndarray
    correct: np.ndarray
    first_error: np.ndarray
    ids: tuple[str, ...]
    source: str = ""

    @classmethod
    def from_traces(cls, traces: Sequence[StepTrace], source: str = "") -> StepData:
        """Pad traces (tokens default to 1 per step when unknown)."""
        if not traces:
            raise InputError("traces must hold at least one solution. Got none instead.",
                             path=source or None, field="traces")
        L = np.array([t.n_steps for t in traces], dtype=np.int64)
        T = int(L.max())
        S = np.full((len(traces), T), np.nan)
        N = np.zeros((len(traces), T), dtype=np.int64)
        fe = np.full(len(traces), -2, dtype=np.int64)
        y = np.full(len(traces), np.nan)
        for i, tr in enumerate(traces):
            S[i, :L[i]] = tr.scores
            N[i, :L[i]] = tr.tokens if tr.tokens is not None else 1
            if tr.labels is not None or tr.first_error is not None:
                e = tr.error_index
                fe[i] = -1 if e is None else e
            if tr.correct is not None:
                y[i] = float(tr.correct)
        return cls(scores=S, tokens=N, lengths=L, correct=y, first_error=fe,
                   ids=tuple(t.problem_id for t in traces), source=source)

    @property
    def n(self) -> int:
        """Number of solutions."""
        return int(self.lengths.shape[0])

    def mask(self) -> np.ndarray:
        """(n, T) True on real steps."""
        return np.arange(self.scores.shape[1])[None, :] < self.lengths[:, None]

    def problems(self) -> np.ndarray:
        """Problem id of each solution (the id before ``#``)."""
        return np.array([i.split("#")[0] for i in self.ids])

    @property
    def has_outcome(self) -> np.ndarray:
        """(n,) True where the final-answer correctness is known."""
        return ~np.isnan(self.correct)

    @property
    def has_step_labels(self) -> np.ndarray:
        """(n,) True where the first wrong step is known."""
        return self.first_error >= -1

    def prefix_correct(self) -> np.ndarray:
        """(n, T): 1 where every step up to t is correct, 0 where not, NaN if unknown/padding."""
        t = np.arange(self.scores.shape[1])[None, :]
        fe = self.first_error[:, None]
        out = np.where((fe == -1) | (t < fe), 1.0, 0.0)
        return np.where(self.mask() & (fe >= -1), out, np.nan)

    def subset(self, idx: Any) -> StepData:
        """The solutions ``idx`` (indices or a boolean mask), trimmed to their longest length."""
        idx = np.arange(self.n)[idx]
        if idx.size == 0:
            raise InputError("the selection holds no solution.", field="traces")
        T = int(self.lengths[idx].max())
        return StepData(scores=self.scores[idx, :T], tokens=self.tokens[idx, :T],
                        lengths=self.lengths[idx], correct=self.correct[idx],
                        first_error=self.first_error[idx], ids=tuple(self.ids[i] for i in idx),
                        source=self.source)

    def table(self) -> ScoreTable:
        """As a :class:`ScoreTable` for :func:`~trimpomdp.evaluation.trajectories.track` (unknown
        outcomes count as wrong there; tracking does not use them)."""
        return ScoreTable(scores=self.scores, tokens=self.tokens, lengths=self.lengths,
                          correct=self.correct == 1, ids=self.ids, source=self.source)

    def sequences(self) -> list[np.ndarray]:
        """TRIM observations (min of previous scores, score) of each trace, (L_i, 2)."""
        out = []
        for i in range(self.n):
            s = self.scores[i, :self.lengths[i]]
            prev = np.minimum.accumulate(np.r_[1.0, s[:-1]])
            out.append(np.column_stack([prev, s]))
        return out


def load_step_traces(paths: Sequence[str | os.PathLike[str]], *, prm: str = "qwen_prm"
                     ) -> StepData:
    """Read step-trace JSONL(.gz) files or StrictPRMBench score dumps (detected from the first
    line: a ``step_scores`` object) into one :class:`StepData`; ids are prefixed by the file's
    position when several files are given, so problems of different files stay apart."""
    traces: list[StepTrace] = []
    for k, path in enumerate(paths):
        _, first = next(iter_jsonl(path))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(have no 'tokens'|nor 'step_chars')",
                                    category=DataWarning)
            got = read_score_dump(path, prm=prm) if "step_scores" in first else read_traces(path)
        if len(paths) > 1:
            got = [StepTrace(problem_id=f"f{k}:{t.problem_id}", scores=t.scores, tokens=t.tokens,
                             first_error=t.first_error, labels=t.labels, correct=t.correct,
                             meta=t.meta) for t in got]
        if not got:
            raise InputError("the file holds no trace with at least one step.", path=path,
                             field="scores")
        traces.extend(got)
    return StepData.from_traces(traces, source=", ".join(str(os.fspath(p)) for p in paths))


def scenario_traces(sc: Any, prefix: str = "sim") -> StepData:
    """Weak-only step traces of a simulator :class:`~trimpomdp.sim.Scenario` with their true
    labels: every drafted step is kept, step t is wrong where the weak draw fails, the first such
    step is the first error, the answer is correct iff there is none. Ids are
    ``{prefix}{pool problem}#{i}`` so the bootstrap resamples pool problems."""
    n, H = sc.n, sc.horizon
    L = np.asarray(sc.L, np.int64)
    t = np.arange(H)[None, :]
    wok = sc.u_w < np.asarray(sc.p_w)[:, None]
    live = t < L[:, None]
    bad = live & ~wok
    anyb = bad.any(axis=1)
    fe = np.where(anyb, bad.argmax(axis=1), -1)
    ok_prefix = (fe[:, None] < 0) | (t <= fe[:, None])  # prefix correct before this step's draw
    S = np.where(ok_prefix, np.where(wok, sc.sc_ok, sc.sc_err), sc.sc_post)
    N = np.zeros((n, H), np.int64)
    for k in range(H):
        N[:, k] = sc.draft_tokens(np.arange(n), k, ok_prefix[:, k], wok[:, k])
    S = np.where(live, S, np.nan)
    N = np.where(live, N, 0)
    ids = tuple(f"{prefix}{int(p)}#{i}" for i, p in enumerate(np.asarray(sc.problem)))
    return StepData(scores=S, tokens=N, lengths=L, correct=(~anyb).astype(float),
                    first_error=fe.astype(np.int64), ids=ids, source=str(getattr(sc, "source", "")))


def split_problems(data: StepData, n_train: int | None = None, *, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Problem-level split: boolean masks (train, test) over solutions. ``n_train`` problems
    (default: half, rounded down) drawn with ``numpy.random.default_rng(seed)``."""
    probs = np.unique(data.problems())
    if probs.size < 2:
        raise InputError(f"a train/test split needs at least 2 problems. Got {probs.size} "
                         "instead.", field="traces")
    k = probs.size // 2 if n_train is None else int(n_train)
    if not 1 <= k < probs.size:
        raise InputError(f"n_train must be in [1, {probs.size - 1}]. Got {k} instead.",
                         field="n_train")
    rng = np.random.default_rng(seed)
    train = set(rng.permutation(probs)[:k].tolist())
    m = np.array([p in train for p in data.problems()])
    return m, ~m


# ----------------------------------------------------------------------------------------------
def bootstrap(groups: Any, stat: Callable[[np.ndarray], Mapping[str, float]], *,
              n_boot: int = 200, seed: int = 0, level: float = 0.95
              ) -> dict[str, dict[str, float]]:
    """Percentile bootstrap over whole groups: ``stat(indices)`` -> {name: value} on the full data
    and on ``n_boot`` resamples (groups drawn with replacement, all their members kept).

    Returns {name: {"value", "lo", "hi"}}; NaN resample values are dropped (e.g. one class).
    """
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(g, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(g))[:-1])
    full = dict(stat(np.arange(g.size)))
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in full}
    for _ in range(int(n_boot)):
        pick = rng.integers(0, len(members), len(members))
        res = stat(np.concatenate([members[j] for j in pick]))
        for k in full:
            draws[k].append(float(res[k]))
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    for k, v in full.items():
        d = np.asarray(draws[k])
        d = d[np.isfinite(d)]
        out[k] = {"value": float(v),
                  "lo": float(np.percentile(d, lo)) if d.size else math.nan,
                  "hi": float(np.percentile(d, hi)) if d.size else math.nan}
    return out


# ----------------------------------------------------------------------------------------------
def model_step_probabilities(model: TrimModel, data: StepData, *, lam: float | None = 0.25,
                             density: str = "continuous") -> tuple[np.ndarray, np.ndarray]:
    """Passive Bayes-filter P(S0) (n, T) along every trace and the solved policy's action at
    every step < the horizon (n, T; 1 regenerate, 0 continue, −1 none). ``lam=None``: beliefs
    only (actions all −1)."""
    policy = None if lam is None else FiniteHorizonSolver().solve(TrimPOMDP(model=model,
                                                                            lam=float(lam)))
    tr = track(data.table(), policy, model=model, rule="filter", mode="passive",
               density=density)
    return tr.belief[..., 0], tr.action


def targeting(data: StepData, action: np.ndarray, idx: np.ndarray | None = None
              ) -> dict[str, float]:
    """First-error targeting of regenerate decisions ``action`` (n, T) on step-labelled traces
    ``idx`` (all such traces if None), and of TRIM-Thr at the same number of regenerations.

    precision = share of regenerate decisions made at a first wrong step; recall = share of
    first wrong steps (where the policy acts) with a regenerate decision; first-regeneration
    shares are over the solutions with an error, by where their first regeneration lands.
    """
    if idx is None:
        idx = np.flatnonzero(data.has_step_labels)
    act = action[idx]
    fe = data.first_error[idx]
    S = data.scores[idx]
    elig = act >= 0
    T = act.shape[1]
    t = np.arange(T)[None, :]
    err = (fe >= 0) & (fe < T)
    err &= elig[np.arange(idx.size), np.clip(fe, 0, T - 1)]
    is_fe = err[:, None] & (t == fe[:, None])
    pomdp = act == 1
    m = int(pomdp.sum())
    # TRIM-Thr at matched count: the m lowest-scoring eligible steps (stable order on ties)
    flat = np.flatnonzero(elig.ravel())
    thr = np.zeros(act.size, dtype=bool)
    chosen = flat[np.argsort(S.ravel()[flat], kind="stable")[:m]]
    thr[chosen] = True
    thr = thr.reshape(act.shape)
    k = float(S.ravel()[chosen].max()) if m else math.nan
    out: dict[str, float] = {"solutions": float(idx.size), "with_error": float(err.sum()),
                             "eligible_steps": float(elig.sum()), "regenerations": float(m),
                             "thr_threshold": k}
    for name, dec in (("pomdp", pomdp), ("thr", thr)):
        hits = float((dec & is_fe).sum())
        out[f"{name}_precision"] = hits / m if m else math.nan
        out[f"{name}_recall"] = hits / float(err.sum()) if err.any() else math.nan
        any_ = dec[err].any(axis=1)
        first = np.where(any_, dec[err].argmax(axis=1), -1)
        e = fe[err]
        ne = float(err.sum())
        for where, sel in (("before", any_ & (first < e)), ("at", any_ & (first == e)),
                           ("after", any_ & (first > e)), ("none", ~any_)):
            out[f"{name}_first_{where}"] = float(sel.sum()) / ne if ne else math.nan
        with np.errstate(invalid="ignore"):
            out[f"{name}_first_before_given_any"] = (float((any_ & (first < e)).sum())
                                                    / float(any_.sum())) if any_.any() \
                else math.nan
    out["recall_diff"] = out["pomdp_recall"] - out["thr_recall"]
    out["precision_diff"] = out["pomdp_precision"] - out["thr_precision"]
    return out


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Assessment:
    """Result of :func:`assess`: JSON-ready ``summary`` and the arrays behind the figures."""

    summary: dict[str, Any]
    p_step: np.ndarray
    action: np.ndarray
    data: StepData

    def reliability_data(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{"step" / "solution": (labels, probabilities)} for the reliability diagrams."""
        out = {}
        lab = self.data.prefix_correct()
        ok = ~np.isnan(lab) & ~np.isnan(self.p_step)
        if ok.any():
            out["step"] = (lab[ok], self.p_step[ok])
        has = self.data.has_outcome
        if has.any():
            last = self.p_step[np.arange(self.data.n), self.data.lengths - 1]
            out["solution"] = (self.data.correct[has], last[has])
        return out


def assess(model: TrimModel, data: StepData, *, lam: float = 0.25, density: str = "continuous",
           n_boot: int = 200, seed: int = 0, n_bins: int = 10, level: float = 0.95
           ) -> Assessment:
    """Step-level, targeting and solution-level assessment of ``model`` on ``data`` (see the
    module docstring); each section appears only where its labels exist."""
    if not (np.isfinite(lam) and lam >= 0):
        raise InputError(f"lam must be a finite number >= 0. Got {lam!r} instead.", field="lam")
    p, action = model_step_probabilities(model, data, lam=lam, density=density)
    groups = data.problems()
    n = data.n
    rows = np.arange(n)
    summary: dict[str, Any] = {
        "model": model.name, "source": data.source, "lambda": float(lam), "density": density,
        "solutions": n, "problems": int(np.unique(groups).size),
        "steps": int(data.lengths.sum()), "with_outcome": int(data.has_outcome.sum()),
        "with_step_labels": int(data.has_step_labels.sum()), "n_boot": int(n_boot),
        "level": level, "bootstrap": "percentile, problems resampled with replacement",
        "n_bins": n_bins}
    has = data.has_outcome
    if has.any():
        y = data.correct
        final = p[rows, data.lengths - 1]
        mins = np.nanmin(data.scores, axis=1)
        last = data.scores[rows, data.lengths - 1]

        def sol_stat(i: np.ndarray) -> dict[str, float]:
            i = i[has[i]]
            out = _prob_metrics(y[i], final[i], n_bins)
            out["auroc_min_score"] = auroc_fast(y[i], mins[i])
            out["auroc_last_score"] = auroc_fast(y[i], last[i])
            out["auroc_minus_min_score"] = out["auroc"] - out["auroc_min_score"]
            out["accuracy"] = float(y[i].mean()) if i.size else math.nan
            return out

        summary["solution"] = bootstrap(groups, sol_stat, n_boot=n_boot, seed=seed, level=level)
    lab_tr = data.has_step_labels
    if lab_tr.any():
        lab = data.prefix_correct()
        S = data.scores
        prev_min = np.fmin.accumulate(S, axis=1)

        def step_stat(i: np.ndarray) -> dict[str, float]:
            i = i[lab_tr[i]]
            yy = lab[i].ravel()
            ok = ~np.isnan(yy)
            yy = yy[ok]
            out = _prob_metrics(yy, p[i].ravel()[ok], n_bins)
            out["auroc_min_so_far"] = auroc_fast(yy, prev_min[i].ravel()[ok])
            out["auroc_current_score"] = auroc_fast(yy, S[i].ravel()[ok])
            out["auroc_minus_min_so_far"] = out["auroc"] - out["auroc_min_so_far"]
            out["prefix_correct_rate"] = float(yy.mean()) if yy.size else math.nan
            return out

        summary["step"] = bootstrap(groups, step_stat, n_boot=n_boot, seed=seed, level=level)
        summary["targeting"] = bootstrap(groups, lambda i: targeting(data, action, i[lab_tr[i]]),
                                         n_boot=n_boot, seed=seed, level=level)
    return Assessment(summary=summary, p_step=p, action=action, data=data)


def plot_reliability(y: Any, p: Any, *, n_bins: int = 10, ax: Any = None, label: str = "",
                     title: str | None = None) -> Any:
    """Reliability diagram: observed rate against mean predicted probability per bin, with the
    bin counts as a histogram below the diagonal."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(4.6, 4.4))[1]
    r = reliability(y, p, n_bins)
    ok = r["count"] > 0
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1)
    ax.plot(r["mean_p"][ok], r["rate"][ok], marker="o", ms=4,
            label=f"{label} (ECE {ece(y, p, n_bins):.3f})".strip())
    w = r["count"] / max(r["count"].sum(), 1.0)
    ax.bar(r["lo"], 0.25 * w / max(w.max(), 1e-12), width=1.0 / n_bins, align="edge",
           alpha=0.2, color="0.4")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or "reliability", fontsize=9)
    return ax


# ----------------------------------------------------------------------------------------------
def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, EPS, 1.0 - EPS)
    return np.log(x) - np.log1p(-x)


FEATURES = ("logit min score", "logit last score", "mean score", "log product of scores",
            "steps", "log total tokens")


def solution_features(data: StepData) -> np.ndarray:
    """(n, 6): logit(min), logit(last), mean, log product (scores clipped to [EPS, 1]), number of
    steps, log(total tokens)."""
    S = data.scores
    rows = np.arange(data.n)
    return np.column_stack([
        _logit(np.nanmin(S, axis=1)), _logit(S[rows, data.lengths - 1]), np.nanmean(S, axis=1),
        np.nansum(np.log(np.clip(S, EPS, 1.0)), axis=1), data.lengths.astype(float),
        np.log(np.maximum(data.tokens.sum(axis=1), 1).astype(float))])


class SolutionBaselines:
    """P(correct answer) from per-solution features, fitted on outcome-labelled traces.

    ``min score`` and ``last score``: Platt scaling of logit(score) (monotone, so the AUROC is the
    raw score's); ``logistic``: logistic regression on the standardised :func:`solution_features`
    (L2, C = 1).
    """

    names = ("min score", "last score", "logistic")

    def fit(self, data: StepData) -> SolutionBaselines:
        has = data.has_outcome
        y = data.correct[has].astype(int)
        if y.min() == y.max():
            raise InputError("fitting the baselines needs both correct and wrong answers.",
                             field="correct")
        X = solution_features(data)[has]
        self.mu_, self.sd_ = X.mean(axis=0), X.std(axis=0) + 1e-12
        Z = (X - self.mu_) / self.sd_
        self.min_ = LogisticRegression(C=1e6, max_iter=1000).fit(X[:, :1], y)
        self.last_ = LogisticRegression(C=1e6, max_iter=1000).fit(X[:, 1:2], y)
        self.lr_ = LogisticRegression(C=1.0, max_iter=2000).fit(Z, y)
        return self

    def predict(self, data: StepData) -> dict[str, np.ndarray]:
        """{name: P(correct)} for every solution of ``data``."""
        X = solution_features(data)
        return {"min score": self.min_.predict_proba(X[:, :1])[:, 1],
                "last score": self.last_.predict_proba(X[:, 1:2])[:, 1],
                "logistic": self.lr_.predict_proba((X - self.mu_) / self.sd_)[:, 1]}


def step_log_likelihood(model: TrimModel, data: StepData) -> float:
    """Held-out log-likelihood per scored step (nats) of the binned observations and outcomes of
    ``data`` under ``model``'s P(o | c) and p_weak (forward algorithm; P(correct | S1, S2) = 0)."""
    has = data.has_outcome
    y = data.correct[has]
    seqs = [s for s, h in zip(on_grid(model, data).sequences(), has) if h]
    ll = trace_log_likelihood(model.obs_probs, model.p_weak, seqs, y.tolist(),
                              bin_size=model.bin_size)
    return float(ll.sum() / data.lengths[has].sum())


def score_log_likelihood(model: TrimModel, data: StepData) -> float:
    """Held-out log-likelihood per step (nats) of the score *sequences* and outcomes: each step's
    score from the model's P(current | min_prev, c) (its binned P(o | c) normalised along the
    current-score axis, as a density: mass / bin width), so models on the same score scale
    compare even when their observations differ (the joint (min_prev, current) emission counts
    the same minimum at every later step and is no likelihood of the scores). A model with a
    score transform g is scored on the raw scale: its density of g(s) times g'(s)."""
    k = grid_size(model.bin_size)
    P = np.asarray(model.obs_probs).reshape(3, k, k)
    cond = P / np.maximum(P.sum(axis=2, keepdims=True), 1e-300)
    has = data.has_outcome
    seqs = [s for s, h in zip(on_grid(model, data).sequences(), has) if h]
    ll = trace_log_likelihood(cond.reshape(3, k * k), model.p_weak, seqs,
                              data.correct[has].tolist(), bin_size=model.bin_size)
    n = int(data.lengths[has].sum())
    total = ll.sum() - n * math.log(model.bin_size)
    g = model.score_transform
    if g is not None:
        s = data.subset(has).scores
        s = s[np.isfinite(s)]
        total += float(np.sum(np.log(np.maximum(g.slope_batch(s), 1e-300))))
    return float(total / n)


def on_grid(model: TrimModel, data: StepData) -> StepData:
    """``data`` on ``model``'s grid axis: every score through the model's score transform
    (``data`` itself when it has none). For binned likelihoods; the filter applies it itself."""
    g = model.score_transform
    if g is None:
        return data
    return dataclasses.replace(data, scores=np.where(data.mask(), g.batch(
        np.nan_to_num(data.scores, nan=0.0)), np.nan))


def heldout_comparison(train: StepData, test: StepData, models: Mapping[str, TrimModel], *,
                       extra: Mapping[str, np.ndarray] | None = None, density: str = "continuous",
                       n_boot: int = 200, seed: int = 0, level: float = 0.95,
                       n_bins: int = 10) -> dict[str, Any]:
    """Held-out solution-level metrics on ``test`` of each TRIM model's final P(S0) and of the
    baselines fitted on ``train``; paired bootstrap differences of every score against the best
    baseline (by held-out AUROC); per-step log-likelihood of each model. ``extra``: more
    per-solution probabilities on ``test`` (e.g. a model that is not a :class:`TrimModel`)."""
    has = test.has_outcome
    if not has.all():
        test = test.subset(has)
    rows = np.arange(test.n)
    preds: dict[str, np.ndarray] = SolutionBaselines().fit(train).predict(test)
    base_names = list(preds)
    for name, m in models.items():
        p, _ = model_step_probabilities(m, test, lam=None, density=density)
        preds[name] = p[rows, test.lengths - 1]
    for name, v in (extra or {}).items():
        preds[name] = np.asarray(v, float)
    y = test.correct
    best = max(base_names, key=lambda k: auroc_fast(y, preds[k]))

    def stat(i: np.ndarray) -> dict[str, float]:
        out = {}
        ref = auroc_fast(y[i], preds[best][i])
        for k, v in preds.items():
            for mk, mv in _prob_metrics(y[i], v[i], n_bins).items():
                out[f"{k}|{mk}"] = mv
            out[f"{k}|auroc_minus_best_baseline"] = out[f"{k}|auroc"] - ref
        return out

    boot = bootstrap(test.problems(), stat, n_boot=n_boot, seed=seed, level=level)
    table: dict[str, dict[str, Any]] = {}
    for key, cell in boot.items():
        name, metric = key.split("|")
        table.setdefault(name, {})[metric] = cell
    return {"train_solutions": train.n, "train_problems": int(np.unique(train.problems()).size),
            "test_solutions": test.n, "test_problems": int(np.unique(test.problems()).size),
            "test_accuracy": float(y.mean()), "best_baseline": best, "scores": table,
            "step_loglik": {k: step_log_likelihood(m, test) for k, m in models.items()},
            "score_loglik": {k: score_log_likelihood(m, test) for k, m in models.items()},
            "n_boot": n_boot, "level": level}
