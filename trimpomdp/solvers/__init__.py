"""Solvers: generic discrete POMDPs (SARSOP-style, PBVI/Perseus, QMDP/FIB, pomdpsol) and TRIM's.

Names load lazily so that importing one solver never imports the others. :data:`REGISTRY`
maps the names ``solve-pomdp --solver`` takes to solver classes; :func:`make_solver` builds one
from the command line's common options.
"""
from __future__ import annotations

import importlib
from typing import Any

from trimpomdp.errors import InputError

_LAZY = {
    "SARSOPSolver": "trimpomdp.solvers.sarsop",
    "PointBasedSolver": "trimpomdp.solvers.point_based",
    "QMDPSolver": "trimpomdp.solvers.bounds",
    "FIBSolver": "trimpomdp.solvers.bounds",
    "PomdpsolSolver": "trimpomdp.solvers.pomdpsol",
    "SolveInfo": "trimpomdp.solvers.info",
    "evaluate_policy": "trimpomdp.solvers.evaluate",
}

#: generic-POMDP solvers by name: (class name in :data:`_LAZY`, fixed keyword arguments).
REGISTRY: dict[str, tuple[str, dict[str, Any]]] = {
    "sarsop": ("SARSOPSolver", {}),
    "pbvi": ("PointBasedSolver", {"method": "pbvi"}),
    "perseus": ("PointBasedSolver", {"method": "perseus"}),
    "qmdp": ("QMDPSolver", {}),
    "fib": ("FIBSolver", {}),
    "pomdpsol": ("PomdpsolSolver", {}),
}

__all__ = ["REGISTRY", "FIBSolver", "PointBasedSolver", "PomdpsolSolver", "QMDPSolver",
           "SARSOPSolver", "SolveInfo", "evaluate_policy", "make_solver"]


def make_solver(name: str, *, timeout: float = 60.0, precision: float = 1e-3,
                progress: Any = None) -> Any:
    """A solver from :data:`REGISTRY` with a CPU ``timeout``, a target ``precision`` (where the
    solver has one) and a ``progress`` callback (SARSOP only)."""
    if name not in REGISTRY:
        raise InputError(f"solver must be one of {sorted(REGISTRY)}. Got {name!r} instead.",
                         field="solver")
    cls_name, fixed = REGISTRY[name]
    cls = __getattr__(cls_name)
    kw: dict[str, Any] = dict(fixed)
    if cls_name in ("QMDPSolver", "FIBSolver"):
        kw["max_seconds"] = timeout
    else:
        kw["timeout"] = timeout
    if cls_name in ("SARSOPSolver", "PomdpsolSolver"):
        kw["precision"] = precision
    if cls_name == "SARSOPSolver":
        kw["progress"] = progress
    return cls(**kw)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trimpomdp.solvers' has no attribute {name!r}")
