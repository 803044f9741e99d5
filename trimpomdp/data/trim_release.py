"""Loaders for the TRIM release's artefacts (``shared/data/trim_release``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trimpomdp._io import iter_jsonl, read_json
from trimpomdp.errors import InputError
from trimpomdp.pomdp.transition_stats import MAX_STEPS, next_step_accuracy

if TYPE_CHECKING:
    from trimpomdp.model import TrimModel


@dataclass(frozen=True, slots=True)
class StepStatistics:
    """Per-solution step statistics of one model on MATH train (release format)."""

    model: str
    correct_steps: np.ndarray
    first_error_steps: np.ndarray
    released_next_step_accuracy: float | None

    @property
    def next_step_accuracy(self) -> float:
        """Recomputed with the release's formula."""
        return next_step_accuracy(self.correct_steps, self.first_error_steps)


def read_step_statistics(path: str | os.PathLike[str]) -> StepStatistics:
    """Read ``steps_<model>_math-train.json``."""
    d = read_json(path)
    if not isinstance(d, dict):
        raise InputError(f"expected a JSON object. Got {type(d).__name__} instead.", path=path)
    try:
        return StepStatistics(model=str(d["model"]),
                              correct_steps=np.asarray(d["correct_steps"], int),
                              first_error_steps=np.asarray(d["incorrect_steps"], int),
                              released_next_step_accuracy=d.get("next_step_accuracy"))
    except KeyError as exc:
        raise InputError("missing required field", path=path, field=str(exc.args[0])) from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"step statistics must be lists of integers ({exc})", path=path,
                         field="correct_steps") from None


def read_hazard(path: str | os.PathLike[str], key: str = "slm") -> np.ndarray:
    """The released hazard h(0..30) from ``termination_math-train.json`` (``slm`` = the POMDP's)."""
    d = read_json(path)
    try:
        hz = d[key]["hazard_by_step"]
        h = np.array([float(hz[str(k)]) for k in range(MAX_STEPS + 1)])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"missing hazard entry {exc}", path=path, field=f"{key}.hazard_by_step"
                         ) from None
    if not np.all(np.isfinite(h)) or np.any((h < 0) | (h > 1)):
        raise InputError(f"hazard values must be numbers in [0, 1]. Got {h.tolist()} instead.",
                         path=path, field=f"{key}.hazard_by_step")
    return h


def read_release_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of ``thr_results_*`` / ``pomdp_results_*`` summary JSONL."""
    return [obj for _, obj in iter_jsonl(path)]


def build_release_model(release_dir: str | os.PathLike[str], *,
                        weak: str = "qwen2.5-1.5b-instruct", strong: str = "qwen2.5-7b-instruct",
                        obs: str = "math-train") -> TrimModel:
    """The release's TRIM model for a (weak, strong) pair from its artefacts folder."""
    from pathlib import Path

    from trimpomdp.model import TrimModel
    from trimpomdp.observation.binned import BinnedObservationModel

    d = Path(release_dir)
    om = BinnedObservationModel.from_release_json(d / f"obs_model_{obs}_bin0.05.json")
    pw = read_step_statistics(d / f"steps_{weak}_math-train.json").next_step_accuracy
    ps = read_step_statistics(d / f"steps_{strong}_math-train.json").next_step_accuracy
    return TrimModel(
        obs_probs=om.probs_, bin_size=om.bin_size, p_weak=pw, p_strong=ps,
        hazard=read_hazard(d / "termination_math-train.json", "slm"),
        name=f"{weak}_to_{strong}_{obs}",
        provenance={"source": "TRIM code release (github.com/Vansh28Kapoor/TRIM, commit 5ec6323,"
                              " MIT)", "weak": weak, "strong": strong,
                    "observation_model": f"obs_model_{obs}_bin0.05.json (ProcessBench, "
                                         "Qwen2.5-Math-PRM-7B)",
                    "hazard": "termination_math-train.json slm",
                    "p_weak/p_strong": "next-step accuracy, release formula on MATH train"})
