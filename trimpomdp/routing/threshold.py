"""TRIM-Thr: regenerate a step iff its PRM score is below a threshold k (= RSD's rule).

k = 0 never regenerates (weak-only), k = 1 regenerates every step with score < 1.
"""
from __future__ import annotations

from typing import Any

from trimpomdp._validate import unit_float
from trimpomdp.belief import Belief
from trimpomdp.routing.types import BaseRule, Route, StepContext
from trimpomdp.types import RouteAction


class ThresholdRule(BaseRule):
    """Regenerate iff ``score < k`` (stateless)."""

    uses_belief = False

    def __init__(self, k: float) -> None:
        self.k = unit_float(k, "k")
        self.name = f"thr:{self.k:g}"
        self._freeze()

    def route(self, ctx: StepContext, belief: Belief | None, state: Any) -> Route:
        if ctx.score < self.k:
            return RouteAction.REGENERATE, None, f"score {ctx.score:.3g} < k={self.k:g}"
        return RouteAction.CONTINUE, None, f"score {ctx.score:.3g} >= k={self.k:g}"


__all__ = ["ThresholdRule"]
