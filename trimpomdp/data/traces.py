"""Read and write step traces and labelled observations as JSON Lines.

Every malformed line raises InputError naming ``path:line`` and the field.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from trimpomdp._io import atomic_write, iter_jsonl
from trimpomdp._validate import unit_float
from trimpomdp.data.schema import STATE_NAMES, Correctness, LabelledObservations, StepTrace
from trimpomdp.errors import InputError

PathLike = str | os.PathLike[str]


def _int_list(obj: Any, name: str, path: PathLike, line: int, *, minimum: int) -> tuple[int, ...]:
    if not isinstance(obj, list):
        raise InputError(f"{name} must be a list of integers. Got {obj!r} instead.",
                         path=path, line=line, field=name)
    out = []
    for v in obj:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < minimum:
            raise InputError(f"{name} must hold integers >= {minimum}. Got {v!r} instead.",
                             path=path, line=line, field=name)
        out.append(int(v))
    return tuple(out)


def parse_trace(obj: dict[str, Any], path: PathLike = "<input>", line: int = 0) -> StepTrace:
    """Validate one step-trace object (see :mod:`trimpomdp.data.schema`)."""
    pid = obj.get("problem_id", obj.get("id"))
    if pid is None:
        raise InputError("missing required field", path=path, line=line, field="problem_id")
    scores = obj.get("scores")
    if not isinstance(scores, list) or not scores:
        raise InputError(f"scores must be a non-empty list of numbers in [0, 1]. Got {scores!r} "
                         "instead.", path=path, line=line, field="scores")
    sc = tuple(unit_float(s, "scores", path=path, line=line) for s in scores)
    tokens = obj.get("tokens")
    tk = None if tokens is None else _int_list(tokens, "tokens", path, line, minimum=1)
    labels = obj.get("labels")
    lb = None if labels is None else _int_list(labels, "labels", path, line, minimum=0)
    fe = obj.get("first_error")
    if fe is not None and (isinstance(fe, bool) or not isinstance(fe, int)):
        raise InputError(f"first_error must be an integer step index or null. Got {fe!r} instead.",
                         path=path, line=line, field="first_error")
    correct = obj.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise InputError(f"correct must be true, false or null. Got {correct!r} instead.",
                         path=path, line=line, field="correct")
    try:
        return StepTrace(problem_id=str(pid), scores=sc, tokens=tk, first_error=fe, labels=lb,
                         correct=correct)
    except InputError as exc:
        raise InputError(exc.reason, path=path, line=line, field=exc.field) from None


def read_traces(path: PathLike) -> list[StepTrace]:
    """Read a step-trace JSONL(.gz) file."""
    return [parse_trace(obj, path, ln) for ln, obj in iter_jsonl(path)]


def trace_to_dict(tr: StepTrace) -> dict[str, Any]:
    """The JSON object of a trace (optional fields omitted when unknown)."""
    d: dict[str, Any] = {"problem_id": tr.problem_id, "scores": list(tr.scores)}
    if tr.tokens is not None:
        d["tokens"] = list(tr.tokens)
    if tr.first_error is not None:
        d["first_error"] = tr.first_error
    if tr.labels is not None:
        d["labels"] = list(tr.labels)
    if tr.correct is not None:
        d["correct"] = tr.correct
    return d


def write_traces(path: PathLike, traces: Iterable[StepTrace]) -> None:
    """Write traces as JSONL, atomically."""
    with atomic_write(path) as fh:
        for tr in traces:
            fh.write(json.dumps(trace_to_dict(tr)) + "\n")


def read_labelled_observations(path: PathLike) -> LabelledObservations:
    """Read a labelled-observation JSONL file (fields min_prev, current, state)."""
    X, y = [], []
    for ln, obj in iter_jsonl(path):
        for f in ("min_prev", "current", "state"):
            if f not in obj:
                raise InputError("missing required field", path=path, line=ln, field=f)
        X.append((unit_float(obj["min_prev"], "min_prev", path=path, line=ln),
                  unit_float(obj["current"], "current", path=path, line=ln)))
        try:
            y.append(int(Correctness.parse(obj["state"])))
        except InputError as exc:
            raise InputError(exc.reason, path=path, line=ln, field="state") from None
    return LabelledObservations(np.asarray(X, dtype=float), np.asarray(y, dtype=int))


def write_labelled_observations(path: PathLike, data: LabelledObservations) -> None:
    """Write labelled observations as JSONL, atomically."""
    with atomic_write(path) as fh:
        for (m, c), s in zip(data.X.tolist(), data.y.tolist()):
            fh.write(json.dumps({"min_prev": m, "current": c, "state": STATE_NAMES[s]}) + "\n")


def sniff_kind(path: PathLike) -> str:
    """'observations' if the first line has min_prev/current/state, else 'traces'."""
    for _, obj in iter_jsonl(path):
        return "observations" if "state" in obj and "current" in obj else "traces"
    raise AssertionError("unreachable")  # iter_jsonl raises on empty files
