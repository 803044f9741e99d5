"""Cost–accuracy metrics of DESIGN.md §3 from measured (or simulated) curve points.

C̄ = mean strong tokens per problem; c = C̄ / C̄(strong-only); PGR = (acc − acc_w)/(acc_s − acc_w);
CPT(x) = the cheapest *measured* point with PGR ≥ x (never interpolated: curves are not
monotone); IBC = (acc − acc_w)/(C̄ − C̄_w), ΔIBC = (IBC − IBC_s)/IBC_s, aggregated pointwise, as
the mean over a curve or at the best point (each labelled); budget accuracy = the best accuracy
among measured points with c ≤ budget.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trimpomdp.errors import InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class CurvePoint:
    """One measured operating point of a policy (``param``: its k, λ or p)."""

    policy: str
    accuracy: float
    strong_tokens: float
    param: float | None = None
    n: int | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.accuracy <= 1.0) or not (0.0 <= self.strong_tokens < math.inf):
            raise InputError(f"a curve point needs accuracy in [0, 1] and strong_tokens >= 0. "
                             f"Got ({self.accuracy!r}, {self.strong_tokens!r}) instead.",
                             field="accuracy")


@dataclass(frozen=True, slots=True, kw_only=True)
class References:
    """Weak-only and strong-only (and optionally oracle) reference points."""

    weak_accuracy: float
    strong_accuracy: float
    strong_tokens: float
    weak_tokens: float = 0.0
    oracle_accuracy: float | None = None
    oracle_tokens: float | None = None

    def __post_init__(self) -> None:
        for name in ("weak_accuracy", "strong_accuracy", "oracle_accuracy"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= v <= 1.0):  # also rejects NaN
                raise InputError(f"{name} must be in [0, 1]. Got {v!r} instead.", field=name)
        for name in ("weak_tokens", "strong_tokens", "oracle_tokens"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= v < math.inf):
                raise InputError(f"{name} must be a finite number >= 0. Got {v!r} instead.",
                                 field=name)
        if not self.strong_tokens > self.weak_tokens:
            raise InputError(f"strong_tokens must exceed weak_tokens. Got {self.strong_tokens!r} "
                             f"and {self.weak_tokens!r} instead.", field="strong_tokens")
        if self.strong_accuracy == self.weak_accuracy:
            raise InputError("strong and weak accuracy must differ (PGR undefined).",
                             field="strong_accuracy")

    @property
    def ibc_strong(self) -> float:
        """IBC of strong-only."""
        return (self.strong_accuracy - self.weak_accuracy) / (self.strong_tokens - self.weak_tokens)

    def cost(self, tokens: float) -> float:
        """c = C̄ / C̄(strong-only)."""
        return tokens / self.strong_tokens


def pgr(accuracy: float, ref: References) -> float:
    """Performance gap recovered."""
    return (accuracy - ref.weak_accuracy) / (ref.strong_accuracy - ref.weak_accuracy)


def ibc(point: CurvePoint, ref: References) -> float | None:
    """Incremental benefit per cost; None where no strong tokens were spent."""
    dc = point.strong_tokens - ref.weak_tokens
    return None if dc <= 0 else (point.accuracy - ref.weak_accuracy) / dc


def delta_ibc(point: CurvePoint, ref: References) -> float | None:
    """(IBC − IBC_strong) / IBC_strong."""
    v = ibc(point, ref)
    return None if v is None else (v - ref.ibc_strong) / ref.ibc_strong


def cpt(points: Sequence[CurvePoint], x: float, ref: References) -> float | None:
    """Least cost c among measured points with PGR ≥ x (x in [0, 1]); None if none reaches it."""
    if not 0.0 <= x <= 1.0:
        raise InputError(f"x must be a fraction in [0, 1]. Got {x!r} instead.", field="x")
    ok = [ref.cost(p.strong_tokens) for p in points if pgr(p.accuracy, ref) >= x - 1e-12]
    return min(ok) if ok else None


def ibc_summary(points: Sequence[CurvePoint], ref: References) -> dict[str, Any]:
    """ΔIBC pointwise (list), ``mean`` over the curve and at the ``best`` point (labelled)."""
    raw = [(p, delta_ibc(p, ref)) for p in points]
    vals = [(p, float(v)) for p, v in raw if v is not None]
    if not vals:
        return {"pointwise": [], "mean": None, "best": None, "best_param": None}
    best = max(vals, key=lambda pv: pv[1])
    return {"pointwise": [{"param": p.param, "delta_ibc": v} for p, v in vals],
            "mean": sum(v for _, v in vals) / len(vals), "best": best[1],
            "best_param": best[0].param}


def budget_accuracy(points: Sequence[CurvePoint], budget: float, ref: References
                    ) -> float | None:
    """Best accuracy among measured points with cost c ≤ ``budget``; None if none fits."""
    ok = [p.accuracy for p in points if ref.cost(p.strong_tokens) <= budget + 1e-12]
    return max(ok) if ok else None


def metrics_row(name: str, points: Sequence[CurvePoint], ref: References) -> dict[str, Any]:
    """One results-table row: CPT(50/80/95), ΔIBC (mean and best), budget accuracy 10%/20%."""
    if not points:
        raise InputError(f"policy '{name}' has no curve points.", field="points")
    ib = ibc_summary(points, ref)
    return {"policy": name, "n_points": len(points),
            "cpt50": cpt(points, 0.5, ref), "cpt80": cpt(points, 0.8, ref),
            "cpt95": cpt(points, 0.95, ref),
            "delta_ibc_mean": ib["mean"], "delta_ibc_best": ib["best"],
            "acc_at_10pct": budget_accuracy(points, 0.10, ref),
            "acc_at_20pct": budget_accuracy(points, 0.20, ref),
            "max_accuracy": max(p.accuracy for p in points),
            "points": [{"param": p.param, "accuracy": p.accuracy,
                        "strong_tokens": p.strong_tokens, "cost": ref.cost(p.strong_tokens),
                        "pgr": pgr(p.accuracy, ref)} for p in points]}


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
