"""Run folders (``trimpomdp run``) → routed step traces (:mod:`trimpomdp.data.schema`).

Per finished problem (``status: ok``) one trace: ``scores[t]`` the PRM score of the weak draft
the router saw, ``tokens[t]`` its tokens, ``actions[t]`` the router's action, ``strong_tokens``
and ``strong_scores`` of the rewrites, ``correct`` from the grader, and ``max_steps`` when the
solution was cut at the run's step limit. The PRM score of a rewrite is read from the next
step's ``prefix_scores`` (the PRM rescored the kept steps); by default it is kept only when the
run fed it to the router (``score_strong_steps``), so that the traces' observations are the
ones the router computed (an unscored rewrite counts as 1.0 in the minimum of previous scores).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trimpomdp._io import read_json
from trimpomdp.data.schema import StepTrace
from trimpomdp.errors import InputError
from trimpomdp.generation.prompting import is_final_step
from trimpomdp.generation.runlog import CONFIG_NAME, RUNLOG_NAME, SUMMARY_NAME, read_runlog

#: run settings that must agree between folders converted together (override: allow_mixed)
SAME_KEYS = ("weak_url", "strong_url", "prm", "task")
STRONG_SCORES = ("auto", "always", "never")


def _run_settings(folder: Path) -> dict[str, Any]:
    cfg = folder / CONFIG_NAME
    settings = read_json(cfg) if cfg.is_file() else {}
    if not isinstance(settings, dict):
        raise InputError(f"run settings must be a JSON object. Got {type(settings).__name__} "
                         "instead.", path=cfg)
    summ = folder / SUMMARY_NAME
    if summ.is_file():
        s = read_json(summ)
        if isinstance(s, dict) and isinstance(s.get("max_steps"), int):
            settings = {**settings, "resolved_max_steps": s["max_steps"]}
    return settings


def record_to_trace(rec: dict[str, Any], *, max_steps: int | None, strong_scores: bool,
                    path: str | os.PathLike[str] = "<runlog>", line: int | None = None
                    ) -> StepTrace:
    """One run-log record (``status: ok``) as a routed :class:`StepTrace`."""
    pid = str(rec["problem_id"])
    steps = rec.get("steps")
    if not isinstance(steps, list) or not steps:
        raise InputError(f"problem {pid!r}: the record has no 'steps' (not a step-routed run "
                         "log?)", path=path, line=line, field="steps")
    scores, tokens, acts, stok, sscore = [], [], [], [], []
    for i, st in enumerate(steps):
        if not isinstance(st, dict):
            raise InputError(f"problem {pid!r}: steps[{i}] must be an object.", path=path,
                             line=line, field="steps")
        if st.get("score") is None:
            raise InputError(f"problem {pid!r}: steps[{i}] has no PRM 'score' (the run had no "
                             "--prm); traces need the score the router saw", path=path,
                             line=line, field="score")
        act = st.get("action", "continue")
        if act not in ("continue", "regenerate"):
            raise InputError(f"problem {pid!r}: steps[{i}].action must be 'continue' or "
                             f"'regenerate'. Got {act!r} instead.", path=path, line=line,
                             field="action")
        regen = act == "regenerate"
        scores.append(float(st["score"]))
        tokens.append(max(1, int(st.get("draft_tokens") or 1)))
        acts.append(int(regen))
        stok.append(int(st.get("strong_tokens") or 0) if regen else 0)
        s_score = None
        if regen and strong_scores and i + 1 < len(steps):
            nxt = steps[i + 1].get("prefix_scores") if isinstance(steps[i + 1], dict) else None
            if isinstance(nxt, list) and len(nxt) > i and nxt[i] is not None:
                s_score = float(nxt[i])
        sscore.append(s_score)
    last = steps[-1]
    cut = False
    if max_steps is not None and len(steps) >= max_steps:
        text = last.get("text", last.get("draft", "")) or ""
        finish = last.get("strong_finish" if last.get("source") == "strong" else "draft_finish")
        cut = not is_final_step(text, finish in (None, "stop"))
    correct = rec.get("correct")
    try:
        return StepTrace(problem_id=pid, scores=tuple(scores), tokens=tuple(tokens),
                         correct=None if correct is None else bool(correct),
                         actions=tuple(acts), strong_tokens=tuple(stok),
                         strong_scores=tuple(sscore),
                         max_steps=len(steps) if cut else None)
    except InputError as exc:
        raise InputError(f"problem {pid!r}: {exc.reason}", path=path, line=line,
                         field=exc.field) from None


def run_folders_to_traces(folders: Sequence[str | os.PathLike[str]], *,
                          strong_scores: str = "auto", allow_mixed: bool = False
                          ) -> tuple[list[StepTrace], dict[str, Any]]:
    """Traces of every finished problem in ``folders`` and a report (counts per folder).

    Folders must come from the same model pair, PRM and task (``run.json``) unless
    ``allow_mixed``; failed problems are skipped (counted).
    """
    if strong_scores not in STRONG_SCORES:
        raise InputError(f"strong_scores must be one of {', '.join(STRONG_SCORES)}. Got "
                         f"{strong_scores!r} instead.", field="strong_scores")
    if not folders:
        raise InputError("no run folders given.", field="runs")
    traces: list[StepTrace] = []
    report: dict[str, Any] = {"folders": []}
    first: tuple[Path, dict[str, Any]] | None = None
    for f in folders:
        p = Path(f)
        folder = p.parent if p.name == RUNLOG_NAME else p
        if not folder.exists():
            raise InputError("run folder not found", path=folder)
        if not folder.is_dir():
            raise InputError("expected a run folder (with runlog.jsonl), got a file", path=folder)
        if not (folder / RUNLOG_NAME).is_file():
            raise InputError(f"not a run folder: it has no {RUNLOG_NAME}", path=folder)
        settings = _run_settings(folder)
        if first is None:
            first = (folder, settings)
        elif not allow_mixed:
            for k in SAME_KEYS:
                if settings.get(k) != first[1].get(k):
                    raise InputError(f"run folders mix settings: {k}={settings.get(k)!r} here but "
                                     f"{first[1].get(k)!r} in {first[0]} (traces of one fit must "
                                     "come from one model pair and PRM; --allow-mixed to "
                                     "override)", path=folder / CONFIG_NAME, field=k)
        ms = settings.get("resolved_max_steps", settings.get("max_steps"))
        ms = ms if isinstance(ms, int) and not isinstance(ms, bool) else None
        use_strong = {"always": True, "never": False}.get(
            strong_scores, bool(settings.get("score_strong_steps", False)))
        log = folder / RUNLOG_NAME
        recs = read_runlog(log)
        n_ok = n_failed = 0
        for ln, rec in enumerate(recs, start=1):
            if rec.get("status") != "ok":
                n_failed += 1
                continue
            traces.append(record_to_trace(rec, max_steps=ms, strong_scores=use_strong,
                                          path=log, line=ln))
            n_ok += 1
        report["folders"].append({"folder": str(folder), "traces": n_ok,
                                  "skipped_failed": n_failed, "max_steps": ms,
                                  "strong_scores": use_strong})
    if not traces:
        raise InputError("the run folders hold no finished problem (status 'ok')",
                         path=str(folders[0]))
    report.update(traces=len(traces), steps=sum(t.n_steps for t in traces),
                  regenerated=sum(t.n_regenerated for t in traces),
                  censored=sum(t.censored for t in traces),
                  graded=sum(t.correct is not None for t in traces))
    return traces, report


__all__ = ["SAME_KEYS", "STRONG_SCORES", "record_to_trace", "run_folders_to_traces"]
