"""Shared input checks that raise InputError in scikit-learn's sentence shape."""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from trimpomdp.errors import InputError

Loc = dict[str, Any]


def _loc(path: str | os.PathLike[str] | None, line: int | None, field: str | None) -> Loc:
    return {"path": path, "line": line, "field": field}


def unit_float(value: Any, name: str, *, path: str | os.PathLike[str] | None = None,
               line: int | None = None) -> float:
    """Return ``value`` as a float in [0, 1]; NaN, inf, bools and non-numbers are rejected."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InputError(f"{name} must be a number in [0, 1]. Got {value!r} instead.",
                         **_loc(path, line, name))
    v = float(value)
    if not (0.0 <= v <= 1.0):  # also false for NaN
        raise InputError(f"{name} must be a number in [0, 1]. Got {value!r} instead.",
                         **_loc(path, line, name))
    return v


def nonneg_float(value: Any, name: str, *, strict: bool = False) -> float:
    """Return ``value`` as a finite float >= 0 (> 0 when ``strict``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not math.isfinite(v) or v < 0 or (strict and v == 0):
        rng = "(0, inf)" if strict else "[0, inf)"
        raise InputError(f"The '{name}' parameter must be a float in the range {rng}. "
                         f"Got {value!r} instead.", field=name)
    return v


def prob_vector(values: Any, name: str, *, atol: float = 1e-6, renormalise: bool = True,
                path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Check a probability vector: finite, non-negative, sums to 1 within ``atol``."""
    try:
        p = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a list of probabilities. Got {values!r} instead.",
                         path=path, field=name) from None
    if p.ndim != 1 or p.size == 0:
        raise InputError(f"{name} must be a 1-D list of probabilities. Got shape {p.shape} "
                         "instead.", path=path, field=name)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise InputError(f"{name} must have finite, non-negative entries. Got {p.tolist()} "
                         "instead.", path=path, field=name)
    s = float(p.sum())
    if abs(s - 1.0) > atol:
        raise InputError(f"{name} must sum to 1 (within {atol:g}). Got sum {s:.9g} instead.",
                         path=path, field=name)
    return p / s if renormalise else p


def stochastic_rows(arr: Any, name: str, *, atol: float = 1e-6,
                    path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Check that every row (last axis) of ``arr`` is a probability distribution."""
    a = np.asarray(arr, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise InputError(f"{name} must have finite, non-negative entries.", path=path, field=name)
    sums = a.sum(axis=-1)
    bad = np.argwhere(np.abs(sums - 1.0) > atol)
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise InputError(f"every row of {name} must sum to 1 (within {atol:g}). Row {idx} sums "
                         f"to {float(sums[idx]):.9g} instead.", path=path, field=name)
    return a
