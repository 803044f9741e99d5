"""Record types for step traces and labelled observations.

Step-trace JSONL (one solution per line)::

    {"problem_id": "math500_000",       # str, required
     "scores": [0.99, 0.42, ...],       # PRM score of each step, each in [0, 1], required
     "tokens": [52, 61, ...],           # tokens of each step (int >= 1), optional
     "first_error": 1,                  # 0-based index of the first wrong step; null = all correct; optional
     "labels": [1, 0, ...],             # per-step correctness (1 correct / 0 wrong), optional
     "correct": false,                  # final-answer correctness, optional
     # routed traces (all optional; see below)
     "actions": ["continue", "regenerate", ...],  # the router's action at each step
     "strong_tokens": [0, 48, ...],     # tokens of the strong rewrite (0 where continued)
     "strong_scores": [null, 0.93, ...], # PRM score of the rewrite (null where continued/unscored)
     "max_steps": 30}                   # present only when the solution was cut at this step limit

Routed traces (``trimpomdp traces RUN_DIR...`` writes them from ``run`` folders): ``scores[t]``
is always the PRM score of the **weak draft** the router saw at step t and ``tokens[t]`` its
token count. ``actions[t]`` is what the router did with it (default: every step continued).
Where a step was regenerated the strong model rewrote it: ``strong_tokens[t]`` is the rewrite's
token count and ``strong_scores[t]`` its PRM score if the PRM scored it (then it, not the
discarded draft's score, enters the minimum of previous scores; an unscored rewrite counts as
1.0, as in the router). ``labels``/``first_error`` describe the weak drafts: ``labels[t] = 1``
if draft t is itself a correct step. ``max_steps`` marks a censored solution: it was cut at
that step limit (it must equal the number of steps), so its length is only known to be at least
``max_steps`` and its final answer does not count as an outcome of its last class.

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
    actions: tuple[int, ...] | None = None
    strong_tokens: tuple[int, ...] | None = None
    strong_scores: tuple[float | None, ...] | None = None
    max_steps: int | None = None
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
        for name in ("actions", "strong_tokens", "strong_scores"):
            vals = getattr(self, name)
            if vals is not None and len(vals) != n:
                raise InputError(f"{name} must have one entry per step ({n}). Got {len(vals)} "
                                 "instead.", field=name)
        acts = self.actions
        if acts is not None and any(a not in (0, 1) for a in acts):
            raise InputError("actions must be 'continue' or 'regenerate' at every step.",
                             field="actions")
        for name in ("strong_tokens", "strong_scores"):
            vals = getattr(self, name)
            if vals is None:
                continue
            if acts is None:
                raise InputError(f"{name} needs 'actions' (which steps were regenerated). Got "
                                 f"{name} without actions instead.", field=name)
            for i, (a, v) in enumerate(zip(acts, vals)):
                if a == 0 and v not in (0, None):
                    raise InputError(f"{name}[{i}] must be {'0' if name == 'strong_tokens' else 'null'}"
                                     f" where the step was continued. Got {v!r} instead.",
                                     field=name)
                if name == "strong_scores" and v is not None and not (0.0 <= v <= 1.0):
                    raise InputError(f"strong_scores[{i}] must be in [0, 1] or null. Got {v!r} "
                                     "instead.", field=name)
                if name == "strong_tokens" and v < 0:
                    raise InputError(f"strong_tokens[{i}] must be >= 0. Got {v!r} instead.",
                                     field=name)
        if self.max_steps is not None and self.max_steps != n:
            raise InputError(f"max_steps marks a solution cut at the step limit and must equal its "
                             f"number of steps ({n}). Got {self.max_steps!r} instead.",
                             field="max_steps")

    @property
    def n_steps(self) -> int:
        """Number of steps."""
        return len(self.scores)

    @property
    def n_regenerated(self) -> int:
        """Number of regenerated steps (0 for a continue-only trace)."""
        return 0 if self.actions is None else int(sum(self.actions))

    @property
    def censored(self) -> bool:
        """True if the solution was cut at the step limit (``max_steps`` given)."""
        return self.max_steps is not None

    def action_array(self) -> np.ndarray:
        """Actions as 0 (continue) / 1 (regenerate), shape (n,)."""
        if self.actions is None:
            return np.zeros(self.n_steps, dtype=np.int8)
        return np.asarray(self.actions, dtype=np.int8)

    def kept_scores(self) -> np.ndarray:
        """PRM score of the step that stayed in the solution at each t: the draft's where it was
        continued, the rewrite's where regenerated (1.0 when the rewrite was not scored)."""
        s = np.asarray(self.scores, dtype=float).copy()
        if self.actions is not None:
            for t, a in enumerate(self.actions):
                if a:
                    v = None if self.strong_scores is None else self.strong_scores[t]
                    s[t] = 1.0 if v is None else float(v)
        return s

    def observations(self) -> np.ndarray:
        """TRIM observations (n, 2): (min of the kept previous steps' scores, draft score t)."""
        kept = self.kept_scores()
        prev = np.minimum.accumulate(np.concatenate([[1.0], kept[:-1]]))
        return np.column_stack([prev, np.asarray(self.scores, dtype=float)])

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
