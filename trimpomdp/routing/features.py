"""The one definition of the router's score bookkeeping and of the TRIM-Agg / TRIM-Seq features.

Used by :class:`~trimpomdp.routing.router.StepRouter`, PPO training, simulation and replay alike,
so features at training and at deployment are identical by construction. Every function works on
Python floats and, element-wise, on numpy arrays (batched PPO rollouts).

Bookkeeping of previous scores: a *continued* step's score enters min/product; a *regenerated*
draft's score is discarded and the strong step counts as 1.0 (neutral), unless its own PRM score
is observed, which then enters instead.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: token count that scales the tokens feature (the release's)
TOKEN_SCALE = 300.0
#: horizon assumed by checkpoints that do not record theirs (the release's 30 steps)
DEFAULT_HORIZON = 30


def keep_score(min_prev: Any, prod_prev: Any, score: Any) -> tuple[Any, Any]:
    """(min, product) of previous scores after a kept step with ``score``."""
    return np.minimum(min_prev, score) if isinstance(min_prev, np.ndarray) else \
        min(min_prev, score), prod_prev * score


def book_step(min_prev: Any, prod_prev: Any, score: Any, regenerated: Any) -> tuple[Any, Any]:
    """(min, product) after a step: a regenerated draft's ``score`` is dropped (counts as 1.0)."""
    if isinstance(regenerated, np.ndarray):
        keep = ~regenerated.astype(bool)
        return (np.where(keep, np.minimum(min_prev, score), min_prev),
                np.where(keep, prod_prev * score, prod_prev))
    if regenerated:
        return min_prev, prod_prev
    return keep_score(min_prev, prod_prev, score)


def agg_features(score: Any, min_prev: Any, prod_prev: Any, tokens: Any, step: Any,
                 horizon: int = DEFAULT_HORIZON) -> np.ndarray:
    """The release's five TRIM-Agg features (last axis): score, min, product, tokens/300, t/H."""
    n = np.broadcast(score, min_prev, prod_prev, tokens, step).shape
    cols = [np.broadcast_to(np.asarray(v, dtype=float), n) for v in
            (score, min_prev, prod_prev, np.asarray(tokens, float) / TOKEN_SCALE,
             np.asarray(step, float) / float(horizon))]
    return np.stack(cols, axis=-1)


def seq_input(score: Any, tokens: Any, step: Any, prev_action: Any,
              horizon: int = DEFAULT_HORIZON) -> np.ndarray:
    """TRIM-Seq's per-step GRU input (last axis): score, tokens/300, t/H, previous action."""
    n = np.broadcast(score, tokens, step, prev_action).shape
    cols = [np.broadcast_to(np.asarray(v, dtype=float), n) for v in
            (score, np.asarray(tokens, float) / TOKEN_SCALE, np.asarray(step, float) /
             float(horizon), prev_action)]
    return np.stack(cols, axis=-1)


__all__ = ["DEFAULT_HORIZON", "TOKEN_SCALE", "agg_features", "book_step", "keep_score",
           "seq_input"]
