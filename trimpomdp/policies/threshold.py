"""TRIM-Thr: regenerate a step iff its PRM score is below a threshold k (= RSD's rule).

k = 0 never regenerates (weak-only), k = 1 regenerates every step with score < 1.
"""
from __future__ import annotations

from trimpomdp._validate import unit_float
from trimpomdp.belief import Belief
from trimpomdp.controller import BaseRoutePolicy, StepContext
from trimpomdp.data.schema import RouteAction


class ThresholdPolicy(BaseRoutePolicy):
    """Regenerate iff ``score < k``."""

    uses_belief = False

    def __init__(self, k: float) -> None:
        self.k = unit_float(k, "k")
        self.name = f"thr:{self.k:g}"

    def route(self, ctx: StepContext, belief: Belief | None
              ) -> tuple[RouteAction, None, str]:
        if ctx.score < self.k:
            return RouteAction.REGENERATE, None, f"score {ctx.score:.3g} < k={self.k:g}"
        return RouteAction.CONTINUE, None, f"score {ctx.score:.3g} >= k={self.k:g}"
