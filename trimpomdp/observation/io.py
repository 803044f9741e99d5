"""Saving and loading observation models: one registry from a file's ``method`` to its class.

Estimators register themselves (``class X(BaseObservationModel, method="name")``); this module
imports every bundled estimator so that each is known when a file is read.
"""
from __future__ import annotations

import os
from typing import Any

from trimpomdp._io import check_envelope, read_json
from trimpomdp.errors import InputError
from trimpomdp.observation.base import REGISTRY, BaseObservationModel
from trimpomdp.observation.binned import BinnedObservationModel
from trimpomdp.observation.kde import ReflectedKDEObservationModel

#: the estimators a file can name (binned files are also written by the EM model)
METHODS = {"binned": BinnedObservationModel, "kde": ReflectedKDEObservationModel}


def load_observation_model(path: str | os.PathLike[str]) -> BaseObservationModel:
    """Load a model saved by ``save`` (binned or KDE) or a release observation JSON."""
    doc = read_json(path)
    if isinstance(doc, dict) and "states" in doc and "kind" not in doc:
        return BinnedObservationModel.from_release_json(path)
    return observation_model_from_dict(doc, path)


def observation_model_from_dict(doc: Any, path: str | os.PathLike[str] = "<model>"
                                ) -> BaseObservationModel:
    """Rebuild a model from its ``to_dict`` output; errors name the file and field."""
    doc = check_envelope(doc, "observation_model", path)
    method = doc.get("method")
    cls = REGISTRY.get(method) if isinstance(method, str) else None
    if cls is None:
        raise InputError(f"method must be one of {', '.join(sorted(REGISTRY))}. Got {method!r} "
                         "instead.", path=path, field="method")
    try:
        return cls._from_dict(doc, path)  # type: ignore[attr-defined, no-any-return]
    except KeyError as exc:
        raise InputError("missing required field", path=path, field=str(exc.args[0])) from None


__all__ = ["METHODS", "load_observation_model", "observation_model_from_dict"]
