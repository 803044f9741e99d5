"""Read and write step traces and labelled observations as JSON Lines.

Every malformed line raises InputError naming ``path:line`` and the field.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from trimpomdp._io import atomic_write, iter_jsonl
from trimpomdp._validate import check_number, unit_float
from trimpomdp.data.schema import STATE_NAMES, Correctness, LabelledObservations, StepTrace
from trimpomdp.errors import DataWarning, InputError

PathLike = str | os.PathLike[str]


def _int_list(obj: Any, name: str, path: PathLike, line: int, *, minimum: int,
              maximum: int | None = None) -> tuple[int, ...]:
    if not isinstance(obj, list):
        raise InputError(f"{name} must be a list of integers. Got {_brief(obj)} instead.",
                         path=path, line=line, field=name)
    return tuple(int(check_number(v, f"{name}[{i}]", path=path, line=line, lo=minimum,
                                  hi=maximum, integer=True, field=name))
                 for i, v in enumerate(obj))


def _brief(v: Any, n: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= n else text[:n] + "…"


def parse_trace(obj: dict[str, Any], path: PathLike = "<input>", line: int = 0) -> StepTrace:
    """Validate one step-trace object (see :mod:`trimpomdp.data.schema`).

    ``first_error: null`` means every step is correct (the trace gets all-1 ``labels``);
    ``labels`` and ``first_error`` that disagree are rejected.
    """
    if not isinstance(obj, dict):
        raise InputError(f"a trace must be a JSON object. Got {type(obj).__name__} instead.",
                         path=path, line=line)
    pid = obj.get("problem_id", obj.get("id"))
    if pid is None:
        raise InputError("missing required field", path=path, line=line, field="problem_id")
    if isinstance(pid, bool) or not isinstance(pid, str | int):
        raise InputError(f"problem_id must be a string. Got {_brief(pid)} instead.",
                         path=path, line=line, field="problem_id")
    scores = obj.get("scores")
    if not isinstance(scores, list) or not scores:
        raise InputError(f"scores must be a non-empty list of numbers in [0, 1]. Got "
                         f"{_brief(scores)} instead.", path=path, line=line, field="scores")
    sc = tuple(unit_float(s, "scores", path=path, line=line) for s in scores)
    n = len(sc)
    tokens = obj.get("tokens")
    tk = None if tokens is None else _int_list(tokens, "tokens", path, line, minimum=1)
    labels = obj.get("labels")
    lb = None if labels is None else _int_list(labels, "labels", path, line, minimum=0,
                                               maximum=1)
    for name, vals in (("tokens", tk), ("labels", lb)):
        if vals is not None and len(vals) != n:
            raise InputError(f"{name} must have one entry per step ({n}). Got {len(vals)} "
                             "instead.", path=path, line=line, field=name)
    fe = obj.get("first_error")
    if fe is not None:
        fe = int(check_number(fe, "first_error", path=path, line=line, lo=0, integer=True))
    correct = obj.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise InputError(f"correct must be true, false or null. Got {_brief(correct)} instead.",
                         path=path, line=line, field="correct")
    if fe is not None and lb is not None and len(lb) == n:
        from_labels = next((i for i, v in enumerate(lb) if not v), None)
        if from_labels != fe:
            raise InputError(f"first_error ({fe}) disagrees with labels (first 0 at "
                             f"{from_labels if from_labels is not None else 'none'}).",
                             path=path, line=line, field="first_error")
    if "first_error" in obj and fe is None and lb is None:
        lb = (1,) * n  # documented: first_error null = every step correct
    elif "first_error" in obj and fe is None and lb is not None and 0 in lb:
        raise InputError("first_error is null (all steps correct) but labels mark a wrong step.",
                         path=path, line=line, field="first_error")
    acts, stk, ssc, ms = _routed_fields(obj, n, path, line)
    try:
        return StepTrace(problem_id=str(pid), scores=sc, tokens=tk, first_error=fe, labels=lb,
                         correct=correct, actions=acts, strong_tokens=stk, strong_scores=ssc,
                         max_steps=ms)
    except InputError as exc:
        raise InputError(exc.reason, path=path, line=line, field=exc.field) from None


_ACTION_NAMES = {"continue": 0, "regenerate": 1}


def _routed_fields(obj: dict[str, Any], n: int, path: PathLike, line: int
                   ) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None,
                              tuple[float | None, ...] | None, int | None]:
    """Validate the optional routed-trace fields (actions, strong_tokens, strong_scores,
    max_steps) of one trace with ``n`` steps."""
    acts = None
    raw = obj.get("actions")
    if raw is not None:
        if not isinstance(raw, list):
            raise InputError(f"actions must be a list of 'continue'/'regenerate'. Got "
                             f"{_brief(raw)} instead.", path=path, line=line, field="actions")
        out = []
        for i, a in enumerate(raw):
            if isinstance(a, str) and a in _ACTION_NAMES:
                out.append(_ACTION_NAMES[a])
            else:
                raise InputError(f"actions[{i}] must be 'continue' or 'regenerate'. Got "
                                 f"{_brief(a)} instead.", path=path, line=line, field="actions")
        acts = tuple(out)
    stk = None
    raw = obj.get("strong_tokens")
    if raw is not None:
        stk = _int_list(raw, "strong_tokens", path, line, minimum=0)
    ssc = None
    raw = obj.get("strong_scores")
    if raw is not None:
        if not isinstance(raw, list):
            raise InputError(f"strong_scores must be a list of numbers in [0, 1] or null. Got "
                             f"{_brief(raw)} instead.", path=path, line=line,
                             field="strong_scores")
        ssc = tuple(None if v is None else check_number(v, f"strong_scores[{i}]", path=path,
                                                        line=line, lo=0, hi=1,
                                                        field="strong_scores")
                    for i, v in enumerate(raw))
    for name, vals in (("actions", acts), ("strong_tokens", stk), ("strong_scores", ssc)):
        if vals is not None and len(vals) != n:
            raise InputError(f"{name} must have one entry per step ({n}). Got {len(vals)} "
                             "instead.", path=path, line=line, field=name)
    ms = obj.get("max_steps")
    if ms is not None:
        ms = int(check_number(ms, "max_steps", path=path, line=line, lo=1, integer=True))
    return acts, stk, ssc, ms


def read_traces(path: PathLike) -> list[StepTrace]:
    """Read a step-trace JSONL(.gz) file.

    Warns (:class:`~trimpomdp.errors.DataWarning`) once per file when traces have no ``tokens``
    (consumers then count 1 token per step) and when ``correct: true`` contradicts a wrong step
    in ``labels``/``first_error``.
    """
    out: list[StepTrace] = []
    no_tokens: list[int] = []
    contradict: list[int] = []
    for ln, obj in iter_jsonl(path):
        tr = parse_trace(obj, path, ln)
        if tr.tokens is None:
            no_tokens.append(ln)
        if tr.correct is True and tr.error_index is not None:
            contradict.append(ln)
        out.append(tr)
    if no_tokens:
        warnings.warn(f"{path}: {len(no_tokens)} of {len(out)} traces have no 'tokens' (first at "
                      f"line {no_tokens[0]}); where token counts are needed each step counts as "
                      "1 token, which understates the cost of regenerating", DataWarning,
                      stacklevel=2)
    if contradict:
        warnings.warn(f"{path}: {len(contradict)} traces have correct=true but a wrong step in "
                      f"labels/first_error (first at line {contradict[0]}); step-labelled fits "
                      "use the step labels, fit-em uses the final answer", DataWarning,
                      stacklevel=2)
    return out


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
    if tr.actions is not None:
        d["actions"] = ["regenerate" if a else "continue" for a in tr.actions]
    if tr.strong_tokens is not None:
        d["strong_tokens"] = list(tr.strong_tokens)
    if tr.strong_scores is not None:
        d["strong_scores"] = list(tr.strong_scores)
    if tr.max_steps is not None:
        d["max_steps"] = tr.max_steps
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
