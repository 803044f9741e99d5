"""Step routing: immutable rules, per-problem routers, and policy specs.

A :class:`~trimpomdp.routing.spec.PolicySpec` is parsed once; its factory returns a fresh
:class:`~trimpomdp.routing.router.StepRouter` per problem. Names load lazily.
"""
from __future__ import annotations

from trimpomdp._lazy import lazy_getattr

_LAZY = {
    "StepContext": "trimpomdp.routing.types", "Decision": "trimpomdp.routing.types",
    "RoutingRule": "trimpomdp.routing.types", "BaseRule": "trimpomdp.routing.types",
    "StepRouter": "trimpomdp.routing.router", "RouterFactory": "trimpomdp.routing.router",
    "ThresholdRule": "trimpomdp.routing.threshold",
    "PomdpRule": "trimpomdp.routing.pomdp", "pomdp_factory": "trimpomdp.routing.pomdp",
    "pomdp_router": "trimpomdp.routing.pomdp",
    "AggRule": "trimpomdp.routing.learned", "SeqRule": "trimpomdp.routing.learned",
    "load_learned_rule": "trimpomdp.routing.learned",
    "WeakOnlyRule": "trimpomdp.routing.baselines", "StrongOnlyRule": "trimpomdp.routing.baselines",
    "RandomRule": "trimpomdp.routing.baselines", "QueryLevelRule": "trimpomdp.routing.baselines",
    "OracleQueryRule": "trimpomdp.routing.baselines",
    "PolicySpec": "trimpomdp.routing.spec", "make_router": "trimpomdp.routing.spec",
    "router_factory": "trimpomdp.routing.spec",
}

__all__ = sorted(_LAZY)  # noqa: PLE0605 - the lazy table is the list


__getattr__ = lazy_getattr(__name__, _LAZY)
