"""PRM800K phase-1 human step ratings (stepwise-critic layout) as labelled step traces.

Each row rates one candidate step (``next_response``) after a prefix (``responses``). A trace is a
prefix followed by a rated candidate; every step of it carries its own human rating: -1 is wrong,
0 and +1 count as correct (the usual PRM800K convention), a null rating or a prefix step that was
never rated (human-written) is correct. Only maximal traces are kept (a candidate that other
rows extend is part of their traces), so each problem gives its preferred chain *and* every
rated alternative along it: wrong steps appear where the labellers found them. (Following only
the preferred steps would give error-free traces.)
"""
from __future__ import annotations

import os
from collections import defaultdict

from trimpomdp._io import iter_jsonl
from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import InputError

_MAX_STEPS = 100


def _rating(value: object, path: str | os.PathLike[str], line: int) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or value not in (-1, 0, 1):
        raise InputError(f"rating must be -1, 0, 1 or null. Got {value!r} instead.", path=path,
                         line=line, field="rating")
    return float(value)


def read_prm800k(path: str | os.PathLike[str], *, limit: int | None = None) -> list[StepTrace]:
    """Labelled traces from every rated step (scores: the human rating mapped to [0, 1])."""
    rated: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)  # problem -> steps -> r
    order: dict[str, int] = {}
    for ln, obj in iter_jsonl(path):
        q = obj.get("instruction")
        if not isinstance(q, str):
            raise InputError(f"instruction must be the problem text (a string). Got {q!r} "
                             "instead.", path=path, line=ln, field="instruction")
        prefix = obj.get("responses") or []
        if not isinstance(prefix, list) or not all(isinstance(s, str) for s in prefix):
            raise InputError("responses must be a list of step texts (strings).", path=path,
                             line=ln, field="responses")
        step = obj.get("next_response")
        if not isinstance(step, str):
            raise InputError(f"next_response must be a step text (a string). Got {step!r} "
                             "instead.", path=path, line=ln, field="next_response")
        order.setdefault(q, len(order))
        rated[q][(*prefix, step)] = _rating(obj.get("rating"), path, ln)
    out: list[StepTrace] = []
    for q, table in rated.items():
        inner = {steps[:k] for steps in table for k in range(1, len(steps))}
        leaves = [s for s in table if s not in inner and len(s) <= _MAX_STEPS]
        for j, steps in enumerate(leaves):
            ratings = [table.get(steps[:k + 1], 1.0) for k in range(len(steps))]
            out.append(StepTrace(problem_id=f"prm800k_{order[q]}#{j}",
                                 scores=tuple((r + 1.0) / 2.0 for r in ratings),
                                 labels=tuple(0 if r < 0 else 1 for r in ratings)))
            if limit is not None and len(out) >= limit:
                return out
    return out
