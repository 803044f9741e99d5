"""The live TRIM loop: weak draft → PRM score → route → (strong rewrite) per step, many problems
concurrently.

Each problem is one asyncio task (no lock-step batches); the backends bound the requests in
flight per server. A finished problem becomes one run-log record; a problem whose server calls
fail after their retries becomes a ``failed`` record with the reason, and the run goes on.
"""
from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trimpomdp.data.problems import Problem
from trimpomdp.data.schema import RouteAction
from trimpomdp.errors import InputError, TrimpomdpError
from trimpomdp.evaluation.grading import is_equivalent, last_boxed
from trimpomdp.generation._http import affinity
from trimpomdp.generation.prm_incremental import open_session
from trimpomdp.generation.prompting import (
    STEP_SEPARATOR,
    generation_messages,
    is_final_step,
    is_punctuation_only,
)
from trimpomdp.generation.protocols import (
    GenerationBackend,
    PRMScorer,
    PRMSession,
    Router,
    SamplingParams,
)
from trimpomdp.generation.runlog import RunLog
from trimpomdp.pomdp.dynamics import DEFAULT_MAX_STEPS
from trimpomdp.routing.router import RouterFactory
from trimpomdp.routing.spec import router_factory


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopConfig:
    """Limits and sampling of the step loop (defaults: the release's)."""

    #: generation cap in steps; a router's horizon (its model's max_steps) must cover it
    max_steps: int = DEFAULT_MAX_STEPS
    sampling: SamplingParams = field(default_factory=SamplingParams)
    strong_sampling: SamplingParams | None = None
    stop: tuple[str, ...] = (STEP_SEPARATOR,)
    #: punctuation-only drafts are dropped and the model asked again, at most this many times
    max_empty_retries: int = 3
    #: pass the strong step's PRM score to the router, so it enters the min / product of previous
    #: scores (the release's loop: its PRM re-scores the history with the strong step in it; the
    #: score comes from the next step's PRM call, at no extra cost). Off: it counts as 1.0.
    score_strong_steps: bool = True
    #: the end rule: (step text, stopped on the separator) -> this step ends the answer (default:
    #: the release's: a ``\boxed{`` or a step that did not stop on the separator); a task
    #: profile's ``is_final`` replaces it (e.g. end of sequence only)
    is_final: Callable[[str, bool], bool] = is_final_step

    def __post_init__(self) -> None:
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) \
                or self.max_steps < 1:
            raise InputError(f"The 'max_steps' parameter of LoopConfig must be an int >= 1. Got "
                             f"{self.max_steps!r} instead.", field="max_steps")
        if self.max_empty_retries < 0:
            raise InputError(f"The 'max_empty_retries' parameter of LoopConfig must be >= 0. "
                             f"Got {self.max_empty_retries!r} instead.")


# ---------------------------------------------------------------------------------- one problem
async def solve_problem(problem: Problem, weak: GenerationBackend,
                        strong: GenerationBackend | None, prm: PRMScorer | None,
                        router: Router | None, config: LoopConfig | None = None) -> dict[str, Any]:
    """Run the step loop on one problem; returns its run-log record (raises on backend failure).

    ``router`` is this problem's own router (fresh from a factory: routers are never shared
    between problems). ``router=None`` continues every step and ``prm=None`` skips scoring:
    weak-only generation, the baseline of the overhead benchmark.

    The PRM is used through one scoring session per problem
    (:func:`~trimpomdp.generation.prm_incremental.open_session`): scorers that support it compute
    only each new step's tokens; the others re-score the whole prefix with ``score_steps``.

    Every upstream request of this problem carries its id as affinity key
    (:func:`~trimpomdp.generation._http.affinity`), for session-aware routers.
    """
    with affinity(problem.problem_id):
        session = open_session(prm, problem.question) if prm is not None else None
        try:
            return await _solve(problem, weak, strong, session, router, config)
        finally:
            if session is not None:
                await session.aclose()


async def _solve(problem: Problem, weak: GenerationBackend, strong: GenerationBackend | None,
                 prm: PRMSession | None, router: Router | None,
                 config: LoopConfig | None) -> dict[str, Any]:
    cfg = config or LoopConfig()
    strong_sampling = cfg.strong_sampling or cfg.sampling
    t_start = time.perf_counter()
    timing = {"weak_s": 0.0, "strong_s": 0.0, "prm_s": 0.0, "route_s": 0.0}
    if router is not None:
        horizon = getattr(router, "max_steps", None)
        if horizon is not None and cfg.max_steps > horizon:
            raise InputError(f"max_steps ({cfg.max_steps}) must be <= the router's horizon "
                             f"({horizon}, its model's max_steps). Got {cfg.max_steps} instead.",
                             field="max_steps")
        if getattr(router, "step", 0):  # a used router: start this problem afresh
            router.reset({"key": problem.problem_id})
    steps: list[str] = []
    records: list[dict[str, Any]] = []
    weak_tokens = strong_tokens = discarded = empty_drafts = 0
    end_reason = "max_steps"
    prev_regenerated = False
    t = 0
    while t < cfg.max_steps:
        messages = generation_messages(problem.question, steps)
        t0 = time.perf_counter()
        sampling = cfg.sampling
        if empty_drafts and sampling.seed is not None:  # a retry with the same seed repeats
            sampling = dataclasses.replace(sampling, seed=sampling.seed + empty_drafts)
        draft = await weak.generate_step(messages, stop=cfg.stop, sampling=sampling)
        timing["weak_s"] += time.perf_counter() - t0
        weak_tokens += draft.tokens
        if draft.stopped_on_stop and is_punctuation_only(draft.text):
            empty_drafts += 1
            discarded += draft.tokens
            # the release drops such steps and asks the model to go on; a greedy retry of the
            # same request can only repeat the empty draft, so it is not sent
            if empty_drafts <= cfg.max_empty_retries and sampling.temperature > 0:
                continue
            end_reason = "empty_steps"
            break
        if not draft.text.strip():  # the weak model ended the solution (EOS / length) with nothing
            discarded += draft.tokens
            end_reason = draft.finish_reason
            break
        final = cfg.is_final(draft.text, draft.stopped_on_stop) or t == cfg.max_steps - 1
        rec: dict[str, Any] = {"step": t, "draft": draft.text, "draft_tokens": draft.tokens,
                               "draft_finish": draft.finish_reason}
        score = 1.0
        if prm is not None:
            t0 = time.perf_counter()
            scores = await prm.score([*steps, draft.text])
            timing["prm_s"] += time.perf_counter() - t0
            score = float(scores[-1])
            rec["score"] = score
            rec["prefix_scores"] = [float(s) for s in scores[:-1]]
            if prev_regenerated and cfg.score_strong_steps and router is not None and hasattr(
                    router, "observe_regenerated"):
                router.observe_regenerated(float(scores[-2]))
                records[-1]["strong_score"] = float(scores[-2])  # what the router booked
        action = RouteAction.CONTINUE
        if router is not None:
            t0 = time.perf_counter()
            dec = router.decide(score, max(1, draft.tokens), t, final=final)
            timing["route_s"] += time.perf_counter() - t0
            action = RouteAction(int(dec.action))
            belief = getattr(dec, "belief", None)
            q = getattr(dec, "q", None)
            rec.update(action=action.label,
                       belief=None if belief is None else _to_list(belief),
                       q=None if q is None else [float(x) for x in q],
                       reason=getattr(dec, "reason", None))
        else:
            rec["action"] = action.label
        text, source = draft.text, "weak"
        if action is RouteAction.REGENERATE:
            if strong is None:
                raise InputError("the router asked to regenerate but no strong backend is set")
            t0 = time.perf_counter()
            out = await strong.generate_step(messages, stop=cfg.stop, sampling=strong_sampling)
            timing["strong_s"] += time.perf_counter() - t0
            strong_tokens += out.tokens
            discarded += draft.tokens
            text, source = out.text, "strong"
            final = cfg.is_final(out.text, out.stopped_on_stop) or t == cfg.max_steps - 1
            rec.update(strong=out.text, strong_tokens=out.tokens, strong_finish=out.finish_reason)
        prev_regenerated = action is RouteAction.REGENERATE
        rec.update(text=text, source=source, final=final)
        records.append(rec)
        steps.append(text)
        t += 1
        if final:
            end_reason = "final_step"
            break
    solution = STEP_SEPARATOR.join(steps)
    answer = last_boxed(solution)
    timing["total_s"] = time.perf_counter() - t_start
    return {
        "problem_id": problem.problem_id, "status": "ok", "gold": problem.answer,
        "answer": answer, "correct": is_equivalent(answer, problem.answer),
        "n_steps": len(steps), "n_regenerated": sum(r["source"] == "strong" for r in records),
        "weak_tokens": weak_tokens, "strong_tokens": strong_tokens,
        "discarded_weak_tokens": discarded, "empty_drafts": empty_drafts,
        "end_reason": end_reason, "steps": records, "solution": solution,
        "router": getattr(router, "summary", lambda: None)() if router is not None else None,
        "timing": timing,
    }


def _to_list(belief: Any) -> Any:
    for attr in ("to_list", "tolist"):
        if hasattr(belief, attr):
            return getattr(belief, attr)()
    return list(belief) if isinstance(belief, Iterable) else belief


def failure_record(problem: Problem, exc: BaseException, seconds: float) -> dict[str, Any]:
    """The run-log record of a problem that could not be finished."""
    reason = str(exc) if isinstance(exc, TrimpomdpError) else f"{type(exc).__name__}: {exc}"
    return {"problem_id": problem.problem_id, "status": "failed", "gold": problem.answer,
            "reason": reason, "error_type": type(exc).__name__,
            "timing": {"total_s": seconds}}


# ---------------------------------------------------------------------------------- many problems
def _takes_info(factory: Callable[..., Any]) -> bool:
    """Whether a router factory accepts the problem's ``info`` (RouterFactory and wrappers do)."""
    if isinstance(factory, RouterFactory):
        return True
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in params)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStats:
    """What one call of :func:`run_problems` did."""

    skipped: int
    finished: int
    failed: int
    seconds: float


async def run_problems(problems: Sequence[Problem], *, weak: GenerationBackend,
                       strong: GenerationBackend | None, prm: PRMScorer | None,
                       router_factory: Callable[..., Router] | None, runlog: RunLog,
                       concurrency: int = 8, config: LoopConfig | None = None,
                       on_record: Callable[[dict[str, Any]], None] | None = None,
                       on_start: Callable[[int, int], None] | None = None) -> RunStats:
    """Solve every problem that the run log does not hold yet, ``concurrency`` at a time.

    ``on_start(to_do, skipped)`` is called once before the first problem starts (a progress
    display's total); ``on_record(record)`` after each problem.

    Each finished problem is appended (and fsynced) as soon as it is done, so a killed run
    resumes where it stopped; a problem is never written twice. ``router_factory`` gives each
    problem its own router (a :class:`~trimpomdp.routing.router.RouterFactory` is called with
    ``{"key": problem_id}``, so per-problem random streams do not depend on scheduling).
    """
    if concurrency < 1:
        raise InputError(f"The 'concurrency' parameter must be an int >= 1. Got {concurrency!r} "
                         "instead.")
    ids = [p.problem_id for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"problem ids must be unique. Got {dup!r} twice.")
    done = runlog.finished_ids
    todo = [p for p in problems if p.problem_id not in done]
    keyed = router_factory is not None and _takes_info(router_factory)
    sem = asyncio.Semaphore(concurrency)
    counts = {"ok": 0, "failed": 0}
    t0 = time.perf_counter()
    if on_start is not None:
        on_start(len(todo), len(problems) - len(todo))

    async def one(problem: Problem) -> None:
        async with sem:
            ts = time.perf_counter()
            try:
                router = None
                if router_factory is not None:
                    router = router_factory({"key": problem.problem_id}) if keyed \
                        else router_factory()
                rec = await solve_problem(problem, weak, strong, prm, router, config)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure is recorded, the run goes on
                rec = failure_record(problem, exc, time.perf_counter() - ts)
            runlog.append(rec)
            counts[rec["status"]] += 1
            if on_record is not None:
                on_record(rec)

    await asyncio.gather(*(one(p) for p in todo))
    return RunStats(skipped=len(problems) - len(todo), finished=counts["ok"],
                    failed=counts["failed"], seconds=time.perf_counter() - t0)


__all__ = ["LoopConfig", "RunStats", "failure_record", "router_factory", "run_problems",
           "solve_problem"]
