"""Belief-simplex geometry and policy-map plots (continue/regenerate regions) with matplotlib.

Beliefs (S0, S1, S2) map to a triangle with S0 at the top, S1 bottom-left and S2 bottom-right.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trimpomdp._io import atomic_write

CORNERS = np.array([[0.5, np.sqrt(3) / 2], [0.0, 0.0], [1.0, 0.0]])  # S0, S1, S2


def to_xy(beliefs: Any) -> np.ndarray:
    """Cartesian coordinates (n, 2) of beliefs (n, 3) in the simplex triangle."""
    return np.asarray(beliefs, float).reshape(-1, 3) @ CORNERS


def simplex_grid(resolution: int = 80) -> np.ndarray:
    """All beliefs whose coordinates are multiples of 1/resolution, shape (n, 3)."""
    pts = [(i, j, resolution - i - j) for i in range(resolution + 1)
           for j in range(resolution + 1 - i)]
    return np.asarray(pts, float) / resolution


def draw_simplex(ax: Any, labels: bool = True) -> None:
    """Triangle outline and corner labels on ``ax``."""
    tri = np.vstack([CORNERS, CORNERS[:1]])
    ax.plot(tri[:, 0], tri[:, 1], color="black", lw=1)
    if labels:
        ax.text(*CORNERS[0] + [0, 0.03], "S0 (correct)", ha="center", va="bottom", fontsize=8)
        ax.text(*CORNERS[1] + [-0.02, -0.03], "S1 (unrecoverable)", ha="left", va="top",
                fontsize=8)
        ax.text(*CORNERS[2] + [0.02, -0.03], "S2 (recoverable)", ha="right", va="top", fontsize=8)
    ax.set_aspect("equal")
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(-0.12, 0.98)
    ax.axis("off")


def plot_policy_map(policy: Any, step: int, tokens_list: Sequence[float] = (30, 60, 120, 240),
                    *, resolution: int = 60, out: str | os.PathLike[str] | None = None,
                    final: bool = False) -> Any:
    """Continue (blue) / regenerate (orange) regions of ``policy`` at ``step`` per token count.

    ``policy`` needs ``action(step, tokens, belief, final=)`` (a TrimPolicy). Returns the figure;
    with ``out`` it is also saved (atomically) as PNG.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    grid = simplex_grid(resolution)
    xy = to_xy(grid)
    fig, axes = plt.subplots(1, len(tokens_list), figsize=(3.2 * len(tokens_list), 3.2),
                             squeeze=False)
    for ax, n in zip(axes[0], tokens_list):
        if hasattr(policy, "q_values_batch"):
            acts = (np.diff(policy.q_values_batch(step, n, grid, final), axis=1)[:, 0] > 0)
        else:
            acts = np.array([policy.action(step, n, b, final=final) for b in grid])
        ax.tricontourf(xy[:, 0], xy[:, 1], acts.astype(float), levels=[-0.5, 0.5, 1.5],
                       colors=["tab:blue", "tab:orange"])
        draw_simplex(ax)
        ax.set_title(f"step {step}, n = {n:g} tokens\nregenerate on {acts.mean():.0%} of beliefs",
                     fontsize=9)
    from matplotlib.patches import Patch

    axes[0][0].legend(handles=[Patch(color="tab:blue", label="continue"),
                               Patch(color="tab:orange", label="regenerate")],
                      loc="upper left", fontsize=7, frameon=False)
    lam = getattr(policy, "lam", None)
    fig.suptitle(f"TRIM-POMDP policy map (λ = {lam:g})" if lam is not None else "Policy map",
                 fontsize=10)
    fig.tight_layout()
    if out is not None:
        save_figure(fig, out)
    return fig


def save_figure(fig: Any, out: str | os.PathLike[str], dpi: int = 120) -> None:
    """Save a matplotlib figure atomically (format from the file suffix)."""

    fmt = Path(out).suffix.lstrip(".") or "png"
    with atomic_write(out, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=dpi, bbox_inches="tight")
