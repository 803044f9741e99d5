"""Matplotlib figures: cost–accuracy curves with reference lines, belief trajectories on the simplex.

Every function takes an optional ``ax`` and returns it, so notebooks can compose figures;
:func:`save` writes a figure atomically. matplotlib is imported inside the functions.
"""
from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trimpomdp._io import atomic_write
from trimpomdp.errors import InputError
from trimpomdp.evaluation.metrics import CurvePoint, References

#: simplex corners (S0 bottom-left, S1 bottom-right, S2 top)
_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.4))[1]


def plot_cost_accuracy(curves: Mapping[str, Sequence[CurvePoint]], ref: References, *,
                       ax: Any = None, relative: bool = True, title: str | None = None,
                       measured: Mapping[str, Sequence[CurvePoint]] | None = None) -> Any:
    """Accuracy against cost (c = C̄ / C̄ strong if ``relative``) with weak/strong/oracle lines.

    ``measured`` curves (e.g. the release's real runs) are drawn dashed with hollow markers.
    """
    ax = _axes(ax)
    scale = ref.strong_tokens if relative else 1.0
    for name, pts in curves.items():
        pts = sorted(pts, key=lambda p: p.strong_tokens)
        ax.plot([p.strong_tokens / scale for p in pts], [p.accuracy for p in pts], marker="o",
                ms=3.5, lw=1.4, label=name)
    for name, pts in (measured or {}).items():
        pts = sorted(pts, key=lambda p: p.strong_tokens)
        ax.plot([p.strong_tokens / scale for p in pts], [p.accuracy for p in pts], ls="--",
                marker="s", mfc="none", ms=4, lw=1.0, label=f"{name} (measured)")
    ax.axhline(ref.weak_accuracy, color="0.5", ls=":", lw=1, label="weak-only")
    ax.axhline(ref.strong_accuracy, color="0.2", ls="--", lw=1, label="strong-only")
    if ref.oracle_accuracy is not None:
        ax.axhline(ref.oracle_accuracy, color="tab:green", ls="-.", lw=1, label="oracle (query)")
    ax.set_xlabel("strong-token cost c = C̄ / C̄(strong-only)" if relative
                  else "C̄ (strong tokens per problem)")
    ax.set_ylabel("accuracy")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def simplex_xy(belief: Any) -> np.ndarray:
    """2-D coordinates of beliefs (..., 3) in the simplex triangle."""
    b = np.asarray(belief, dtype=float)
    return b @ _CORNERS


def plot_belief_trajectories(traces: Sequence[Sequence[Mapping[str, Any]]], *, ax: Any = None,
                             max_traces: int = 20, title: str | None = None) -> Any:
    """Belief paths of decision traces (``StepRouter.trace``) on the S0/S1/S2 simplex.

    Markers: circle = continue, cross = regenerate; a star marks a zero-evidence fallback.
    """
    ax = _axes(ax)
    tri = np.vstack([_CORNERS, _CORNERS[:1]])
    ax.plot(tri[:, 0], tri[:, 1], color="0.3", lw=1)
    for name, xy in zip(("S0", "S1", "S2"), _CORNERS):
        ax.annotate(name, xy, xytext=(0, 6 if name == "S2" else -12), textcoords="offset points",
                    ha="center")
    for i, tr in enumerate(list(traces)[:max_traces]):
        recs = [r for r in tr if r.get("belief") is not None]
        if not recs:
            continue
        xy = simplex_xy([r["belief"] for r in recs])
        line, = ax.plot(xy[:, 0], xy[:, 1], lw=0.8, alpha=0.7)
        for r, p in zip(recs, xy):
            ax.plot(*p, marker="x" if r["action"] == "regenerate" else "o", ms=4,
                    color=line.get_color())
            if r.get("belief_fallback"):
                ax.plot(*p, marker="*", ms=9, color="red")
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


#: figure formats :func:`save` writes (by file suffix)
PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".eps", ".ps", ".jpg", ".jpeg")


def plot_format(path: str | os.PathLike[str]) -> str:
    """The figure format of ``path`` from its suffix; InputError for an unsupported one."""
    suf = Path(path).suffix.lower()
    if suf not in PLOT_SUFFIXES:
        raise InputError(f"a plot file must end in one of {', '.join(PLOT_SUFFIXES)}. Got "
                         f"{suf or 'no extension'!r} instead.", path=path, field="plot")
    return suf.lstrip(".")


def render(ax_or_fig: Any, fmt: str = "png", dpi: int = 150) -> bytes:
    """The figure of ``ax_or_fig`` encoded as ``fmt`` (in memory; nothing written)."""
    fig = getattr(ax_or_fig, "figure", ax_or_fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def save(ax_or_fig: Any, path: str | os.PathLike[str], dpi: int = 150) -> None:
    """Save the figure of ``ax_or_fig`` (PNG/SVG/PDF/EPS/PS/JPEG by suffix), atomically."""
    data = render(ax_or_fig, plot_format(path), dpi)
    with atomic_write(path, "wb") as fh:
        fh.write(data)
