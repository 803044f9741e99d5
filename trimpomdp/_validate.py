"""Shared input checks that raise InputError in scikit-learn's sentence shape."""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from trimpomdp.errors import DataWarning, InputError

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


_Path = str | os.PathLike[str] | None
_NUMBER_TYPES = (int, float, np.integer, np.floating)


def _range_text(lo: float | None, hi: float | None, integer: bool, lo_open: bool) -> str:
    kind = "an integer" if integer else "a number"
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{kind} <= {hi:g}"
    return f"a finite {'integer' if integer else 'number'}"


def check_number(value: Any, name: str, *, path: _Path = None, line: int | None = None,
                 lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 integer: bool = False, field: str | None = None) -> float:
    """Return ``value`` as a finite number in the given range (an ``int`` when ``integer``).

    Strings, bools, None, NaN, infinities and (with ``integer``) fractional values are rejected
    with ``path:line: field 'name': name must be … Got … instead.``
    """
    want = _range_text(lo, hi, integer, lo_open)
    bad = InputError(f"{name} must be {want}. Got {value!r} instead.",
                     **_loc(path, line, field or name))
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        raise bad
    try:
        v = float(value)
    except OverflowError:  # an int too large for a float
        raise bad from None
    if not math.isfinite(v) or (integer and not v.is_integer()):
        raise bad
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise bad
    if hi is not None and v > hi:
        raise bad
    return int(value) if integer else v


def check_type(value: Any, types: type | tuple[type, ...], name: str, what: str, *,
               path: _Path = None, line: int | None = None) -> Any:
    """Return ``value`` if it is an instance of ``types`` (bools never count as numbers)."""
    ok = isinstance(value, types)
    if ok and isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                      else (types,)):
        ok = False
    if not ok:
        raise InputError(f"{name} must be {what}. Got {_brief(value)} instead.",
                         **_loc(path, line, name))
    return value


def _brief(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + "…"


def name_max(directory: str | os.PathLike[str]) -> int:
    """Longest file name the file system of ``directory`` accepts (255 when unknown)."""
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def check_output_path(path: str | os.PathLike[str], *, option: str = "--out",
                      suffixes: tuple[str, ...] | None = None) -> Path:
    """Check, before any long work, that a file can be written at ``path``.

    Rejects an existing directory, a parent that is a regular file, a name longer than the file
    system allows, a read-only folder and (with ``suffixes``) an unsupported extension.
    """
    field = option.lstrip("-").replace("-", "_")
    text = os.fspath(path)
    if not str(text).strip():
        raise InputError(f"{option} must be a file path. Got {text!r} instead.", field=field)
    p = Path(text)
    anc = p.parent
    while not _exists(anc) and anc != anc.parent:
        anc = anc.parent
    limit = name_max(anc if _exists(anc) else ".")
    for part in [p.name, *(q.name for q in p.parents)]:
        if len(os.fsencode(part)) > limit:
            raise InputError(f"{option} has a file name of {len(os.fsencode(part))} bytes; the "
                             f"file system allows at most {limit}.", path=_brief_path(p),
                             field=field)
    if _is_dir(p) or str(text).endswith(("/", os.sep)):
        raise InputError(f"{option} must be a file path, not a directory.", path=p, field=field)
    if suffixes is not None:
        suf = p.suffix.lower()
        if suf not in suffixes:
            raise InputError(f"{option} must end in one of {', '.join(suffixes)}. Got "
                             f"{suf or 'no extension'!r} instead.", path=p, field=field)
    if _exists(anc) and not _is_dir(anc):
        raise InputError(f"{option} cannot be created: {anc} is a regular file, not a folder.",
                         path=p, field=field)
    if _exists(anc) and not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{option} cannot be written: folder {anc} is not writable.", path=p,
                         field=field)
    return p


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:
        return False


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def _brief_path(p: Path, n: int = 120) -> str:
    text = str(p)
    return text if len(text) <= n else text[: n // 2] + "…" + text[-n // 2:]


def first_non_finite(obj: Any, prefix: str = "") -> tuple[str, float] | None:
    """``(field, value)`` of the first NaN or infinity in a JSON-like tree, else None."""
    if isinstance(obj, float | np.floating):
        return None if math.isfinite(obj) else (prefix or "value", float(obj))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and not np.all(np.isfinite(obj)):
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(obj))[0])
            return prefix + "".join(f"[{i}]" for i in idx), float(obj[idx])
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            hit = first_non_finite(v, f"{prefix}.{k}" if prefix else str(k))
            if hit:
                return hit
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            hit = first_non_finite(v, f"{prefix}[{i}]")
            if hit:
                return hit
    return None


def check_finite_output(obj: Any, path: _Path) -> None:
    """Refuse to write ``obj`` to ``path`` if it holds NaN or an infinity (names the field)."""
    hit = first_non_finite(obj)
    if hit is not None:
        raise InputError(f"refusing to write a non-finite number ({hit[1]}): the result is "
                         "invalid (check the inputs and options that produced it).", path=path,
                         field=hit[0])


#: share of a class's probability mass from smoothing above which fits warn
SMOOTHING_WARN_SHARE = 0.2


def warn_if_smoothing_dominates(n_per_class: Any, alpha: float, n_bins: int, *,
                                what: str = "alpha") -> np.ndarray:
    """Warn (DataWarning) when additive smoothing is a large share of a class's mass.

    The share of class c is ``alpha * n_bins / (n_c + alpha * n_bins)``; returns the shares.
    """
    n = np.asarray(n_per_class, dtype=float)
    prior = float(alpha) * int(n_bins)
    share = np.where(n + prior > 0, prior / np.maximum(n + prior, 1e-300), 0.0)
    if prior > 0 and np.any(share > SMOOTHING_WARN_SHARE):
        parts = ", ".join(f"S{c} {100 * s:.0f}% (n={int(n[c])})" for c, s in enumerate(share))
        warnings.warn(f"smoothing {what}={alpha:g} over {n_bins} bins is a large share of each "
                      f"class's probability mass: {parts}; the fitted model is close to uniform "
                      f"where data is thin. Use more data or a smaller {what}.", DataWarning,
                      stacklevel=3)
    return share


def check_int_array(values: Any, name: str, *, path: _Path = None, line: int | None = None,
                    lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """A 1-D int64 array of whole numbers in [lo, hi]; fractional values (0.5), bools, strings,
    NaN and nested lists are rejected (``np.asarray(..., dtype=int)`` would truncate them)."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, list | tuple):
        raise InputError(f"{name} must be a list of integers. Got {_brief(values)} instead.",
                         **_loc(path, line, name))
    out = [int(check_number(v, f"{name}[{i}]", path=path, line=line, lo=lo, hi=hi, integer=True,
                            field=name)) for i, v in enumerate(values)]
    return np.asarray(out, dtype=np.int64)
