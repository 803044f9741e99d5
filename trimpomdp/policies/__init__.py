"""POMDP policies: the exact TRIM policy, alpha-vector policies and policy sets (by λ).

Routing rules (threshold, POMDP adapter, learned, baselines) live in :mod:`trimpomdp.routing`.
Names load lazily.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TrimPolicy": "trimpomdp.policies.trim_policy",
    "AlphaVectorPolicy": "trimpomdp.policies.alpha_vector",
    "PolicySet": "trimpomdp.policies.policy_set",
}

__all__ = sorted(_LAZY)  # noqa: PLE0605 - the lazy table is the list


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trimpomdp.policies' has no attribute {name!r}")
