"""Real PRM score sequences as padded arrays (ScoreTable) and the bundled/shared loaders."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trimpomdp.data import read_score_dump, read_traces
from trimpomdp.errors import InputError
from trimpomdp.resources import resource_path, shared_data_dir

if TYPE_CHECKING:
    from trimpomdp.data.schema import StepTrace

DUMP = "prm_scores_strictprmbench/math500_bon32_prm_step_scores.jsonl.gz"
SAMPLE = "strictprmbench_sample/math500_qwen2.5-7b_qwen-prm_sample.jsonl"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScoreTable:
    """Solutions as padded arrays: ``scores``/``tokens`` (n, T) (NaN / 0 past ``lengths``)."""

    scores: np.ndarray
    tokens: np.ndarray
    lengths: np.ndarray
    correct: np.ndarray
    ids: tuple[str, ...]
    source: str = ""

    def __post_init__(self) -> None:
        n = self.lengths.shape[0]
        if n == 0 or self.scores.ndim != 2 or self.scores.shape[0] != n \
                or self.tokens.shape != self.scores.shape or self.correct.shape != (n,):
            raise InputError(f"scores/tokens must have shape (n, T) and lengths/correct (n,) with "
                             f"n >= 1. Got {self.scores.shape}, {self.tokens.shape}, "
                             f"{self.lengths.shape}, {self.correct.shape} instead.",
                             field="scores")
        if np.any(self.lengths < 1) or np.any(self.lengths > self.scores.shape[1]):
            raise InputError("every solution needs 1..T steps.", field="lengths")

    @classmethod
    def from_traces(cls, traces: Sequence[StepTrace], source: str = "") -> ScoreTable:
        """Pad step traces (tokens default to 1 per step when unknown; correct must be known)."""
        if not traces:
            raise InputError("traces must hold at least one solution. Got none instead.",
                             field="traces")
        L = np.array([t.n_steps for t in traces], dtype=np.int64)
        T = int(L.max())
        S = np.full((len(traces), T), np.nan)
        N = np.zeros((len(traces), T), dtype=np.int64)
        for i, tr in enumerate(traces):
            if tr.correct is None:
                raise InputError(f"trace {i} ({tr.problem_id}) has no final-answer correctness.",
                                 field="correct")
            S[i, :L[i]] = tr.scores
            N[i, :L[i]] = tr.tokens if tr.tokens is not None else 1
        return cls(scores=S, tokens=N, lengths=L,
                   correct=np.array([bool(t.correct) for t in traces]),
                   ids=tuple(t.problem_id for t in traces), source=source)

    @property
    def n(self) -> int:
        """Number of solutions."""
        return int(self.lengths.shape[0])

    @property
    def n_steps(self) -> int:
        """Total number of scored steps."""
        return int(self.lengths.sum())

    def mask(self) -> np.ndarray:
        """(n, T) True on real steps."""
        return np.arange(self.scores.shape[1])[None, :] < self.lengths[:, None]

    def min_score(self) -> np.ndarray:
        """Minimum step score of each solution (the plain "min-score" verifier)."""
        return np.nanmin(self.scores, axis=1)

    def last_score(self) -> np.ndarray:
        """Score of each solution's last step."""
        return self.scores[np.arange(self.n), self.lengths - 1]

    def problems(self) -> np.ndarray:
        """Problem id of each solution (``id`` before ``#``)."""
        return np.array([i.split("#")[0] for i in self.ids])

    def subset(self, idx: Any) -> ScoreTable:
        """The solutions ``idx`` (indices or a boolean mask), trimmed to their longest length."""
        idx = np.arange(self.n)[idx]
        L = self.lengths[idx]
        T = int(L.max())
        return ScoreTable(scores=self.scores[idx, :T], tokens=self.tokens[idx, :T], lengths=L,
                          correct=self.correct[idx], ids=tuple(self.ids[i] for i in idx),
                          source=self.source)


def load_scores(path: str | os.PathLike[str] | None = None) -> ScoreTable:
    """Real PRM scores: the full StrictPRMBench MATH-500 dump when ``../shared/data`` has it,
    else the bundled 600-solution sample; ``source`` says which file was read."""

    if path is None:
        shared = shared_data_dir()
        if shared is not None and (shared / DUMP).exists():
            path = shared / DUMP
    if path is not None:
        p = os.fspath(path)
        if p.endswith((".jsonl.gz", ".json.gz")) and "step_scores" in p:
            return ScoreTable.from_traces(read_score_dump(p), source=p)
        return ScoreTable.from_traces(read_traces(p), source=p)
    sample = resource_path("data", SAMPLE)
    return ScoreTable.from_traces(read_traces(sample), source=str(sample))


__all__ = ["ScoreTable", "load_scores"]
