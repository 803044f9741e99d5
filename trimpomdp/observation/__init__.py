"""Class-conditional observation models P(o | c) for the TRIM POMDP (names load lazily)."""
from __future__ import annotations

from trimpomdp._lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _LAZY)
