"""Wiring of ``trimpomdp run``: servers → backends, PRM and router; run folder; summary."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trimpomdp._io import write_json
from trimpomdp.data.problems import Problem
from trimpomdp.errors import InputError
from trimpomdp.generation.loop import LoopConfig, router_factory, run_problems
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.generation.runlog import (
    RUNLOG_NAME,
    SUMMARY_NAME,
    RunLog,
    check_run_config,
    summarize,
)

#: settings that must not change when a run folder is resumed (server URLs may: a restarted
#: server gets a new port; --limit may grow)
RESUME_KEYS = ("policy", "model", "dataset", "max_steps", "max_step_tokens", "temperature",
               "top_p", "top_k", "seed", "score_strong_steps")


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveRunConfig:
    """Everything ``trimpomdp run`` needs (also written to the run folder as ``run.json``)."""

    weak_url: str
    strong_url: str | None = None
    prm: str | None = None
    policy: str = "weak"
    model: str | None = None
    dataset: str = "math500"
    limit: int | None = None
    concurrency: int = 8
    server_concurrency: int = 8
    max_steps: int = 30
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
    score_strong_steps: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise InputError(f"The 'limit' parameter must be an int >= 1. Got {self.limit!r} "
                             "instead.", field="limit")
        if self.policy.strip().lower() != "weak" and not self.strong_url:
            raise InputError(f"policy {self.policy!r} may regenerate steps: pass --strong URL.",
                             field="strong")
        if self.policy.strip().lower() not in ("weak", "strong") and not self.prm:
            raise InputError(f"policy {self.policy!r} routes on PRM scores: pass --prm URL (or "
                             "'self').", field="prm")


def _load_model(path: str | None) -> Any:
    if path is None:
        return None
    from trimpomdp import load_model

    return load_model(path)


async def run_live(problems: Sequence[Problem], cfg: LiveRunConfig, out: Path, *,
                   retry_failed: bool = False,
                   on_record: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a live run into folder ``out``; returns the summary of the whole log."""
    from trimpomdp.generation._http import RetryPolicy
    from trimpomdp.generation.openai_compat import OpenAICompletionsBackend

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_run_config(out, dataclasses.asdict(cfg), RESUME_KEYS)
    factory = router_factory(cfg.policy, _load_model(cfg.model))
    retry = RetryPolicy(retries=cfg.retries, timeout=cfg.timeout)
    problems = list(problems)[: cfg.limit] if cfg.limit else list(problems)
    weak = OpenAICompletionsBackend(cfg.weak_url, name="weak", tokenizer=cfg.weak_tokenizer,
                                    api=cfg.api, concurrency=cfg.server_concurrency, retry=retry)
    strong = None if not cfg.strong_url else OpenAICompletionsBackend(
        cfg.strong_url, name="strong", tokenizer=cfg.strong_tokenizer, api=cfg.api,
        concurrency=cfg.server_concurrency, retry=retry)
    prm: Any = None
    if cfg.prm == "self":
        from trimpomdp.generation.prm_self import SelfScorePRM

        prm = SelfScorePRM(strong or weak)
    elif cfg.prm:
        from trimpomdp.generation.prm_vllm import VLLMPoolingPRM

        prm = VLLMPoolingPRM(cfg.prm, concurrency=cfg.server_concurrency, retry=retry)
    sampling = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                              max_tokens=cfg.max_step_tokens, seed=cfg.seed)
    loop_cfg = LoopConfig(max_steps=cfg.max_steps, sampling=sampling,
                          score_strong_steps=cfg.score_strong_steps)
    with RunLog(out / RUNLOG_NAME) as log:
        if retry_failed:
            log.drop_failed()
        try:
            for b in (weak, strong):
                if b is not None:
                    await b.http.check_health()
            if prm is not None and hasattr(prm, "http"):
                await prm.http.check_health()
            stats = await run_problems(problems, weak=weak, strong=strong, prm=prm,
                                       router_factory=factory, runlog=log,
                                       concurrency=cfg.concurrency, config=loop_cfg,
                                       on_record=on_record)
        finally:
            for c in (weak, strong, prm):
                if c is not None:
                    await c.aclose()
        summary = summarize(log.records)
    summary["last_invocation"] = dataclasses.asdict(stats)
    summary["policy"] = cfg.policy
    write_json(out / SUMMARY_NAME, summary)
    return summary
