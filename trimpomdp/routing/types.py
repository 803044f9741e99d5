"""Values and the rule protocol of step routing: what a rule sees, what it answers.

A routing *rule* is immutable (its parameters and shared heavy parts: a solved policy, network
weights). Whatever changes while one problem is solved lives in a per-problem *state* that the
rule creates with :meth:`RoutingRule.new_state` and that the router threads through
:meth:`RoutingRule.route`. Two problems never share a state, so concurrent problems cannot
disturb each other.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from trimpomdp.belief import Belief
from trimpomdp.errors import InputError
from trimpomdp.types import RouteAction

#: (action, optional (Q_continue, Q_regenerate) or logits, short reason)
Route = tuple[RouteAction, "tuple[float, float] | None", str]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepContext:
    """What a rule sees at one drafted step (``history``: (score, tokens, action) of earlier steps).

    ``horizon`` is the model's number of steps (``max_steps``); learned features scale by it.
    """

    step: int
    tokens: int
    score: float
    min_prev: float
    prod_prev: float
    final: bool
    history: tuple[tuple[float, int, int], ...] = ()
    horizon: int = 30


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
class RoutingRule(Protocol):
    """An immutable routing rule; ``uses_belief`` rules get the updater's belief, others None."""

    name: str
    uses_belief: bool

    def new_state(self, info: Mapping[str, Any] | None = None) -> Any:
        """Fresh per-problem state (``info``: problem key / simulator-only facts)."""

    def route(self, ctx: StepContext, belief: Belief | None, state: Any) -> Route:
        """Action, optional (Q_continue, Q_regenerate), and a short reason; may update ``state``."""


class BaseRule:
    """Convenience base: stateless rules override :meth:`route` only."""

    name = "rule"
    uses_belief = False

    def new_state(self, info: Mapping[str, Any] | None = None) -> Any:
        """Stateless by default."""
        return None

    def route(self, ctx: StepContext, belief: Belief | None, state: Any
              ) -> Route:  # pragma: no cover - abstract
        raise NotImplementedError

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable (per-problem state belongs "
                                 "in new_state()).")
        object.__setattr__(self, name, value)

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


__all__ = ["BaseRule", "Decision", "Route", "RoutingRule", "StepContext"]
