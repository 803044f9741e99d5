"""The TRIM dynamics, in one place: class transitions per action, the default horizon, the hazard.

Hidden class c ∈ {S0 correct so far, S1 an earlier step wrong, S2 only the latest step wrong}.
Continue keeps the weak step: S0 → S0 with the weak next-step accuracy p_w, else S2; S1 and S2
→ S1 (an error stays). Regenerate rewrites the latest step with the strong model, which undoes a
latest-step error: from S0 or S2 the prefix is correct, the new step right with p_s, and the next
drafted step then right with p_w. DESIGN.md §2. Numpy only, so every layer may import it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trimpomdp.errors import InputError

#: the release's horizon (steps 0..29); a model's ``max_steps`` overrides it everywhere
DEFAULT_MAX_STEPS = 30
CONTINUE, REGENERATE = 0, 1


def continue_transition(p_weak: float) -> np.ndarray:
    """T[c, c'] of continue (the uncontrolled chain): S0 → S0 | S2, S1 → S1, S2 → S1."""
    pw = float(p_weak)
    return np.array([[pw, 0.0, 1.0 - pw], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])


def regenerate_transition(p_weak: float, p_strong: float) -> np.ndarray:
    """T[c, c'] of regenerate: S0 and S2 → (p_w p_s, 1 − p_s, p_s (1 − p_w)), S1 → S1."""
    pw, ps = float(p_weak), float(p_strong)
    row = [pw * ps, 1.0 - ps, ps * (1.0 - pw)]
    return np.array([row, [0.0, 1.0, 0.0], row])


def trim_transitions(p_weak: float, p_strong: float) -> tuple[np.ndarray, np.ndarray]:
    """The TRIM transition matrices T[c, c'] for (continue, regenerate)."""
    return continue_transition(p_weak), regenerate_transition(p_weak, p_strong)


def hazard_from_pmf(pmf: Sequence[float], *, min_len: int = 2,
                    max_steps: int = DEFAULT_MAX_STEPS) -> np.ndarray:
    """h(k) = P(T = k | T >= k) for k = 0..max_steps from the pmf of T over min_len..max_steps."""
    p = np.asarray(pmf, dtype=float)
    if p.shape != (max_steps - min_len + 1,) or np.any(p < 0) or not np.isfinite(p).all() \
            or not p.sum() > 0:
        raise InputError(f"pmf must have {max_steps - min_len + 1} non-negative entries with a "
                         f"positive sum. Got shape {p.shape} instead.", field="pmf")
    p = p / p.sum()
    ccdf = p[::-1].cumsum()[::-1]
    h = np.zeros(max_steps + 1)
    h[min_len:] = np.divide(p, ccdf, out=np.ones_like(p), where=ccdf > 0)
    h[max_steps] = 1.0
    return h


def length_pmf(hazard: Sequence[float]) -> np.ndarray:
    """P(solution length = k), k = 0..max_steps, from the hazard h(0..max_steps)."""
    h = np.asarray(hazard, dtype=float)
    survive = np.concatenate([[1.0], np.cumprod(1.0 - h)[:-1]])
    return survive * h


__all__ = ["CONTINUE", "DEFAULT_MAX_STEPS", "REGENERATE", "continue_transition",
           "hazard_from_pmf", "length_pmf", "regenerate_transition", "trim_transitions"]
