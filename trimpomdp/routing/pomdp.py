"""TRIM-POMDP as a routing rule: the solved policy's action at (step, tokens, belief).

The solved :class:`~trimpomdp.policies.trim_policy.TrimPolicy` is shared (read-only) by every
problem; the belief is per problem and lives in the router. :func:`pomdp_factory` builds the
router factory with either runtime belief rule: ``"filter"`` (Bayes filter across steps) or
``"release"`` (the release's single-observation posterior with its closeness gate).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from trimpomdp.belief import BayesFilterUpdater, Belief, SingleObservationUpdater
from trimpomdp.errors import InputError
from trimpomdp.routing.router import RouterFactory, StepRouter
from trimpomdp.routing.types import BaseRule, Route, StepContext
from trimpomdp.types import RouteAction

BELIEF_RULES = ("filter", "release")


class PomdpRule(BaseRule):
    """Wraps a solved TRIM policy (any object with ``q_values(step, tokens, belief, final=...)``);
    ties go to continue."""

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
        self._freeze()

    def route(self, ctx: StepContext, belief: Belief | None, state: Any) -> Route:
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


def pomdp_factory(policy: Any, *, belief: str = "filter", density: Any = "continuous",
                  gate: float | None = 0.4, record: bool = True) -> RouterFactory:
    """Router factory for a solved TRIM policy; ``belief`` is ``"filter"`` or ``"release"``.

    The horizon is the policy model's ``max_steps``.
    """
    model = policy.model
    if belief == "filter":
        up: Any = BayesFilterUpdater.from_model(model, density)
        name = f"pomdp-filter:λ={policy.lam:g}"
    elif belief == "release":
        up = SingleObservationUpdater.from_model(model, density, gate)
        name = f"pomdp:λ={policy.lam:g}"
    else:
        raise InputError(f"belief must be 'filter' or 'release'. Got {belief!r} instead.",
                         field="belief")
    return RouterFactory(PomdpRule(policy, name=name), up, max_steps=int(model.max_steps),
                         record=record)


def pomdp_router(policy: Any, *, belief: str = "filter", density: Any = "continuous",
                 gate: float | None = 0.4, record: bool = True) -> StepRouter:
    """One router (one problem) for a solved TRIM policy; see :func:`pomdp_factory`."""
    return pomdp_factory(policy, belief=belief, density=density, gate=gate, record=record)()


__all__ = ["BELIEF_RULES", "PomdpRule", "pomdp_factory", "pomdp_router"]
