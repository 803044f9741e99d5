"""The one definition of the TRIM observation o_t = (min of previous scores, current score)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def observation_sequence(scores: Sequence[float]) -> np.ndarray:
    """Observations for every step of a score sequence, shape (n, 2).

    The first step's ``min_prev`` is 1.0 (no previous step), as in the release.
    """
    s = np.asarray(scores, dtype=float)
    prev_min = np.minimum.accumulate(np.concatenate([[1.0], s[:-1]]))
    return np.column_stack([prev_min, s])


def observation_at(scores: Sequence[float], t: int) -> tuple[float, float]:
    """Observation of step ``t`` (0-based) of a score sequence."""
    prev = min(scores[:t]) if t > 0 else 1.0
    return (float(prev), float(scores[t]))
