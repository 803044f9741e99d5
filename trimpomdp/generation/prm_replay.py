"""Replay of recorded PRM scores (offline evaluation and tests): no model is called.

Scores are looked up by question text and step index: step i of any partial solution of that
question gets the i-th recorded score.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from trimpomdp._validate import unit_float
from trimpomdp.data.problems import read_problems
from trimpomdp.data.traces import read_traces
from trimpomdp.errors import BackendError, InputError


class ReplayPRM:
    """A :class:`PRMScorer` over ``{question: [score of step 0, step 1, ...]}``."""

    def __init__(self, scores: Mapping[str, Sequence[float]]) -> None:
        self.scores: dict[str, tuple[float, ...]] = {}
        for q, row in scores.items():
            self.scores[q] = tuple(unit_float(s, "scores") for s in row)

    @classmethod
    def from_traces(cls, traces_path: str | os.PathLike[str],
                    problems_path: str | os.PathLike[str]) -> ReplayPRM:
        """Step traces (``problem_id``, ``scores``) joined to a problems file by problem id."""
        by_id = {p.problem_id: p.question for p in read_problems(problems_path)}
        table = {}
        for tr in read_traces(traces_path):
            if tr.problem_id not in by_id:
                raise InputError(f"trace problem_id {tr.problem_id!r} is not in {problems_path}",
                                 path=traces_path, field="problem_id")
            table[by_id[tr.problem_id]] = tr.scores
        return cls(table)

    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]:
        row = self.scores.get(question)
        if row is None:
            raise BackendError("no recorded scores for this question (replay covers "
                               f"{len(self.scores)} questions)")
        if len(steps) > len(row):
            raise BackendError(f"only {len(row)} recorded scores for this question; asked for "
                               f"{len(steps)} steps")
        return list(row[: len(steps)])

    async def aclose(self) -> None:
        """Nothing to release."""
