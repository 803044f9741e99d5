"""Baseline routers: weak-only, strong-only, random step routing, query-level and oracle.

Query-level routers decide once per problem (at its first drafted step) and then route every
step the same way. The oracle needs the problem's outcomes, which only a simulator knows: it
reads ``weak_correct`` / ``strong_correct`` from the ``info`` passed to ``StepRouter.reset``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trimpomdp._validate import unit_float
from trimpomdp.belief import Belief
from trimpomdp.controller import BaseRoutePolicy, StepContext
from trimpomdp.data.schema import RouteAction
from trimpomdp.errors import InputError

_C, _R = RouteAction.CONTINUE, RouteAction.REGENERATE


class WeakOnlyPolicy(BaseRoutePolicy):
    """Always continue: the weak model writes everything."""

    name = "weak"

    def route(self, ctx: StepContext, belief: Belief | None) -> tuple[RouteAction, None, str]:
        return _C, None, "weak-only"


class StrongOnlyPolicy(BaseRoutePolicy):
    """Always regenerate: the strong model writes every step."""

    name = "strong"

    def route(self, ctx: StepContext, belief: Belief | None) -> tuple[RouteAction, None, str]:
        return _R, None, "strong-only"


class RandomPolicy(BaseRoutePolicy):
    """Regenerate each step independently with probability ``p`` (match a cost by choosing p)."""

    def __init__(self, p: float, random_state: int | None = 0) -> None:
        self.p = unit_float(p, "p")
        self.random_state = random_state
        self.name = f"random:{self.p:g}"
        self._rng = np.random.default_rng(random_state)

    def start(self, info: Mapping[str, Any] | None = None) -> None:
        if info is not None and "seed" in info:  # simulator: same draws for every policy run
            self._rng = np.random.default_rng([int(info["seed"]), 7919])

    def route(self, ctx: StepContext, belief: Belief | None) -> tuple[RouteAction, None, str]:
        if self._rng.random() < self.p:
            return _R, None, f"random (p={self.p:g})"
        return _C, None, f"random (p={self.p:g})"


class QueryLevelPolicy(BaseRoutePolicy):
    """AutoMix-style query routing: if the first step's PRM score < k, the strong model writes
    the whole solution (the first draft included); otherwise the weak model does."""

    def __init__(self, k: float) -> None:
        self.k = unit_float(k, "k")
        self.name = f"query:{self.k:g}"
        self._strong = False

    def start(self, info: Mapping[str, Any] | None = None) -> None:
        self._strong = False

    def route(self, ctx: StepContext, belief: Belief | None) -> tuple[RouteAction, None, str]:
        if ctx.step == 0:
            self._strong = ctx.score < self.k
            why = f"first-step score {ctx.score:.3g} {'<' if self._strong else '>='} k={self.k:g}"
        else:
            why = "query routed to " + ("strong" if self._strong else "weak")
        return (_R if self._strong else _C), None, why


class OracleQueryPolicy(BaseRoutePolicy):
    """Oracle query routing: strong only for problems the weak model fails and the strong solves.

    Needs ``info = {"weak_correct": bool, "strong_correct": bool}`` on every ``reset``.
    """

    name = "oracle-query"

    def __init__(self) -> None:
        self._strong: bool | None = None

    def start(self, info: Mapping[str, Any] | None = None) -> None:
        if info is None or "weak_correct" not in info or "strong_correct" not in info:
            self._strong = None
        else:
            self._strong = (not info["weak_correct"]) and bool(info["strong_correct"])

    def route(self, ctx: StepContext, belief: Belief | None) -> tuple[RouteAction, None, str]:
        if self._strong is None:
            raise InputError("the oracle router needs info={'weak_correct', 'strong_correct'} "
                             "on reset (only a simulator knows the outcomes).", field="info")
        return (_R if self._strong else _C), None, "oracle query routing"
