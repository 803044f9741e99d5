"""trimpomdp: POMDP planning for step-level hybrid LLM inference (TRIM).

Public names load lazily (a module ``__getattr__``), so ``import trimpomdp`` and ``trimpomdp
--version`` import nothing heavy; torch and HTTP clients are never imported here.
"""
from __future__ import annotations

from trimpomdp._lazy import lazy_getattr
from trimpomdp._version import __version__

_LAZY = {
    "BackendError": "trimpomdp.errors", "InputError": "trimpomdp.errors",
    "NotFittedError": "trimpomdp.errors", "SolverError": "trimpomdp.errors",
    "TrimpomdpError": "trimpomdp.errors",
    "Correctness": "trimpomdp.types", "RouteAction": "trimpomdp.types",
    "StepTrace": "trimpomdp.data.schema",
    "TrimModel": "trimpomdp.model", "load_model": "trimpomdp.model",
}

__all__ = ["__version__", *sorted(_LAZY)]  # noqa: PLE0604 - the lazy table is the list


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return __all__
