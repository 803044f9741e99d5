"""The step router: PRM score of a drafted step in, continue/regenerate out, with a full trace.

One :class:`StepRouter` routes **one problem at a time** and owns everything that changes while
it is solved (belief, min/product of previous scores, the rule's state). It is cheap to create;
a :class:`RouterFactory` holds the immutable, shared parts (rule, updater, horizon) and returns a
fresh router per problem, so concurrent problems never share state. Pure and synchronous (no
torch, no HTTP): any generation loop calls :meth:`StepRouter.decide` once per drafted weak step.

Bookkeeping of previous scores (:mod:`trimpomdp.routing.features`): a *continued* step's score
enters min/product right after ``decide``; a *regenerated* draft's score is discarded and the
strong step counts as 1.0 — unless the loop passes its PRM score with
:meth:`StepRouter.observe_regenerated` before the next ``decide``.

>>> from trimpomdp.routing.threshold import ThresholdRule
>>> router = StepRouter(ThresholdRule(0.5))
>>> router.decide(0.9, 40, 0).action.label, router.decide(0.2, 55, 1).action.label
('continue', 'regenerate')
>>> router.min_prev, len(router.trace)
(0.9, 2)
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trimpomdp.belief import Belief
from trimpomdp.errors import InputError
from trimpomdp.routing.features import DEFAULT_HORIZON, book_step
from trimpomdp.routing.types import Decision, RoutingRule, StepContext
from trimpomdp.types import RouteAction

_CONT, _REGEN = RouteAction.CONTINUE, RouteAction.REGENERATE


def _check_horizon(max_steps: Any) -> int:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InputError(f"max_steps must be an integer >= 1. Got {max_steps!r} instead.",
                         field="max_steps")
    return int(max_steps)


class StepRouter:
    """Routes the drafted steps of one problem with a rule and, for belief rules, an updater.

    Parameters
    ----------
    rule : RoutingRule
        The immutable rule (threshold, POMDP, learned, baseline).
    updater : BayesFilterUpdater or SingleObservationUpdater, optional
        Belief tracker for rules with ``uses_belief``; an updater with a ``consult`` gate
        (the release's rule) makes the router continue without asking the rule when closed.
    max_steps : int
        Horizon: steps 0 .. max_steps - 1 are valid (the model's ``max_steps``).
    record : bool
        Keep the per-step trace (``trace``); off saves ~1 µs per step in simulation.
    info : mapping, optional
        Facts about the problem for the rule's state (``key`` for per-problem random streams;
        ``weak_correct`` / ``strong_correct`` for simulator-only oracles).

    Raises
    ------
    InputError
        From :meth:`decide` for a NaN or out-of-[0, 1] score, tokens <= 0, or a step that is
        negative, beyond the horizon or out of order (decide is called once per step, in order).
    """

    def __init__(self, rule: RoutingRule, updater: Any = None, *,
                 max_steps: int = DEFAULT_HORIZON, record: bool = True,
                 info: Mapping[str, Any] | None = None) -> None:
        if rule.uses_belief and updater is None:
            raise InputError(f"rule '{rule.name}' needs a belief updater. Got None instead.",
                             field="updater")
        self.rule = rule
        self.updater = updater if rule.uses_belief else None
        self._gate = getattr(self.updater, "consult", None)
        self.max_steps = _check_horizon(max_steps)
        self.record = record
        self.reset(info)

    @property
    def name(self) -> str:
        """The rule's name."""
        return str(self.rule.name)

    def reset(self, info: Mapping[str, Any] | None = None) -> None:
        """Start a new problem with a fresh rule state (``info``: see the class docstring)."""
        self.step = 0
        self.min_prev = 1.0
        self.prod_prev = 1.0
        self.belief: Belief | None = None
        self.last_action: RouteAction | None = None
        self.history: list[tuple[float, int, int]] = []
        self._trace: list[dict[str, Any]] = []
        self._can_observe = False
        self.state = self.rule.new_state(info)

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
                          history=tuple(self.history), horizon=self.max_steps)
        if self._gate is not None and not self._gate(belief):
            action, q, reason = _CONT, None, "gate: P(S2) not within the closeness gate"
        else:
            action, q, reason = self.rule.route(ctx, belief, self.state)
        if belief is not None and belief.fallback:
            reason += " [zero evidence: belief kept the prediction]"
        if self.record:
            self._trace.append({
                "step": t, "score": s, "tokens": n, "final": bool(final),
                "min_prev": self.min_prev, "prod_prev": self.prod_prev,
                "action": action.label, "belief": None if belief is None else belief.to_list(),
                "belief_fallback": bool(belief is not None and belief.fallback),
                "q": None if q is None else [float(q[0]), float(q[1])], "reason": reason})
        self.min_prev, self.prod_prev = book_step(self.min_prev, self.prod_prev, s,
                                                  action is _REGEN)
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
        self.min_prev, self.prod_prev = book_step(self.min_prev, self.prod_prev, s, False)
        self._can_observe = False
        if self.record:
            self._trace.append({"event": "observe_regenerated", "step": self.step - 1,
                                "score": s})

    def summary(self) -> dict[str, Any]:
        """Counts of this problem's decisions (for logs)."""
        n_regen = sum(1 for h in self.history if h[2] == int(_REGEN))
        return {"policy": self.rule.name, "steps": len(self.history), "regenerated": n_regen,
                "fallbacks": sum(1 for r in self._trace if r.get("belief_fallback")),
                "min_prev": self.min_prev if math.isfinite(self.min_prev) else None}


@dataclass(frozen=True, slots=True)
class RouterFactory:
    """The shared, immutable parts of a router; calling it gives a fresh per-problem router.

    >>> from trimpomdp.routing.threshold import ThresholdRule
    >>> make = RouterFactory(ThresholdRule(0.5))
    >>> make() is not make()
    True
    """

    rule: RoutingRule
    updater: Any = None
    max_steps: int = DEFAULT_HORIZON
    record: bool = True

    def __post_init__(self) -> None:
        _check_horizon(self.max_steps)
        if self.rule.uses_belief and self.updater is None:
            raise InputError(f"rule '{self.rule.name}' needs a belief updater. Got None instead.",
                             field="updater")

    @property
    def name(self) -> str:
        """The rule's name."""
        return str(self.rule.name)

    def __call__(self, info: Mapping[str, Any] | None = None) -> StepRouter:
        """A new router for one problem (``info``: see :class:`StepRouter`)."""
        return StepRouter(self.rule, self.updater, max_steps=self.max_steps, record=self.record,
                          info=info)


__all__ = ["RouterFactory", "StepRouter"]
