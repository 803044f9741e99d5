"""Math problems with gold answers: MATH-500 and the competition benchmarks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trimpomdp._io import iter_jsonl
from trimpomdp.errors import InputError

_QUESTION_KEYS = ("problem", "question")
_ANSWER_KEYS = ("answer", "final_answer", "gold_answer")


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem id, its statement and its gold answer (as a string)."""

    problem_id: str
    question: str
    answer: str


def read_problems(path: str | os.PathLike[str], *, prefix: str | None = None,
                  require_answer: bool = True) -> list[Problem]:
    """Read a problems JSONL (MATH-500, AIME, AMC, OlympiadBench or StrictPRMBench layouts).

    ``require_answer=False`` (tasks without a grader) reads prompts without a gold answer as
    ``answer=""``.
    """
    prefix = prefix if prefix is not None else Path(path).parent.name
    out = []
    for ln, obj in iter_jsonl(path):
        q = next((obj[k] for k in _QUESTION_KEYS if obj.get(k)), None)
        a = next((obj[k] for k in _ANSWER_KEYS if obj.get(k) is not None), None)
        if q is None:
            raise InputError("missing the problem statement ('problem' or 'question')",
                             path=path, line=ln, field="problem")
        if a is None and not require_answer:
            a = ""
        if a is None:
            raise InputError("missing the gold answer ('answer', 'final_answer' or "
                             "'gold_answer')", path=path, line=ln, field="answer")
        if not isinstance(q, str):
            raise InputError(f"the problem statement must be a string. Got {type(q).__name__} "
                             "instead.", path=path, line=ln, field="problem")
        if isinstance(a, list):
            a = a[0] if len(a) == 1 else ", ".join(map(str, a))
        if isinstance(a, bool) or not isinstance(a, str | int | float):
            raise InputError(f"the gold answer must be a string or a number. Got "
                             f"{type(a).__name__} instead.", path=path, line=ln, field="answer")
        if isinstance(a, float) and a.is_integer():
            a = int(a)
        pid = obj.get("problem_id", obj.get("unique_id", obj.get("id", ln - 1)))
        if isinstance(pid, bool) or not isinstance(pid, str | int):
            raise InputError(f"problem_id must be a string. Got {pid!r} instead.", path=path,
                             line=ln, field="problem_id")
        out.append(Problem(problem_id=f"{prefix}_{pid}" if "problem_id" not in obj else str(pid),
                           question=str(q), answer=str(a)))
    return out
