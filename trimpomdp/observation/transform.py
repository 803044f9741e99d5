"""A monotone score transform g: [0, 1] → [0, 1], applied to PRM scores before the grid densities.

Why: 83% of Qwen2.5-Math-PRM step scores are above 0.95 (docs/assessment.md), so an even grid on
raw scores puts most steps into one bin. A model fitted on g(score) (g = the training scores'
empirical CDF) keeps that resolution. g is piecewise linear between ``knots`` (raw scores, from 0
to 1, strictly increasing) and ``levels`` (non-decreasing, from 0 to 1). Being monotone,
min(g(s)) = g(min s), so the TRIM observation (min_prev, current) is simply mapped coordinate by
coordinate. The scalar form (router, plain Python) and the batched form (numpy) compute the same
numbers operation for operation.
"""
from __future__ import annotations

import math
import os
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from trimpomdp.errors import InputError

__all__ = ["ScoreTransform"]


@dataclass(frozen=True, eq=False)
class ScoreTransform:
    """Piecewise-linear monotone map of raw scores onto the model's grid axis."""

    knots: tuple[float, ...]
    levels: tuple[float, ...]
    _k: np.ndarray = field(init=False, repr=False)
    _v: np.ndarray = field(init=False, repr=False)
    _dk: tuple[float, ...] = field(init=False, repr=False)
    _dv: tuple[float, ...] = field(init=False, repr=False)
    _dk_a: np.ndarray = field(init=False, repr=False)
    _dv_a: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            k = tuple(float(x) for x in self.knots)
            v = tuple(float(x) for x in self.levels)
        except (TypeError, ValueError):
            raise InputError("score_transform knots and levels must be lists of numbers.",
                             field="score_transform") from None
        if len(k) < 2 or len(k) != len(v):
            raise InputError(f"score_transform needs >= 2 knots and as many levels. Got "
                             f"{len(k)} knots and {len(v)} levels instead.",
                             field="score_transform")
        if not all(math.isfinite(x) for x in k + v):
            raise InputError("score_transform knots and levels must be finite.",
                             field="score_transform")
        if k[0] != 0.0 or k[-1] != 1.0 or any(b <= a for a, b in pairwise(k)):
            raise InputError("score_transform knots must increase strictly from 0 to 1.",
                             field="score_transform.knots")
        if v[0] != 0.0 or v[-1] != 1.0 or any(b < a for a, b in pairwise(v)):
            raise InputError("score_transform levels must be non-decreasing from 0 to 1.",
                             field="score_transform.levels")
        object.__setattr__(self, "knots", k)
        object.__setattr__(self, "levels", v)
        object.__setattr__(self, "_k", np.array(k))
        object.__setattr__(self, "_v", np.array(v))
        object.__setattr__(self, "_dk", tuple(b - a for a, b in pairwise(k)))
        object.__setattr__(self, "_dv", tuple(b - a for a, b in pairwise(v)))
        object.__setattr__(self, "_dk_a", np.array(self._dk))
        object.__setattr__(self, "_dv_a", np.array(self._dv))

    # ---- evaluation ----------------------------------------------------------------------
    def __call__(self, x: float) -> float:
        """g(x) for one score (plain Python; outside [0, 1] clamps, NaN stays NaN)."""
        k = self.knots
        if not x > 0.0:
            return x if math.isnan(x) else 0.0  # NaN passes through
        if x >= 1.0:
            return 1.0
        j = bisect_right(k, x) - 1
        return self.levels[j] + self._dv[j] * ((x - k[j]) / self._dk[j])

    def batch(self, x: Any) -> np.ndarray:
        """g of an array of scores; the same numbers as :meth:`__call__` element by element."""
        a = np.asarray(x, dtype=float)
        k = self._k
        j = np.clip(np.searchsorted(k, a, side="right") - 1, 0, k.size - 2)
        y = self._v[j] + self._dv_a[j] * ((a - k[j]) / self._dk_a[j])
        y = np.where(a > 0.0, y, 0.0)
        y = np.where(a >= 1.0, 1.0, y)
        return np.where(np.isnan(a), a, y)

    def inverse_batch(self, u: Any) -> np.ndarray:
        """A raw score with g(score) = u (the smallest such on flat pieces): for simulators that
        draw on the transformed grid and must hand the router raw scores."""
        a = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        v = self._v
        j = np.clip(np.searchsorted(v, a, side="left") - 1, 0, v.size - 2)
        dv = self._dv_a[j]
        frac = np.where(dv > 0, (a - v[j]) / np.where(dv > 0, dv, 1.0), 1.0)
        return np.clip(self._k[j] + frac * self._dk_a[j], 0.0, 1.0)

    def slope_batch(self, x: Any) -> np.ndarray:
        """dg/dx at each score (right derivative at knots): the Jacobian for raw-score densities."""
        a = np.asarray(x, dtype=float)
        k = self._k
        j = np.clip(np.searchsorted(k, a, side="right") - 1, 0, k.size - 2)
        return self._dv_a[j] / self._dk_a[j]

    # ---- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the TRIM model file under ``score_transform``)."""
        return {"kind": "piecewise_linear", "knots": list(self.knots),
                "levels": list(self.levels)}

    @classmethod
    def from_dict(cls, doc: Any, path: str | os.PathLike[str] = "<model>") -> ScoreTransform:
        """Inverse of :meth:`to_dict`; errors name the file and field."""
        if isinstance(doc, ScoreTransform):
            return doc
        if not isinstance(doc, dict):
            raise InputError(f"score_transform must be an object. Got {type(doc).__name__} "
                             "instead.", path=path, field="score_transform")
        kind = doc.get("kind", "piecewise_linear")
        if kind != "piecewise_linear":
            raise InputError(f"score_transform kind must be 'piecewise_linear'. Got {kind!r} "
                             "instead.", path=path, field="score_transform.kind")
        try:
            return cls(knots=tuple(doc["knots"]), levels=tuple(doc["levels"]))
        except KeyError as exc:
            raise InputError("missing required field", path=path,
                             field=f"score_transform.{exc.args[0]}") from None
        except TypeError:
            raise InputError("score_transform knots and levels must be lists of numbers.",
                             path=path, field="score_transform") from None
        except InputError as exc:
            raise InputError(exc.reason, path=path, field=exc.field) from None

    def __reduce__(self) -> tuple[Any, ...]:
        return (ScoreTransform, (self.knots, self.levels))
