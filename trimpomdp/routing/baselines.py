"""Baseline rules: weak-only, strong-only, random step routing, query-level and oracle.

Query-level rules decide once per problem (at its first drafted step) and then route every step
the same way; that decision lives in the problem's state. The random rule draws from a stream of
its own per problem, keyed by the problem (``info["key"]`` or the simulator's ``info["seed"]``),
so a problem gets the same draws whether it runs alone or among others. The oracle needs the
problem's outcomes, which only a simulator knows (``info["weak_correct"]``, ``strong_correct``).
"""
from __future__ import annotations

import itertools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trimpomdp._validate import unit_float
from trimpomdp.belief import Belief
from trimpomdp.errors import InputError
from trimpomdp.routing.types import BaseRule, Route, StepContext
from trimpomdp.types import RouteAction

_C, _R = RouteAction.CONTINUE, RouteAction.REGENERATE


class WeakOnlyRule(BaseRule):
    """Always continue: the weak model writes everything."""

    name = "weak"

    def route(self, ctx: StepContext, belief: Belief | None, state: Any) -> Route:
        return _C, None, "weak-only"


class StrongOnlyRule(BaseRule):
    """Always regenerate: the strong model writes every step."""

    name = "strong"

    def route(self, ctx: StepContext, belief: Belief | None, state: Any) -> Route:
        return _R, None, "strong-only"


def problem_seed(info: Mapping[str, Any] | None) -> int | None:
    """A stable integer for the problem in ``info`` (its ``seed``, else a CRC of its ``key``)."""
    if not info:
        return None
    if "seed" in info:
        return int(info["seed"])
    if "key" in info:
        return zlib.crc32(str(info["key"]).encode("utf-8"))
    return None


class RandomRule(BaseRule):
    """Regenerate each step independently with probability ``p`` (match a cost by choosing p).

    ``explore=True`` marks the draws as exploration for data collection (the reason says so).
    """

    def __init__(self, p: float, random_state: int | None = 0, *, explore: bool = False) -> None:
        self.p = unit_float(p, "p")
        self.random_state = 0 if random_state is None else int(random_state)
        self.explore = bool(explore)
        self.name = f"{'explore' if explore else 'random'}:{self.p:g}"
        self._counter = itertools.count()  # problems without a key get successive streams
        self._freeze()

    def new_state(self, info: Mapping[str, Any] | None = None) -> np.random.Generator:
        if info and "seed" in info:  # simulator: the same draws for every rule run on a problem
            return np.random.default_rng([int(info["seed"]), 7919])
        key = problem_seed(info)
        if key is None:
            key = 2**32 + next(self._counter)
        return np.random.default_rng([key, self.random_state, 7919])

    def route(self, ctx: StepContext, belief: Belief | None, state: np.random.Generator) -> Route:
        why = f"{'exploration' if self.explore else 'random'} (p={self.p:g})"
        return (_R if state.random() < self.p else _C), None, why


@dataclass(slots=True)
class _QueryState:
    strong: bool = False


class QueryLevelRule(BaseRule):
    """AutoMix-style query routing: if the first step's PRM score < k, the strong model writes
    the whole solution (the first draft included); otherwise the weak model does."""

    def __init__(self, k: float) -> None:
        self.k = unit_float(k, "k")
        self.name = f"query:{self.k:g}"
        self._freeze()

    def new_state(self, info: Mapping[str, Any] | None = None) -> _QueryState:
        return _QueryState()

    def route(self, ctx: StepContext, belief: Belief | None, state: _QueryState) -> Route:
        if ctx.step == 0:
            state.strong = ctx.score < self.k
            why = f"first-step score {ctx.score:.3g} {'<' if state.strong else '>='} k={self.k:g}"
        else:
            why = "query routed to " + ("strong" if state.strong else "weak")
        return (_R if state.strong else _C), None, why


class OracleQueryRule(BaseRule):
    """Oracle query routing: strong only for problems the weak model fails and the strong solves.

    Simulator-only: needs ``info = {"weak_correct": bool, "strong_correct": bool}`` per problem.
    """

    name = "oracle-query"
    simulator_only = True

    def new_state(self, info: Mapping[str, Any] | None = None) -> bool | None:
        if info is None or "weak_correct" not in info or "strong_correct" not in info:
            return None
        return (not info["weak_correct"]) and bool(info["strong_correct"])

    def route(self, ctx: StepContext, belief: Belief | None, state: bool | None) -> Route:
        if state is None:
            raise InputError("the oracle router needs info={'weak_correct', 'strong_correct'} "
                             "for each problem (only a simulator knows the outcomes).",
                             field="info")
        return (_R if state else _C), None, "oracle query routing"


__all__ = ["OracleQueryRule", "QueryLevelRule", "RandomRule", "StrongOnlyRule", "WeakOnlyRule",
           "problem_seed"]
