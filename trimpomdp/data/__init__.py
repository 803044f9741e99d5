"""Data layer: step traces, labelled observations and loaders for the research datasets.

Names load lazily.
"""
from __future__ import annotations

from trimpomdp._lazy import lazy_getattr

_LAZY = {
    "every_prefix": "trimpomdp.data.labels", "release_prefixes": "trimpomdp.data.labels",
    "Problem": "trimpomdp.data.problems", "read_problems": "trimpomdp.data.problems",
    "Correctness": "trimpomdp.data.schema", "LabelledObservations": "trimpomdp.data.schema",
    "StepTrace": "trimpomdp.data.schema",
    "read_score_dump": "trimpomdp.data.score_dumps",
    "read_labelled_observations": "trimpomdp.data.traces", "read_traces": "trimpomdp.data.traces",
    "write_labelled_observations": "trimpomdp.data.traces",
    "write_traces": "trimpomdp.data.traces",
}

__all__ = sorted(_LAZY)  # noqa: PLE0605 - the lazy table is the list


__getattr__ = lazy_getattr(__name__, _LAZY)
