"""POMDP policies: the exact TRIM policy, alpha-vector policies and policy sets (by λ).

Routing rules (threshold, POMDP adapter, learned, baselines) live in :mod:`trimpomdp.routing`.
Names load lazily.
"""
from __future__ import annotations

from trimpomdp._lazy import lazy_getattr

_LAZY = {
    "TrimPolicy": "trimpomdp.policies.trim_policy",
    "AlphaVectorPolicy": "trimpomdp.policies.alpha_vector",
    "PolicySet": "trimpomdp.policies.policy_set",
}

__all__ = sorted(_LAZY)  # noqa: PLE0605 - the lazy table is the list


__getattr__ = lazy_getattr(__name__, _LAZY)
