"""Unlabelled PRM score dumps (StrictPRMBench Best-of-32 pools) as step traces.

Per-step token counts are not in the dumps: they are apportioned from ``num_tokens`` in
proportion to each step's characters (rounded, at least 1 per step).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from trimpomdp._io import iter_jsonl
from trimpomdp._validate import check_number, unit_float
from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import DataWarning, InputError


def _apportion(total: int, chars: list[int]) -> tuple[int, ...]:
    c = np.maximum(np.asarray(chars, dtype=float), 1.0)
    t = np.maximum(1, np.round(total * c / c.sum())).astype(int)
    return tuple(int(v) for v in t)


def read_score_dump(path: str | os.PathLike[str], *, prm: str = "qwen_prm",
                    limit: int | None = None) -> list[StepTrace]:
    """Traces (scores of PRM ``prm``, apportioned tokens, final correctness) from a dump.

    Scores outside [0, 1], NaN and non-numbers are rejected (never clamped); ``is_correct`` must
    be true, false or null (unknown); a line without ``num_tokens`` and ``step_chars`` gets no
    tokens (with one warning per file).
    """
    out: list[StepTrace] = []
    no_tokens: list[int] = []
    for ln, obj in iter_jsonl(path):
        pid = obj.get("problem_id")
        if pid is None:
            raise InputError("missing required field", path=path, line=ln, field="problem_id")
        if isinstance(pid, bool) or not isinstance(pid, str | int):
            raise InputError(f"problem_id must be a string. Got {pid!r} instead.", path=path,
                             line=ln, field="problem_id")
        table = obj.get("step_scores")
        if not isinstance(table, dict):
            raise InputError("step_scores must be an object {PRM name: [scores]}. Got "
                             f"{type(table).__name__} instead.", path=path, line=ln,
                             field="step_scores")
        scores = table.get(prm)
        if scores is None:
            raise InputError(f"no scores for PRM '{prm}'; available: {sorted(table)}",
                             path=path, line=ln, field="step_scores")
        if not isinstance(scores, list):
            raise InputError(f"step_scores.{prm} must be a list of numbers in [0, 1]. Got "
                             f"{type(scores).__name__} instead.", path=path, line=ln,
                             field=f"step_scores.{prm}")
        if not scores:
            continue
        sc = tuple(unit_float(s, f"step_scores.{prm}", path=path, line=ln) for s in scores)
        chars = obj.get("step_chars")
        if chars is not None:
            if not isinstance(chars, list):
                raise InputError(f"step_chars must be a list of integers. Got "
                                 f"{type(chars).__name__} instead.", path=path, line=ln,
                                 field="step_chars")
            chars = [check_number(c, "step_chars", path=path, line=ln, lo=0, integer=True)
                     for c in chars]
        num = obj.get("num_tokens")
        if num is not None:
            num = check_number(num, "num_tokens", path=path, line=ln, lo=0, integer=True)
        tokens: tuple[int, ...] | None = None
        if num is None and chars is None:
            no_tokens.append(ln)
        else:
            chars = chars or [1] * len(sc)
            tokens = _apportion(int(num or len(sc)), chars) if len(chars) == len(sc) else None
        correct = obj.get("is_correct")
        if correct is not None and not isinstance(correct, bool):
            raise InputError(f"is_correct must be true, false or null. Got {correct!r} instead.",
                             path=path, line=ln, field="is_correct")
        cand = obj.get("candidate_index", 0)
        cand = check_number(cand, "candidate_index", path=path, line=ln, lo=0, integer=True)
        try:
            out.append(StepTrace(problem_id=f"{pid}#{cand}", scores=sc, tokens=tokens,
                                 correct=correct, meta={"boxed_answer": obj.get("boxed_answer")}))
        except InputError as exc:
            raise InputError(exc.reason, path=path, line=ln, field=exc.field) from None
        if limit is not None and len(out) >= limit:
            break
    if no_tokens:
        warnings.warn(f"{path}: {len(no_tokens)} lines have neither 'num_tokens' nor "
                      f"'step_chars' (first at line {no_tokens[0]}); where token counts are "
                      "needed each step counts as 1 token", DataWarning, stacklevel=2)
    return out
