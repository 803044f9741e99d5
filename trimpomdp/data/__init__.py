"""Data layer: step traces, labelled observations and loaders for the research datasets."""
from trimpomdp.data.labels import every_prefix, release_prefixes
from trimpomdp.data.problems import Problem, read_problems
from trimpomdp.data.schema import Correctness, LabelledObservations, StepTrace
from trimpomdp.data.score_dumps import read_score_dump
from trimpomdp.data.traces import (
    read_labelled_observations,
    read_traces,
    write_labelled_observations,
    write_traces,
)

__all__ = ["Correctness", "LabelledObservations", "Problem", "StepTrace", "every_prefix",
           "read_labelled_observations", "read_problems", "read_score_dump", "read_traces",
           "release_prefixes", "write_labelled_observations", "write_traces"]
