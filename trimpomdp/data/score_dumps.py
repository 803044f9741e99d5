"""Unlabelled PRM score dumps (StrictPRMBench Best-of-32 pools) as step traces.

Per-step token counts are not in the dumps: they are apportioned from ``num_tokens`` in
proportion to each step's characters (rounded, at least 1 per step).
"""
from __future__ import annotations

import os

import numpy as np

from trimpomdp._io import iter_jsonl
from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import InputError


def _apportion(total: int, chars: list[int]) -> tuple[int, ...]:
    c = np.maximum(np.asarray(chars, dtype=float), 1.0)
    t = np.maximum(1, np.round(total * c / c.sum())).astype(int)
    return tuple(int(v) for v in t)


def read_score_dump(path: str | os.PathLike[str], *, prm: str = "qwen_prm",
                    limit: int | None = None) -> list[StepTrace]:
    """Traces (scores of PRM ``prm``, apportioned tokens, final correctness) from a dump."""
    out: list[StepTrace] = []
    for ln, obj in iter_jsonl(path):
        scores = obj.get("step_scores", {}).get(prm)
        if scores is None:
            raise InputError(f"no scores for PRM '{prm}'; available: "
                             f"{sorted(obj.get('step_scores', {}))}", path=path, line=ln,
                             field="step_scores")
        if not scores:
            continue
        sc = tuple(min(1.0, max(0.0, float(s))) for s in scores)
        chars = obj.get("step_chars") or [1] * len(sc)
        tokens = _apportion(int(obj.get("num_tokens") or len(sc)), chars) \
            if len(chars) == len(sc) else None
        out.append(StepTrace(problem_id=f"{obj['problem_id']}#{obj.get('candidate_index', 0)}",
                             scores=sc, tokens=tokens, correct=bool(obj.get("is_correct")),
                             meta={"boxed_answer": obj.get("boxed_answer")}))
        if limit is not None and len(out) >= limit:
            break
    return out
