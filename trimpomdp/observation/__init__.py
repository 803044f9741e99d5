"""Class-conditional observation models P(o | c) for the TRIM POMDP."""
from trimpomdp.observation.base import BaseObservationModel
from trimpomdp.observation.binned import (
    BinnedObservationModel,
    bin_centres,
    bin_index,
    load_observation_model,
)
from trimpomdp.observation.features import observation_at, observation_sequence
from trimpomdp.observation.em import LatentClassObservationModel
from trimpomdp.observation.kde import ReflectedKDEObservationModel

__all__ = ["BaseObservationModel", "BinnedObservationModel", "LatentClassObservationModel",
           "ReflectedKDEObservationModel",
           "bin_centres", "bin_index", "load_observation_model", "observation_at",
           "observation_sequence"]
