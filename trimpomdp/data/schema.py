"""Record types for step traces and labelled observations.

Step-trace JSONL (one solution per line)::

    {"problem_id": "math500_000",       # str, required
     "scores": [0.99, 0.42, ...],       # PRM score of each step, each in [0, 1], required
     "tokens": [52, 61, ...],           # tokens of each step (int >= 1), optional
     "first_error": 1,                  # 0-based index of the first wrong step; null = all correct; optional
     "labels": [1, 0, ...],             # per-step correctness (1 correct / 0 wrong), optional
     "correct": false}                  # final-answer correctness, optional

Labelled-observation JSONL (one observation per line)::

    {"min_prev": 0.97, "current": 0.42, "state": "S2"}   # state in {S0, S1, S2}

``min_prev`` is the minimum PRM score of the steps before this one (1.0 at the first step) and
``current`` the score of this step: the TRIM observation (see :mod:`trimpomdp.observation.features`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trimpomdp.errors import InputError
from trimpomdp.types import (  # noqa: F401 - re-exported; their one home is trimpomdp.types
    STATE_NAMES,
    Correctness,
    RouteAction,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTrace:
    """One solution: its per-step PRM scores and, where known, tokens and correctness."""

    problem_id: str
    scores: tuple[float, ...]
    tokens: tuple[int, ...] | None = None
    first_error: int | None = None
    labels: tuple[int, ...] | None = None
    correct: bool | None = None
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.scores)
        if n == 0:
            raise InputError("scores must hold at least one step. Got an empty list instead.",
                             field="scores")
        for i, s in enumerate(self.scores):
            if not (0.0 <= s <= 1.0):
                raise InputError(f"scores[{i}] must be in [0, 1]. Got {s!r} instead.",
                                 field="scores")
        if self.tokens is not None and len(self.tokens) != n:
            raise InputError(f"tokens must have one entry per step ({n}). Got "
                             f"{len(self.tokens)} instead.", field="tokens")
        if self.labels is not None and len(self.labels) != n:
            raise InputError(f"labels must have one entry per step ({n}). Got "
                             f"{len(self.labels)} instead.", field="labels")
        if self.first_error is not None and not (0 <= self.first_error < n):
            raise InputError(f"first_error must be a step index in [0, {n - 1}] or null. Got "
                             f"{self.first_error!r} instead.", field="first_error")

    @property
    def n_steps(self) -> int:
        """Number of steps."""
        return len(self.scores)

    @property
    def error_index(self) -> int | None:
        """First wrong step from ``first_error`` or ``labels``; None if all correct or unknown."""
        if self.first_error is not None:
            return self.first_error
        if self.labels is not None:
            wrong = [i for i, lab in enumerate(self.labels) if not lab]
            return wrong[0] if wrong else None
        return None

    @property
    def has_step_labels(self) -> bool:
        """True if step-level correctness is known (labels, first_error, or a correct answer)."""
        return self.labels is not None or self.first_error is not None or self.correct is True


@dataclass(frozen=True, slots=True)
class LabelledObservations:
    """Arrays of TRIM observations ``X`` (n, 2) = (min_prev, current) and classes ``y`` (n,)."""

    X: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.X.shape[1] != 2 or self.y.shape != (self.X.shape[0],):
            raise InputError(f"X must have shape (n, 2) and y shape (n,). Got {self.X.shape} and "
                             f"{self.y.shape} instead.")

    def __len__(self) -> int:
        return int(self.X.shape[0])
