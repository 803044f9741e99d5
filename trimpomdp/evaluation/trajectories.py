"""Belief tracking along real PRM score sequences, its analysis, and the notebooks' figures.

:func:`track` runs the controller's belief tracking on many solutions at once (numpy over
solutions, a loop over steps). ``mode="router"`` reproduces
:class:`~trimpomdp.routing.router.StepRouter` with :func:`~trimpomdp.routing.pomdp.pomdp_router`
exactly (same beliefs, same actions; checked against :func:`track_with_router`, the plain
``decide`` loop): each real step is treated as the next draft after the router's decision, a
regenerated draft's score leaves min/product (it counts as 1.0). ``mode="passive"`` tracks the
process that actually wrote the data (every step kept: the filter predicts with *continue*) over
the whole solution, and records the action the policy would have taken at each step (< the
horizon) from that belief.

Figures take an optional ``ax`` and return it; matplotlib is imported inside the functions.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trimpomdp.belief import BayesFilterUpdater, SingleObservationUpdater
from trimpomdp.data import read_score_dump, read_traces
from trimpomdp.data.trim_release import read_release_results
from trimpomdp.errors import InputError
from trimpomdp.evaluation.curves import family, point_from_run, references_from_runs, spec_param
from trimpomdp.evaluation.metrics import CurvePoint
from trimpomdp.evaluation.simplex import draw_simplex, simplex_grid, to_xy
from trimpomdp.observation.grid import density_batch as _grid_density_batch
from trimpomdp.resources import resource_path, shared_data_dir
from trimpomdp.routing.spec import make_router, pomdp_router
from trimpomdp.sim import load_simulator, simulate

if TYPE_CHECKING:
    from trimpomdp.data.schema import StepTrace
    from trimpomdp.model import TrimModel

DUMP = "prm_scores_strictprmbench/math500_bon32_prm_step_scores.jsonl.gz"
SAMPLE = "strictprmbench_sample/math500_qwen2.5-7b_qwen-prm_sample.jsonl"
RULES = ("filter", "release")
MODES = ("router", "passive")


# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScoreTable:
    """Solutions as padded arrays: ``scores``/``tokens`` (n, T) (NaN / 0 past ``lengths``)."""

    scores: np.ndarray
    tokens: np.ndarray
    lengths: np.ndarray
    correct: np.ndarray
    ids: tuple[str, ...]
    source: str = ""

    def __post_init__(self) -> None:
        n = self.lengths.shape[0]
        if n == 0 or self.scores.ndim != 2 or self.scores.shape[0] != n \
                or self.tokens.shape != self.scores.shape or self.correct.shape != (n,):
            raise InputError(f"scores/tokens must have shape (n, T) and lengths/correct (n,) with "
                             f"n >= 1. Got {self.scores.shape}, {self.tokens.shape}, "
                             f"{self.lengths.shape}, {self.correct.shape} instead.",
                             field="scores")
        if np.any(self.lengths < 1) or np.any(self.lengths > self.scores.shape[1]):
            raise InputError("every solution needs 1..T steps.", field="lengths")

    @classmethod
    def from_traces(cls, traces: Sequence[StepTrace], source: str = "") -> ScoreTable:
        """Pad step traces (tokens default to 1 per step when unknown; correct must be known)."""
        if not traces:
            raise InputError("traces must hold at least one solution. Got none instead.",
                             field="traces")
        L = np.array([t.n_steps for t in traces], dtype=np.int64)
        T = int(L.max())
        S = np.full((len(traces), T), np.nan)
        N = np.zeros((len(traces), T), dtype=np.int64)
        for i, tr in enumerate(traces):
            if tr.correct is None:
                raise InputError(f"trace {i} ({tr.problem_id}) has no final-answer correctness.",
                                 field="correct")
            S[i, :L[i]] = tr.scores
            N[i, :L[i]] = tr.tokens if tr.tokens is not None else 1
        return cls(scores=S, tokens=N, lengths=L,
                   correct=np.array([bool(t.correct) for t in traces]),
                   ids=tuple(t.problem_id for t in traces), source=source)

    @property
    def n(self) -> int:
        """Number of solutions."""
        return int(self.lengths.shape[0])

    @property
    def n_steps(self) -> int:
        """Total number of scored steps."""
        return int(self.lengths.sum())

    def mask(self) -> np.ndarray:
        """(n, T) True on real steps."""
        return np.arange(self.scores.shape[1])[None, :] < self.lengths[:, None]

    def min_score(self) -> np.ndarray:
        """Minimum step score of each solution (the plain "min-score" verifier)."""
        return np.nanmin(self.scores, axis=1)

    def last_score(self) -> np.ndarray:
        """Score of each solution's last step."""
        return self.scores[np.arange(self.n), self.lengths - 1]

    def problems(self) -> np.ndarray:
        """Problem id of each solution (``id`` before ``#``)."""
        return np.array([i.split("#")[0] for i in self.ids])

    def subset(self, idx: Any) -> ScoreTable:
        """The solutions ``idx`` (indices or a boolean mask), trimmed to their longest length."""
        idx = np.arange(self.n)[idx]
        L = self.lengths[idx]
        T = int(L.max())
        return ScoreTable(scores=self.scores[idx, :T], tokens=self.tokens[idx, :T], lengths=L,
                          correct=self.correct[idx], ids=tuple(self.ids[i] for i in idx),
                          source=self.source)


def load_scores(path: str | os.PathLike[str] | None = None) -> ScoreTable:
    """Real PRM scores: the full StrictPRMBench MATH-500 dump when ``../shared/data`` has it,
    else the bundled 600-solution sample; ``source`` says which file was read."""

    if path is None:
        shared = shared_data_dir()
        if shared is not None and (shared / DUMP).exists():
            path = shared / DUMP
    if path is not None:
        p = os.fspath(path)
        if p.endswith((".jsonl.gz", ".json.gz")) and "step_scores" in p:
            return ScoreTable.from_traces(read_score_dump(p), source=p)
        return ScoreTable.from_traces(read_traces(p), source=p)
    sample = resource_path("data", SAMPLE)
    return ScoreTable.from_traces(read_traces(sample), source=str(sample))


# ----------------------------------------------------------------------------------------------
def density_batch(model: TrimModel, min_prev: np.ndarray, current: np.ndarray,
                  density: str = "continuous") -> np.ndarray:
    """Likelihoods (m, 3) of observations under each class of ``model`` (see
    :func:`trimpomdp.observation.grid.density_batch`, the one home of the densities)."""
    return _grid_density_batch(model.obs_probs, model.bin_size, min_prev, current, density)


def q_batch(policy: Any, step: int, tokens: Any, beliefs: np.ndarray, final: Any = False
            ) -> np.ndarray:
    """[Q(continue), Q(regenerate)] (m, 2) of a :class:`TrimPolicy` for many beliefs at one step.

    ``tokens`` and ``final`` are scalars or (m,) arrays; same formula as ``TrimPolicy.q_values``.
    """
    return policy.q_values_batch(step, tokens, beliefs, final)


# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class BeliefTracks:
    """Result of :func:`track`: per-step arrays (n, T) over the tracked steps.

    ``belief`` (n, T, 3) is NaN where not tracked; ``action`` is 0/1, −1 where no action was
    taken (not tracked, beyond the horizon, or no policy); ``consulted`` is False where the
    release's gate skipped the policy; ``q`` (n, T, 2) is NaN where the policy was not asked.
    """

    belief: np.ndarray
    action: np.ndarray
    consulted: np.ndarray
    q: np.ndarray
    fallback: np.ndarray
    tracked: np.ndarray
    rule: str
    mode: str
    lam: float | None
    seconds: float = 0.0

    @property
    def n(self) -> int:
        """Number of solutions."""
        return int(self.tracked.shape[0])

    def final_belief(self) -> np.ndarray:
        """Belief (n, 3) at each solution's last tracked step."""
        return self.belief[np.arange(self.n), self.tracked - 1]

    def p_s0_final(self) -> np.ndarray:
        """P(S0) at the last tracked step: the belief that the whole solution is correct."""
        return self.final_belief()[:, 0]

    def regenerations(self) -> np.ndarray:
        """Number of steps where the policy asked for a regeneration, per solution."""
        return (self.action == 1).sum(axis=1)

    def first_regeneration(self) -> np.ndarray:
        """Step of the first regeneration request (−1 if none), per solution."""
        r = self.action == 1
        return np.where(r.any(axis=1), r.argmax(axis=1), -1)


def _check_choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise InputError(f"The '{name}' parameter must be one of {', '.join(map(repr, allowed))}."
                         f" Got {value!r} instead.", field=name)
    return value


def track(data: ScoreTable, policy: Any = None, *, model: TrimModel | None = None,
          rule: str = "filter", mode: str = "router", density: str = "continuous",
          gate: float | None = 0.4) -> BeliefTracks:
    """Belief tracking (and the policy's actions) along every solution of ``data``, vectorised.

    ``rule`` is ``"filter"`` (Bayes filter across steps) or ``"release"`` (posterior of the current
    observation under a uniform prior, with the closeness ``gate``); ``mode`` as in the module
    docstring. ``mode="router"`` needs a solved ``policy``; ``"passive"`` works with a ``model``
    alone (beliefs only).
    """
    _check_choice(rule, RULES, "rule")
    _check_choice(mode, MODES, "mode")
    if policy is None and mode == "router":
        raise InputError("mode='router' needs a solved policy (the router's actions drive the "
                         "belief). Got None instead.", field="policy")
    model = policy.model if policy is not None else model
    if model is None:
        raise InputError("give a policy or a model. Got neither.", field="model")
    t0 = time.perf_counter()
    n, T = data.scores.shape
    H = int(model.max_steps)
    steps = min(T, H) if mode == "router" else T
    tracked = np.minimum(data.lengths, steps)
    filt = BayesFilterUpdater.from_model(model, density)
    up: Any = filt if rule == "filter" else SingleObservationUpdater.from_model(model, density,
                                                                               gate)
    belief = np.full((n, T, 3), np.nan)
    action = np.full((n, T), -1, dtype=np.int8)
    consulted = np.zeros((n, T), dtype=bool)
    q = np.full((n, T, 2), np.nan)
    fallback = np.zeros((n, T), dtype=bool)
    b = np.tile(np.array(filt.prior.probs), (n, 1))
    min_prev = np.ones(n)
    last = np.zeros(n, dtype=np.int8)
    for t in range(steps):
        act = np.flatnonzero(data.lengths > t)
        s = data.scores[act, t]
        lik = density_batch(model, min_prev[act], s, density)
        new, bad = up.update_batch(None if t == 0 else b[act], last[act], lik)
        b[act] = new
        belief[act, t] = new
        fallback[act, t] = bad
        taken = np.zeros(act.size, dtype=np.int8)
        if policy is not None and t < H:
            if rule == "release":
                ask = up.consult_batch(new)
            else:
                ask = np.ones(act.size, dtype=bool)
            final = data.lengths[act] - 1 == t
            qq = np.full((act.size, 2), np.nan)
            if ask.any():
                qq[ask] = q_batch(policy, t, data.tokens[act[ask], t], new[ask], final[ask])
            decided = (ask & (qq[:, 1] > qq[:, 0])).astype(np.int8)
            action[act, t] = decided
            consulted[act, t] = ask
            q[act, t] = qq
            if mode == "router":
                taken = decided
        keep = taken == 0
        min_prev[act] = np.where(keep, np.minimum(min_prev[act], s), min_prev[act])
        last[act] = taken
    return BeliefTracks(belief=belief, action=action, consulted=consulted, q=q,
                        fallback=fallback, tracked=tracked, rule=rule, mode=mode,
                        lam=None if policy is None else float(policy.lam),
                        seconds=time.perf_counter() - t0)


def track_with_router(data: ScoreTable, policy: Any, *, rule: str = "filter",
                      density: str = "continuous", gate: float | None = 0.4) -> BeliefTracks:
    """The reference: a plain loop of ``StepRouter.decide`` per step (mode ``"router"``)."""
    _check_choice(rule, RULES, "rule")
    t0 = time.perf_counter()
    router = pomdp_router(policy, belief=rule, density=density, gate=gate, record=False)
    n, T = data.scores.shape
    H = int(policy.model.max_steps)
    tracked = np.minimum(data.lengths, H)
    belief = np.full((n, T, 3), np.nan)
    action = np.full((n, T), -1, dtype=np.int8)
    consulted = np.zeros((n, T), dtype=bool)
    q = np.full((n, T, 2), np.nan)
    fallback = np.zeros((n, T), dtype=bool)
    S, N, L = data.scores.tolist(), data.tokens.tolist(), data.lengths.tolist()
    for i in range(n):
        router.reset()
        Li = L[i]
        for t in range(min(Li, H)):
            d = router.decide(S[i][t], N[i][t], t, t == Li - 1)
            assert d.belief is not None  # POMDP rules always carry a belief
            belief[i, t] = d.belief.probs
            fallback[i, t] = d.belief.fallback
            action[i, t] = int(d.action)
            if d.q is not None:
                consulted[i, t] = True
                q[i, t] = d.q
    return BeliefTracks(belief=belief, action=action, consulted=consulted, q=q,
                        fallback=fallback, tracked=tracked, rule=rule, mode="router",
                        lam=float(policy.lam), seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------
def auroc(correct: Any, score: Any) -> float:
    """Area under the ROC curve of ``score`` (higher = more likely correct) for ``correct``."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(correct, bool)
    s = np.asarray(score, float)
    if y.shape != s.shape or y.ndim != 1:
        raise InputError(f"correct and score must be 1-D of the same length. Got {y.shape} and "
                         f"{s.shape} instead.", field="score")
    if y.all() or not y.any():
        raise InputError("AUROC needs both correct and incorrect solutions. Got only one class.",
                         field="correct")
    if not np.all(np.isfinite(s)):
        raise InputError("score must be finite for every solution.", field="score")
    return float(roc_auc_score(y, s))


def separation_scores(data: ScoreTable, tracks: Mapping[str, BeliefTracks]
                      ) -> dict[str, np.ndarray]:
    """Per-solution scores to rank correct above incorrect: final P(S0) of each tracking, the
    minimum step score and the last step score."""
    out = {name: tr.p_s0_final() for name, tr in tracks.items()}
    out["min step score"] = data.min_score()
    out["last step score"] = data.last_score()
    return out


def auroc_table(data: ScoreTable, scores: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rows {name, auroc, n, n_correct} for each score, best first."""
    rows = [{"score": k, "auroc": auroc(data.correct, v), "n": data.n,
             "n_correct": int(data.correct.sum())} for k, v in scores.items()]
    return sorted(rows, key=lambda r: -r["auroc"])


def auroc_bootstrap(correct: Any, scores: Mapping[str, Any], *, reference: str | None = None,
                    groups: Any = None, n_boot: int = 200, seed: int = 0, level: float = 0.95
                    ) -> list[dict[str, Any]]:
    """AUROC of each score with a percentile bootstrap interval, and the paired difference to
    ``reference``; the same resamples serve every score.

    Resamples solutions with replacement, or whole ``groups`` (e.g. problem ids: solutions of one
    problem are correlated) when given.
    """
    y = np.asarray(correct, bool)
    if groups is not None:
        _, g = np.unique(np.asarray(groups), return_inverse=True)
        order = np.argsort(g, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(g))[:-1])
    else:
        members = None
    if reference is not None and reference not in scores:
        raise InputError(f"reference must be one of the scores {sorted(scores)}. Got "
                         f"{reference!r} instead.", field="reference")
    S = {k: np.asarray(v, float) for k, v in scores.items()}
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in S}
    for _ in range(int(n_boot)):
        if members is None:
            i = rng.integers(0, y.size, y.size)
        else:
            i = np.concatenate([members[j] for j in rng.integers(0, len(members),
                                                                  len(members))])
        if y[i].all() or not y[i].any():
            continue
        for k, v in S.items():
            boots[k].append(auroc(y[i], v[i]))
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    rows = []
    for k, v in S.items():
        b = np.asarray(boots[k])
        row = {"score": k, "auroc": auroc(y, v), "lo": float(np.percentile(b, lo)),
               "hi": float(np.percentile(b, hi))}
        if reference is not None:
            d = np.asarray(b, float) - np.asarray(boots[reference], float)
            row.update({"diff": float(row["auroc"]) - auroc(y, S[reference]),  # type: ignore[arg-type]
                        "diff_lo": float(np.percentile(d, lo)),
                        "diff_hi": float(np.percentile(d, hi))})
        rows.append(row)
    return sorted(rows, key=lambda r: -r["auroc"])


@dataclass(frozen=True, slots=True, kw_only=True)
class Disagreement:
    """Where two trackings' actions differ (compared on steps both took an action)."""

    any_step: np.ndarray
    first_step: np.ndarray
    n_solutions: int
    n_steps: int
    n_compared_steps: int

    def as_dict(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {"solutions_disagreeing": self.n_solutions, "steps_disagreeing": self.n_steps,
                "steps_compared": self.n_compared_steps, "solutions": int(self.any_step.size)}


def disagreement(a: BeliefTracks, b: BeliefTracks) -> Disagreement:
    """Solutions where ``a`` and ``b`` choose different actions at one step or more."""
    if a.action.shape != b.action.shape:
        raise InputError(f"both trackings must cover the same solutions. Got {a.action.shape} "
                         f"and {b.action.shape} instead.", field="tracks")
    both = (a.action >= 0) & (b.action >= 0)
    diff = both & (a.action != b.action)
    anyd = diff.any(axis=1)
    return Disagreement(any_step=anyd, first_step=np.where(anyd, diff.argmax(axis=1), -1),
                        n_solutions=int(anyd.sum()), n_steps=int(diff.sum()),
                        n_compared_steps=int(both.sum()))


# ----------------------------------------------------------------------------------------------
def _ax(ax: Any, size: tuple[float, float] = (5.0, 4.2)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1]


def pick_examples(data: ScoreTable, k: int = 4, *, min_steps: int = 4, max_steps: int = 14,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """``k`` random correct and ``k`` random incorrect solutions of moderate length (indices)."""
    rng = np.random.default_rng(seed)
    ok = (data.lengths >= min_steps) & (data.lengths <= max_steps)
    out = {}
    for name, sel in (("correct", data.correct), ("incorrect", ~data.correct)):
        pool = np.flatnonzero(ok & sel)
        out[name] = rng.choice(pool, size=min(k, pool.size), replace=False) if pool.size else \
            np.array([], dtype=np.int64)
    return out


def plot_simplex_trajectories(tracks: BeliefTracks, data: ScoreTable, idx: Sequence[int], *,
                              ax: Any = None, title: str | None = None) -> Any:
    """Belief paths of solutions ``idx`` on the simplex (S0 top).

    Green = correct final answer, red = incorrect; circle = continue, × = regenerate asked,
    square = last step, a black ring = the release's gate skipped the policy.
    """
    from matplotlib.lines import Line2D


    ax = _ax(ax, (5.0, 4.6))
    draw_simplex(ax)
    for i in idx:
        m = int(tracks.tracked[i])
        xy = to_xy(tracks.belief[i, :m])
        col = "tab:green" if data.correct[i] else "tab:red"
        ax.plot(xy[:, 0], xy[:, 1], color=col, lw=1.0, alpha=0.7)
        acts = tracks.action[i, :m]
        reg = acts == 1
        ax.scatter(xy[~reg, 0], xy[~reg, 1], s=14, color=col, zorder=3)
        ax.scatter(xy[reg, 0], xy[reg, 1], s=46, marker="x", color="black", zorder=4)
        skipped = (acts >= 0) & ~tracks.consulted[i, :m]
        if tracks.rule == "release" and skipped.any():
            ax.scatter(xy[skipped, 0], xy[skipped, 1], s=40, facecolors="none",
                       edgecolors="0.2", lw=0.6, zorder=2)
        ax.scatter(xy[-1:, 0], xy[-1:, 1], s=40, marker="s", color=col, zorder=4)
    handles = [Line2D([], [], color="tab:green", marker="o", ms=4, label="correct answer"),
               Line2D([], [], color="tab:red", marker="o", ms=4, label="incorrect answer"),
               Line2D([], [], color="black", marker="x", ls="", label="regenerate asked"),
               Line2D([], [], color="0.4", marker="s", ls="", label="last step")]
    if tracks.rule == "release":
        handles.append(Line2D([], [], color="0.2", marker="o", mfc="none", ls="",
                              label="gate closed (continue)"))
    ax.legend(handles=handles, loc="upper right", fontsize=7, frameon=False)
    lam = "" if tracks.lam is None else f", λ = {tracks.lam:g}"
    ax.set_title(title or f"belief trajectories ({tracks.rule}, {tracks.mode}{lam})", fontsize=9)
    return ax


def plot_roc(correct: Any, scores: Mapping[str, Any], *, ax: Any = None,
             title: str | None = None) -> Any:
    """ROC curves (correct solutions = positives) with the AUROC of each score in the legend."""
    from sklearn.metrics import roc_curve

    ax = _ax(ax, (5.0, 4.6))
    y = np.asarray(correct, bool)
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, np.asarray(s, float))
        ax.plot(fpr, tpr, lw=1.4, label=f"{name} (AUROC {auroc(y, s):.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1, label="chance (0.500)")
    ax.set_xlabel("false positive rate (incorrect solutions accepted)")
    ax.set_ylabel("true positive rate (correct solutions accepted)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or f"separating correct from incorrect solutions (n = {y.size:,})",
                 fontsize=9)
    return ax


def plot_score_paths(tracks: BeliefTracks, data: ScoreTable, idx: Sequence[int], *,
                     ax: Any = None, title: str | None = None) -> Any:
    """PRM score against step for solutions ``idx``; × marks where the policy asks to regenerate."""
    ax = _ax(ax, (6.4, 3.8))
    for i in idx:
        m = int(data.lengths[i])
        col = "tab:green" if data.correct[i] else "tab:red"
        t = np.arange(1, m + 1)
        ax.plot(t, data.scores[i, :m], color=col, lw=1.0, alpha=0.8, marker="o", ms=3)
        reg = np.flatnonzero(tracks.action[i, :m] == 1)
        ax.scatter(reg + 1, data.scores[i, reg], marker="x", s=60, color="black", zorder=4)
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], color="tab:green", marker="o", ms=3, label="correct answer"),
                       Line2D([], [], color="tab:red", marker="o", ms=3, label="incorrect answer"),
                       Line2D([], [], color="black", marker="x", ls="",
                              label="policy asks to regenerate")], fontsize=7, loc="best")
    ax.set_xlabel("step (1-based)")
    ax.set_ylabel("PRM score of the step (P(correct))")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    lam = "" if tracks.lam is None else f", λ = {tracks.lam:g}"
    ax.set_title(title or f"where TRIM-POMDP asks for a regeneration ({tracks.rule}{lam})",
                 fontsize=9)
    return ax


def regeneration_profile(tracks: BeliefTracks, data: ScoreTable, max_step: int = 30
                         ) -> dict[str, np.ndarray]:
    """Per step (0..max_step-1): share of live solutions, correct and incorrect separately,
    on which the policy asks to regenerate."""
    out = {}
    for name, sel in (("correct", data.correct), ("incorrect", ~data.correct)):
        a = tracks.action[sel, :max_step]
        live = (a >= 0).sum(axis=0)
        out[name] = np.where(live > 0, (a == 1).sum(axis=0) / np.maximum(live, 1), np.nan)
        out[name + "_live"] = live
    return out


def plot_regeneration_profile(tracks: Mapping[str, BeliefTracks], data: ScoreTable, *,
                              ax: Any = None, max_step: int = 20, title: str | None = None
                              ) -> Any:
    """Share of steps where each tracking asks to regenerate, by step, for correct (solid) and
    incorrect (dashed) solutions."""
    ax = _ax(ax, (6.4, 3.8))
    for k, (name, tr) in enumerate(tracks.items()):
        prof = regeneration_profile(tr, data, max_step)
        col = f"C{k}"
        t = np.arange(1, max_step + 1)
        ax.plot(t, 100 * prof["correct"], color=col, lw=1.4, label=f"{name}: correct answers")
        ax.plot(t, 100 * prof["incorrect"], color=col, lw=1.4, ls="--",
                label=f"{name}: incorrect answers")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step (1-based)")
    ax.set_ylabel("regenerate asked (% of solutions at that step)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "where regenerations would be asked", fontsize=9)
    return ax


def plot_filter_vs_release(filt: BeliefTracks, rel: BeliefTracks, *, ax: Any = None,
                           max_points: int = 20000, seed: int = 0, title: str | None = None
                           ) -> Any:
    """P(S0) under the Bayes filter against the release's single-observation posterior, per step;
    colour = whether the two routers' actions agree at that step."""
    ax = _ax(ax, (5.0, 4.6))
    both = (filt.action >= 0) & (rel.action >= 0)
    same = both & (filt.action == rel.action)
    pts = np.flatnonzero(both.ravel())
    rng = np.random.default_rng(seed)
    if pts.size > max_points:
        pts = rng.choice(pts, max_points, replace=False)
    x = rel.belief[..., 0].ravel()[pts]
    y = filt.belief[..., 0].ravel()[pts]
    agree = same.ravel()[pts]
    ax.scatter(x[agree], y[agree], s=3, alpha=0.25, color="tab:blue", label="same action",
               rasterized=True)
    ax.scatter(x[~agree], y[~agree], s=8, alpha=0.8, color="tab:orange",
               label="different action", rasterized=True)
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1)
    ax.set_xlabel("P(S0) — release: current observation only, uniform prior")
    ax.set_ylabel("P(S0) — Bayes filter across steps")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", markerscale=3)
    ax.set_title(title or f"filter vs single-observation posterior, per step "
                 f"({pts.size:,} steps shown)", fontsize=9)
    return ax


# ----------------------------------------------------------------------------------------------
def action_map(policy: Any, step: int, tokens: float, resolution: int = 60, *,
               final: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Beliefs on a simplex grid (m, 3) and the policy's action there (m,), vectorised."""

    grid = simplex_grid(resolution)
    q = q_batch(policy, step, tokens, grid, final)
    return grid, (q[:, 1] > q[:, 0]).astype(np.int8)


def regenerate_share(policy: Any, step: int, tokens: float, resolution: int = 60) -> float:
    """Fraction of the belief simplex (grid points) where ``policy`` regenerates."""
    return float(action_map(policy, step, tokens, resolution)[1].mean())


def plot_policy_grid(policies: Sequence[Any], steps: Sequence[int], tokens: Sequence[float], *,
                     resolution: int = 50, by: str = "step") -> Any:
    """Continue (blue) / regenerate (orange) regions: one row per policy (λ), one column per step
    (``by="step"``, at ``tokens[0]``) or per token count (``by="tokens"``, at ``steps[0]``)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch


    _check_choice(by, ("step", "tokens"), "by")
    cols = [(t, tokens[0]) for t in steps] if by == "step" else [(steps[0], n) for n in tokens]
    fig, axes = plt.subplots(len(policies), len(cols), figsize=(2.3 * len(cols),
                                                                2.3 * len(policies)),
                             squeeze=False)
    for r, pol in enumerate(policies):
        for c, (t, n) in enumerate(cols):
            ax = axes[r][c]
            grid, acts = action_map(pol, t, n, resolution)
            xy = to_xy(grid)
            ax.tricontourf(xy[:, 0], xy[:, 1], acts.astype(float), levels=[-0.5, 0.5, 1.5],
                           colors=["tab:blue", "tab:orange"])
            draw_simplex(ax, labels=False)
            for lab, (x, y), ha in (("S0", (0.5, 0.89), "center"), ("S1", (-0.02, -0.04), "left"),
                                    ("S2", (1.02, -0.04), "right")):
                ax.text(x, y, lab, fontsize=7, ha=ha, va="bottom" if lab == "S0" else "top")
            ax.set_title(f"λ={pol.lam:g}, step {t + 1}, n={n:g} tok\nregen {acts.mean():.0%}",
                         fontsize=7)
    fig.legend(handles=[Patch(color="tab:blue", label="continue"),
                        Patch(color="tab:orange", label="regenerate")], loc="upper right",
               fontsize=8, frameon=False)
    fig.suptitle("TRIM-POMDP policy maps on the belief simplex (S0 = prefix correct, "
                 "S1 = unrecoverable, S2 = only this step wrong)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_regenerate_regions(policies: Sequence[Any], step: int, tokens: float, *,
                            ax: Any = None, resolution: int = 80) -> Any:
    """Regenerate regions of several λ overlaid on one simplex: each λ's region is filled with its
    colour, the smallest λ (largest region) first, so every larger λ's region shows on top."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch


    ax = _ax(ax, (5.2, 4.6))
    pols = sorted(policies, key=lambda p: p.lam)
    cmap = plt.get_cmap("viridis")
    handles = []
    for k, pol in enumerate(pols):
        grid, acts = action_map(pol, step, tokens, resolution)
        xy = to_xy(grid)
        col = cmap(k / max(1, len(pols) - 1))
        if acts.any():
            ax.tricontourf(xy[:, 0], xy[:, 1], acts.astype(float), levels=[0.5, 1.5],
                           colors=[col], alpha=0.9)
        handles.append(Patch(color=col, label=f"λ = {pol.lam:g}: {acts.mean():.0%}"))
    draw_simplex(ax)
    handles.append(Patch(facecolor="white", edgecolor="0.3", label="continue for every λ"))
    ax.legend(handles=handles, title="regenerate region", fontsize=7, title_fontsize=7,
              loc="upper right", frameon=False)
    ax.set_title(f"regenerate region grows as λ falls (step {step + 1}, n = {tokens:g} tokens)",
                 fontsize=9)
    return ax


def plot_regenerate_share(policies: Sequence[Any], steps: Sequence[int], tokens: float, *,
                          ax: Any = None, resolution: int = 60) -> Any:
    """Share of the belief simplex where each policy regenerates, against λ, one line per step."""
    ax = _ax(ax, (5.6, 3.8))
    pols = sorted(policies, key=lambda p: p.lam)
    lams = [p.lam for p in pols]
    for t in steps:
        ax.plot(lams, [100 * regenerate_share(p, t, tokens, resolution) for p in pols],
                marker="o", ms=3.5, label=f"step {t + 1}")
    ax.set_xlabel("λ (reward units per strong token; R = 100 for a correct answer)")
    ax.set_ylabel("regenerate region (% of belief simplex)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=f"n = {tokens:g} tokens", title_fontsize=7)
    ax.set_title("how the regenerate region grows as λ falls", fontsize=9)
    return ax


# ----------------------------------------------------------------------------------------------
def simulate_policies(policies: Sequence[Any], specs: Sequence[str], *, n: int = 1000,
                      seed: int = 0, simulator: Any = None, model: TrimModel | None = None,
                      rules: Sequence[str] = RULES) -> tuple[dict[str, list[Any]], Any,
                                                             list[dict[str, Any]]]:
    """Cost–accuracy points of solved TRIM policies (each under every belief ``rule``) and of
    other policy ``specs`` (``make_router`` strings), all on one simulated scenario.

    Returns (curves by family, References from weak/strong/oracle, one summary row per run).
    """

    sim = simulator if simulator is not None else load_simulator()
    sc = sim.scenario(n, seed)
    runs = {s: simulate(make_router(s, model, record=False), sc) for s in
            ("weak", "strong", "oracle")}
    ref = references_from_runs(runs["weak"], runs["strong"], runs["oracle"])
    so = runs["strong"].mean_strong_tokens
    curves: dict[str, list[Any]] = {}
    rows = []
    names = {"filter": "TRIM-POMDP (Bayes filter)", "release": "TRIM-POMDP (release rule)"}
    for pol in policies:
        for rule in rules:
            t0 = time.perf_counter()
            res = simulate(pomdp_router(pol, belief=rule, record=False), sc)
            curves.setdefault(names[rule], []).append(point_from_run(res, pol.lam, names[rule]))
            rows.append({"family": names[rule], "param": pol.lam, **res.summary(so),
                         "seconds": time.perf_counter() - t0})
    for s in specs:
        t0 = time.perf_counter()
        res = simulate(make_router(s, model, record=False, seed=seed), sc)
        fam = family(s)
        curves.setdefault(fam, []).append(point_from_run(res, spec_param(s), fam))
        rows.append({"family": fam, "param": spec_param(s), **res.summary(so),
                     "seconds": time.perf_counter() - t0})
    for s in ("weak", "strong", "oracle"):
        rows.append({"family": s, "param": None, **runs[s].summary(so), "seconds": None})
    return curves, ref, rows


def learned_checkpoints(root: str | os.PathLike[str] = ".",
                        dirs: Sequence[str] = ("models/learned", "benchmarks/results/ckpt"), *,
                        tracked_only: bool = True) -> list[Any]:
    """TRIM-Agg / TRIM-Seq checkpoint files (``agg_*.json``, ``seq_*.json``) under ``root/dirs``.

    ``tracked_only`` keeps only files git tracks, so a notebook's committed output matches what a
    fresh checkout (CI) can reproduce; outside a git checkout every file present is used.
    """
    import subprocess
    from pathlib import Path

    base = Path(root).resolve()
    files = sorted(p.resolve() for d in dirs if (base / d).is_dir()
                   for p in (base / d).glob("*.json") if p.name.startswith(("agg_", "seq_")))
    if not tracked_only or not files:
        return files
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", *dirs], cwd=base, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return files
    tracked = {(base / f).resolve() for f in out.split("\0") if f}
    return [p for p in files if p in tracked]


def release_measured_curves() -> dict[str, list[Any]]:
    """The release's measured MATH-500 points (TRIM-Thr, TRIM-POMDP; Qwen2.5-1.5B -> 7B)."""

    out: dict[str, list[Any]] = {}
    for name, file, key in (("release TRIM-Thr", "thr_results_math500_summary.jsonl",
                             "threshold"),
                            ("release TRIM-POMDP", "pomdp_results_math500_summary.jsonl",
                             "cost_per_token")):
        rows = read_release_results(resource_path("data", f"trim_release/{file}"))
        out[name] = [CurvePoint(policy=name, accuracy=float(r["accuracy"]),
                                strong_tokens=float(r["avg_target_tokens_per_question"]),
                                param=float(r[key])) for r in rows]
    return out


__all__ = ["BeliefTracks", "Disagreement", "ScoreTable", "action_map", "auroc", "auroc_bootstrap", "auroc_table",
           "density_batch", "disagreement", "learned_checkpoints", "load_scores",
           "pick_examples", "plot_filter_vs_release", "plot_policy_grid",
           "plot_regenerate_regions", "plot_regenerate_share", "plot_regeneration_profile",
           "plot_roc", "plot_score_paths", "plot_simplex_trajectories", "q_batch",
           "regenerate_share", "regeneration_profile", "release_measured_curves",
           "separation_scores", "simulate_policies", "track", "track_with_router"]
