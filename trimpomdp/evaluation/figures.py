"""Figures of belief trajectories, ROC curves, score paths and regeneration profiles
(matplotlib imported inside the functions; each takes an optional ``ax`` and returns it)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trimpomdp.evaluation.score_table import ScoreTable
from trimpomdp.evaluation.separation import auroc
from trimpomdp.evaluation.simplex import draw_simplex, to_xy
from trimpomdp.evaluation.tracking import BeliefTracks, regeneration_profile


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


__all__ = ["pick_examples", "plot_filter_vs_release", "plot_regeneration_profile", "plot_roc",
           "plot_score_paths", "plot_simplex_trajectories"]
