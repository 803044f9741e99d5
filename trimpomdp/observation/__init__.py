"""Class-conditional observation models P(o | c) for the TRIM POMDP (names load lazily)."""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BaseObservationModel": "trimpomdp.observation.base",
    "BinnedObservationModel": "trimpomdp.observation.binned",
    "ReflectedKDEObservationModel": "trimpomdp.observation.kde",
    "LatentClassObservationModel": "trimpomdp.observation.em",
    "bin_centres": "trimpomdp.observation.grid", "bin_index": "trimpomdp.observation.grid",
    "grid_size": "trimpomdp.observation.grid",
    "load_observation_model": "trimpomdp.observation.io",
    "observation_model_from_dict": "trimpomdp.observation.io",
    "observation_at": "trimpomdp.observation.features",
    "observation_sequence": "trimpomdp.observation.features",
}

__all__ = sorted(_LAZY)  # noqa: PLE0605 - the lazy table is the list


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trimpomdp.observation' has no attribute {name!r}")
