"""``trimpomdp run``: settings, run folder and summary; the upstream wiring is
:mod:`trimpomdp.generation.wiring`, shared with ``trimpomdp serve``."""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from trimpomdp._io import write_json
from trimpomdp.data.problems import Problem
from trimpomdp.errors import InputError
from trimpomdp.generation._http import AFFINITY_HEADER
from trimpomdp.generation.loop import LoopConfig, run_problems
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.generation.runlog import (
    RUNLOG_NAME,
    SUMMARY_NAME,
    RunLog,
    check_run_config,
    summarize,
)
from trimpomdp.generation.wiring import (
    UpstreamSettings,
    build_upstreams,
    check_policy,
    load_trim_model,
    make_router_factory,
    resolve_max_steps,
    warn_learned_bookkeeping,
)
from trimpomdp.tasks import load_profile
from trimpomdp.tasks.apply import RegradingLog

#: settings that must not change when a run folder is resumed (server URLs may: a restarted
#: server gets a new port; --limit may grow)
RESUME_KEYS = ("policy", "model", "dataset", "max_steps", "max_step_tokens", "temperature",
               "top_p", "top_k", "seed", "score_strong_steps")


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveRunConfig:
    """Everything ``trimpomdp run`` needs (also written to the run folder as ``run.json``).

    With ``backend="vllm-inprocess"``, ``weak_url`` / ``strong_url`` / ``prm`` are local model
    folders run by vLLM in this process (``engine_args``: see
    :class:`~trimpomdp.generation.wiring.UpstreamSettings`).
    """

    weak_url: str
    strong_url: str | None = None
    prm: str | None = None
    policy: str = "weak"
    model: str | None = None
    dataset: str = "math500"
    #: task profile: a built-in name (math, general, thinking) or a profile .toml file
    task: str = "math"
    limit: int | None = None
    concurrency: int = 8
    server_concurrency: int = 8
    #: step limit (None: the task profile's, clipped to the policy's horizon)
    max_steps: int | None = None
    max_step_tokens: int = 2048
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    seed: int | None = None
    weak_tokenizer: str | None = None
    strong_tokenizer: str | None = None
    api: str = "auto"
    timeout: float = 300.0
    retries: int = 3
    score_strong_steps: bool = True
    #: "http" (model servers) or "vllm-inprocess" (vLLM engines in this process)
    backend: str = "http"
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    #: header carrying each problem's id on its upstream requests ("" or None: none)
    affinity_header: str | None = AFFINITY_HEADER

    def __post_init__(self) -> None:
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(
                self.limit, int) or self.limit < 1):
            raise InputError(f"The 'limit' parameter must be an int >= 1. Got {self.limit!r} "
                             "instead.", field="limit")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or \
                self.concurrency < 1:
            raise InputError(f"The 'concurrency' parameter must be an int >= 1. Got "
                             f"{self.concurrency!r} instead.", field="concurrency")
        self.upstream_settings()  # URLs, api, timeout, retries, server_concurrency
        self.profile()
        check_policy(self.policy, strong=bool(self.strong_url), prm=bool(self.prm))
        self.loop_config()  # max_steps, max_step_tokens, temperature, top_p, top_k

    def profile(self) -> Any:
        return load_profile(self.task)

    def upstream_settings(self) -> UpstreamSettings:
        return UpstreamSettings(
            weak_url=self.weak_url, strong_url=self.strong_url, prm=self.prm, api=self.api,
            weak_tokenizer=self.weak_tokenizer, strong_tokenizer=self.strong_tokenizer,
            timeout=self.timeout, retries=self.retries, concurrency=self.server_concurrency,
            backend=self.backend, engine_args=self.engine_args,
            affinity_header=self.affinity_header)

    def loop_config(self) -> LoopConfig:
        try:
            sampling = SamplingParams(temperature=self.temperature, top_p=self.top_p,
                                      top_k=self.top_k, max_tokens=self.max_step_tokens,
                                      seed=self.seed)
            return LoopConfig(max_steps=self.max_steps or self.profile().max_steps,
                              sampling=sampling,
                              score_strong_steps=self.score_strong_steps,
                              is_final=self.profile().is_final)
        except InputError as exc:  # name the CLI option
            m = re.search(r"The '(\w+)' parameter", exc.reason)
            field = {"max_tokens": "max_step_tokens"}.get(m.group(1), m.group(1)) if m else None
            raise InputError(exc.reason, field=field) from None


async def run_live(problems: Sequence[Problem], cfg: LiveRunConfig, out: Path, *,
                   retry_failed: bool = False,
                   on_record: Callable[[dict[str, Any]], None] | None = None,
                   on_start: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a live run into folder ``out``; returns the summary of the whole log.

    ``on_start(to_do, skipped)`` and ``on_record(record)`` are :func:`run_problems`' hooks (the
    CLI's progress bar).

    Everything is checked (settings, policy spec and its files, the TRIM model, the output path)
    and built before ``run.json`` is written, so a rejected command leaves the folder untouched.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder; this is a file", path=out, field="out")
    factory = make_router_factory(cfg.policy, load_trim_model(cfg.model),
                                  max_steps=cfg.max_steps or cfg.profile().max_steps)
    warn_learned_bookkeeping(factory, cfg.score_strong_steps, cfg.policy)
    loop_cfg = dataclasses.replace(cfg.loop_config(), max_steps=resolve_max_steps(
        cfg.max_steps, cfg.profile().max_steps, factory, cfg.policy))
    problems = list(problems)[: cfg.limit] if cfg.limit else list(problems)
    profile = cfg.profile()
    up = build_upstreams(cfg.upstream_settings(), profile)
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the run folder ({exc.strerror})", path=out,
                             field="out") from None
        _check_task(out, cfg.task)  # folders from before task profiles were "math"
        # run.json holds the step limit in force (the profile's, clipped to the horizon)
        check_run_config(out, {**dataclasses.asdict(cfg), "max_steps": loop_cfg.max_steps},
                         RESUME_KEYS)
        with RunLog(out / RUNLOG_NAME) as log:
            if retry_failed:
                log.drop_failed()
            await up.check(setup=False)
            stats = await run_problems(problems, weak=up.weak, strong=up.strong, prm=up.prm,
                                       router_factory=factory,
                                       runlog=cast(Any, RegradingLog(log, profile)),
                                       concurrency=cfg.concurrency, config=loop_cfg,
                                       on_record=on_record, on_start=on_start)
            summary = summarize(log.records)
    finally:
        await up.aclose()
    summary["last_invocation"] = dataclasses.asdict(stats)
    summary["policy"] = cfg.policy
    summary["max_steps"] = loop_cfg.max_steps
    write_json(out / SUMMARY_NAME, summary)
    return summary


def _check_task(out: Path, task: str) -> None:
    path = out / "run.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8")).get("task", "math")
    except (OSError, ValueError, AttributeError):
        return  # check_run_config reports an unreadable run.json
    if old != task:
        raise InputError(f"this run folder was started with task={old!r}; resuming with "
                         f"task={task!r} would mix two runs. Use a new --out folder or the same "
                         "settings.", path=path, field="task")
