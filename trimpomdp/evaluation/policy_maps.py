"""Continue/regenerate regions of solved policies on the belief simplex."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trimpomdp.evaluation.figures import _ax
from trimpomdp.evaluation.simplex import draw_simplex, simplex_grid, to_xy
from trimpomdp.evaluation.tracking import _check_choice, q_batch


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


__all__ = ["action_map", "plot_policy_grid", "plot_regenerate_regions", "plot_regenerate_share",
           "regenerate_share"]
