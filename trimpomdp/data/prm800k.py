"""PRM800K phase-1 human step ratings (stepwise-critic layout) as labelled step traces.

A trajectory is the chain of preferred steps of one problem; a step rated -1 is wrong, 0 and +1
count as correct (the usual PRM800K convention), a null rating is a human-written (correct) step.
"""
from __future__ import annotations

import os
from collections import defaultdict

from trimpomdp._io import iter_jsonl
from trimpomdp.data.schema import StepTrace


def read_prm800k(path: str | os.PathLike[str], *, limit: int | None = None) -> list[StepTrace]:
    """Labelled traces (labels only; scores set to the human rating mapped to [0, 1])."""
    # group rows by (problem, prefix): keep the rated alternatives, follow the preferred ones
    best: dict[tuple[str, tuple[str, ...]], tuple[str, float | None]] = {}
    for _, obj in iter_jsonl(path):
        key = (obj["instruction"], tuple(obj.get("responses") or ()))
        r = obj.get("rating")
        if obj.get("is_preferred_response") or key not in best:
            best[key] = (obj["next_response"], r)
    by_problem: dict[str, dict[tuple[str, ...], tuple[str, float | None]]] = defaultdict(dict)
    for (q, prefix), v in best.items():
        by_problem[q][prefix] = v
    out = []
    for i, (q, nodes) in enumerate(by_problem.items()):
        prefix: tuple[str, ...] = ()
        labels, scores = [], []
        while prefix in nodes and len(prefix) < 100:
            step, r = nodes[prefix]
            rating = 1.0 if r is None else float(r)
            labels.append(0 if rating < 0 else 1)
            scores.append((rating + 1.0) / 2.0)
            prefix = prefix + (step,)
        if labels:
            out.append(StepTrace(problem_id=f"prm800k_{i}", scores=tuple(scores),
                                 labels=tuple(labels)))
        if limit is not None and len(out) >= limit:
            break
    return out
