"""Loaders for the TRIM release's artefacts (``shared/data/trim_release``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from trimpomdp._io import iter_jsonl, read_json
from trimpomdp.errors import InputError
from trimpomdp.pomdp.transition_stats import MAX_STEPS, next_step_accuracy


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
