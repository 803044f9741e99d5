"""TRIM-POMDP as a routing policy: the solved policy's action at (step, tokens, belief)."""
from __future__ import annotations

from typing import Any

import numpy as np

from trimpomdp.belief import Belief
from trimpomdp.controller import BaseRoutePolicy, StepContext
from trimpomdp.data.schema import RouteAction
from trimpomdp.errors import InputError


class PomdpRoutePolicy(BaseRoutePolicy):
    """Wraps a solved :class:`~trimpomdp.policies.trim_policy.TrimPolicy` (any object with
    ``q_values(step, tokens, belief, final=...)``); ties go to continue."""

    uses_belief = True

    def __init__(self, policy: Any, name: str | None = None) -> None:
        if not hasattr(policy, "q_values"):
            raise InputError(f"policy must have q_values(step, tokens, belief, final). Got "
                             f"{type(policy).__name__} instead.", field="policy")
        self.policy = policy
        lam = getattr(policy, "lam", None)
        self.name = name or (f"pomdp:λ={lam:g}" if lam is not None else "pomdp")
        fast = getattr(policy, "q_values_unchecked", None)  # the router validated already
        self._q = fast if callable(fast) else None

    def route(self, ctx: StepContext, belief: Belief | None
              ) -> tuple[RouteAction, tuple[float, float], str]:
        if belief is None:
            raise InputError("the POMDP policy needs a belief. Got None instead.", field="belief")
        b = np.array(belief.probs)
        if self._q is not None:
            q = self._q(ctx.step, float(ctx.tokens), b, ctx.final)
        else:
            q = self.policy.q_values(ctx.step, ctx.tokens, b, final=ctx.final)
        qc, qr = float(q[0]), float(q[1])
        act = RouteAction.REGENERATE if qr > qc else RouteAction.CONTINUE
        return act, (qc, qr), f"pomdp Q=({qc:.4g}, {qr:.4g})"
