"""Transition statistics of the TRIM POMDP: next-step accuracy and the termination hazard."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import gaussian_kde

from trimpomdp.errors import InputError
from trimpomdp.pomdp.dynamics import DEFAULT_MAX_STEPS, hazard_from_pmf

#: kept for callers of the old name; the one default lives in trimpomdp.pomdp.dynamics
MAX_STEPS = DEFAULT_MAX_STEPS


def next_step_accuracy(correct_steps: Sequence[int] | np.ndarray,
                       first_error_steps: Sequence[int] | np.ndarray) -> float:
    """The release's next-step accuracy: 1 - #errors / #steps observed.

    ``correct_steps`` are the step counts of correct solutions, ``first_error_steps`` the 1-based
    first-error step of incorrect ones (the steps up to and including the first error count).
    """
    c = np.asarray(correct_steps, dtype=float)
    e = np.asarray(first_error_steps, dtype=float)
    if c.size + e.size == 0 or np.any(c < 1) or np.any(e < 1):
        raise InputError("step counts must be integers >= 1 and not all empty.")
    return float(1.0 - e.size / (c.sum() + e.sum()))


def hazard_from_lengths(lengths: Sequence[int], *, method: str = "kde", bandwidth: float = 0.1,
                        min_len: int = 2, max_steps: int = MAX_STEPS) -> np.ndarray:
    """Termination hazard h(0..max_steps) from solution lengths (in steps).

    ``method="kde"`` is the release's: a Gaussian KDE (scipy factor ``bandwidth``) on the
    lengths clipped to [min_len, max_steps], evaluated at the integers; "empirical" counts.
    """
    x = np.clip(np.asarray(lengths, dtype=float), min_len, max_steps)
    if x.size < 2:
        raise InputError(f"need at least 2 solution lengths. Got {x.size} instead.")
    ks = np.arange(min_len, max_steps + 1)
    if method == "kde":
        pmf = gaussian_kde(x, bw_method=bandwidth)(ks)
    elif method == "empirical":
        pmf = np.bincount(x.astype(int), minlength=max_steps + 1)[min_len:].astype(float)
    else:
        raise InputError(f"method must be 'kde' or 'empirical'. Got {method!r} instead.",
                         field="method")
    return hazard_from_pmf(pmf, min_len=min_len, max_steps=max_steps)
