"""Routing policies behind one interface (:class:`trimpomdp.controller.RoutePolicy`).

Light imports only: the torch-based TRIM-Agg / TRIM-Seq live in ``policies.learned`` and load
torch lazily. Build any policy from a spec string with :func:`trimpomdp.policies.spec.make_router`.
"""
from trimpomdp.policies.baselines import (
                                          OracleQueryPolicy,
                                          QueryLevelPolicy,
                                          RandomPolicy,
                                          StrongOnlyPolicy,
                                          WeakOnlyPolicy,
)
from trimpomdp.policies.pomdp_route import PomdpRoutePolicy
from trimpomdp.policies.threshold import ThresholdPolicy

__all__ = ["OracleQueryPolicy", "PomdpRoutePolicy", "QueryLevelPolicy", "RandomPolicy",
           "StrongOnlyPolicy", "ThresholdPolicy", "WeakOnlyPolicy"]

# generic discrete POMDPs (issue 8)
from trimpomdp.policies.alpha_vector import AlphaVectorPolicy

__all__ += ["AlphaVectorPolicy"]
