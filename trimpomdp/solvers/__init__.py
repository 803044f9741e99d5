"""Solvers: generic discrete POMDPs (SARSOP-style, PBVI/Perseus, QMDP/FIB) and the TRIM solver.

Names load lazily so that importing one solver never imports the others.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SARSOPSolver": "trimpomdp.solvers.sarsop",
    "PointBasedSolver": "trimpomdp.solvers.point_based",
    "QMDPSolver": "trimpomdp.solvers.bounds",
    "FIBSolver": "trimpomdp.solvers.bounds",
    "SolveInfo": "trimpomdp.solvers.info",
    "evaluate_policy": "trimpomdp.solvers.evaluate",
}

__all__ = ["FIBSolver", "PointBasedSolver", "QMDPSolver", "SARSOPSolver", "SolveInfo",
           "evaluate_policy"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trimpomdp.solvers' has no attribute {name!r}")
