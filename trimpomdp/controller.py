"""The step router: PRM score of a drafted step in, continue/regenerate out, with a full trace.

Pure and synchronous (no torch, no HTTP): any generation loop calls :meth:`StepRouter.decide` once
per drafted weak step. The router keeps the min and product of the previous scores itself.

Bookkeeping of previous scores (the live loop relies on this):

* a *continued* step's score enters min/product right after ``decide``;
* a *regenerated* step's draft score is discarded (its text is gone). The strong step that replaces
  it is not scored by the release, so it enters min/product as 1.0 (neutral) — unless the loop
  passes its PRM score with :meth:`StepRouter.observe_regenerated` before the next ``decide``,
  in which case that score enters min/product instead.

>>> from trimpomdp.policies.threshold import ThresholdPolicy
>>> router = StepRouter(ThresholdPolicy(0.5))
>>> router.decide(0.9, 40, 0).action.label, router.decide(0.2, 55, 1).action.label
('continue', 'regenerate')
>>> router.min_prev, len(router.trace)
(0.9, 2)
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from trimpomdp.belief import Belief
from trimpomdp.data.schema import RouteAction
from trimpomdp.errors import InputError

MAX_STEPS = 30
_CONT, _REGEN = RouteAction.CONTINUE, RouteAction.REGENERATE


@dataclass(frozen=True, slots=True, kw_only=True)
class StepContext:
    """What a policy sees at one drafted step (``history``: (score, tokens, action) of earlier steps)."""

    step: int
    tokens: int
    score: float
    min_prev: float
    prod_prev: float
    final: bool
    history: tuple[tuple[float, int, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The router's answer for one step: action, belief (None if unused), Q-values, and why."""

    action: RouteAction
    belief: Belief | None
    q: tuple[float, float] | None
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.action, RouteAction):
            raise InputError(f"action must be a RouteAction. Got {self.action!r} instead.",
                             field="action")


@runtime_checkable
class RoutePolicy(Protocol):
    """A routing rule. ``uses_belief`` policies get the updater's belief; others get None."""

    name: str
    uses_belief: bool

    def start(self, info: Mapping[str, Any] | None = None) -> None:
        """A new problem begins (``info`` may carry simulator-only facts for oracles)."""

    def route(self, ctx: StepContext, belief: Belief | None
              ) -> tuple[RouteAction, tuple[float, float] | None, str]:
        """Action, optional (Q_continue, Q_regenerate), and a short reason."""


class BaseRoutePolicy:
    """Convenience base: history-free policies override :meth:`route` only."""

    name = "policy"
    uses_belief = False

    def start(self, info: Mapping[str, Any] | None = None) -> None:
        """Nothing to reset by default."""

    def route(self, ctx: StepContext, belief: Belief | None
              ) -> tuple[RouteAction, tuple[float, float] | None, str]:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class StepRouter:
    """Routes each drafted step with a :class:`RoutePolicy` and, for belief policies, an updater.

    Parameters
    ----------
    policy : RoutePolicy
        The rule (threshold, POMDP, learned, baseline).
    updater : BayesFilterUpdater or SingleObservationUpdater, optional
        Belief tracker for policies with ``uses_belief``; an updater with a ``consult`` gate
        (the release's rule) makes the router continue without asking the policy when closed.
    max_steps : int
        Horizon: steps 0 .. max_steps - 1 are valid.
    record : bool
        Keep the per-step trace (``trace``); off saves ~1 µs per step in simulation.

    Raises
    ------
    InputError
        From :meth:`decide` for a NaN or out-of-[0, 1] score, tokens <= 0, or a step that is
        negative, beyond the horizon or out of order (decide is called once per step, in order).
    """

    def __init__(self, policy: RoutePolicy, updater: Any = None, *, max_steps: int = MAX_STEPS,
                 record: bool = True) -> None:
        if policy.uses_belief and updater is None:
            raise InputError(f"policy '{policy.name}' needs a belief updater. Got None instead.",
                             field="updater")
        self.policy = policy
        self.updater = updater if policy.uses_belief else None
        self._gate = getattr(self.updater, "consult", None)
        self.max_steps = int(max_steps)
        self.record = record
        self.reset()

    def reset(self, info: Mapping[str, Any] | None = None) -> None:
        """Start a new problem (``info``: simulator facts for oracle baselines only)."""
        self.step = 0
        self.min_prev = 1.0
        self.prod_prev = 1.0
        self.belief: Belief | None = None
        self.last_action: RouteAction | None = None
        self.history: list[tuple[float, int, int]] = []
        self._trace: list[dict[str, Any]] = []
        self._can_observe = False
        self.policy.start(info)

    @property
    def trace(self) -> list[dict[str, Any]]:
        """Per-step records of this problem (JSON-serialisable dicts)."""
        return self._trace

    def _check(self, score: Any, tokens: Any, step: Any) -> tuple[float, int, int]:
        if isinstance(score, bool) or not isinstance(score, (int, float)) and not hasattr(
                score, "__float__"):
            raise InputError(f"score must be a number in [0, 1]. Got {score!r} instead.",
                             field="score")
        s = float(score)
        if not (0.0 <= s <= 1.0):
            raise InputError(f"score must be a number in [0, 1]. Got {score!r} instead.",
                             field="score")
        try:
            n = int(tokens)
            bad = isinstance(tokens, bool) or n != tokens or n <= 0
        except (TypeError, ValueError, OverflowError):
            bad = True
        if bad:
            raise InputError(f"tokens must be an integer >= 1. Got {tokens!r} instead.",
                             field="tokens")
        if isinstance(step, bool) or not isinstance(step, int) and not hasattr(step, "__index__"):
            raise InputError(f"step must be an integer. Got {step!r} instead.", field="step")
        t = int(step)
        if not (0 <= t < self.max_steps):
            raise InputError(f"step must be in [0, {self.max_steps - 1}] (the horizon). Got "
                             f"{step!r} instead.", field="step")
        if t != self.step:
            raise InputError(f"step must be {self.step} (decide is called once per drafted step, "
                             f"in order; call reset() for a new problem). Got {step!r} instead.",
                             field="step")
        return s, n, t

    def decide(self, score: float, tokens: int, step: int, final: bool = False) -> Decision:
        """Route drafted step ``step`` (0-based) with PRM ``score`` and ``tokens`` tokens.

        ``final`` marks the solution's last step (it holds the answer). Raises InputError on bad
        input (see the class docstring).
        """
        s, n, t = self._check(score, tokens, step)
        belief = None
        if self.updater is not None:
            belief = self.updater.update(self.belief, self.last_action, (self.min_prev, s))
            self.belief = belief
        ctx = StepContext(step=t, tokens=n, score=s, min_prev=self.min_prev,
                          prod_prev=self.prod_prev, final=bool(final),
                          history=tuple(self.history))
        if self._gate is not None and not self._gate(belief):
            action, q, reason = _CONT, None, "gate: P(S2) not within the closeness gate"
        else:
            action, q, reason = self.policy.route(ctx, belief)
        if belief is not None and belief.fallback:
            reason += " [zero evidence: belief kept the prediction]"
        if self.record:
            self._trace.append({
                "step": t, "score": s, "tokens": n, "final": bool(final),
                "min_prev": self.min_prev, "prod_prev": self.prod_prev,
                "action": action.label, "belief": None if belief is None else belief.to_list(),
                "belief_fallback": bool(belief is not None and belief.fallback),
                "q": None if q is None else [float(q[0]), float(q[1])], "reason": reason})
        if action is _CONT:
            self.min_prev = min(self.min_prev, s)
            self.prod_prev *= s
        self.history.append((s, n, int(action)))
        self.last_action = action
        self._can_observe = action is _REGEN
        self.step = t + 1
        return Decision(action=action, belief=belief, q=q, reason=reason)

    def observe_regenerated(self, score: float) -> None:
        """PRM score of the strong step that replaced the last regenerated draft (optional).

        Call at most once, after a ``regenerate`` decision and before the next ``decide``; the
        score then enters the min/product of previous scores (otherwise the step counts as 1.0).
        """
        if not self._can_observe:
            raise InputError("observe_regenerated must follow a 'regenerate' decision (once, "
                             "before the next decide).", field="score")
        if isinstance(score, bool) or not (isinstance(score, (int, float)) and
                                           0.0 <= float(score) <= 1.0):
            raise InputError(f"score must be a number in [0, 1]. Got {score!r} instead.",
                             field="score")
        s = float(score)
        self.min_prev = min(self.min_prev, s)
        self.prod_prev *= s
        self._can_observe = False
        if self.record:
            self._trace.append({"event": "observe_regenerated", "step": self.step - 1,
                                "score": s})

    def summary(self) -> dict[str, Any]:
        """Counts of this problem's decisions (for logs)."""
        n_regen = sum(1 for h in self.history if h[2] == int(_REGEN))
        return {"policy": self.policy.name, "steps": len(self.history), "regenerated": n_regen,
                "fallbacks": sum(1 for r in self._trace if r.get("belief_fallback")),
                "min_prev": self.min_prev if math.isfinite(self.min_prev) else None}


__all__ = ["BaseRoutePolicy", "Decision", "RoutePolicy", "StepContext", "StepRouter"]
