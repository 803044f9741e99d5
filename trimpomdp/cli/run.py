"""``trimpomdp run``: live step-routed generation against model servers, with resume.

Re-running the same command on the same ``--out`` folder finishes the remaining problems only.
A progress bar on stderr shows problems done / failed, decoded tokens per second and the ETA
(``--progress`` / ``--no-progress``; default: on when stderr is a terminal); without it, one line
per problem.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from trimpomdp.cli._config import DefaultsHelpFormatter, apply_config_file, json_object
from trimpomdp.cli._upstream import add_model_arguments
from trimpomdp.data.problems import read_problems
from trimpomdp.errors import InputError
from trimpomdp.generation.live import LiveRunConfig, run_live
from trimpomdp.resources import shared_data_dir

_DATASETS = {"math500": "math500/test.jsonl"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = DefaultsHelpFormatter
    add_model_arguments(p)
    p.add_argument("--dataset", default="math500", help="'math500' or a problems JSONL path")
    p.add_argument("--task", default="math", metavar="NAME|FILE.toml", help="task profile: "
                   "math (the release's), general, thinking, or a profile file (docs/serve.md)")
    p.add_argument("--policy", metavar="SPEC", help="required; e.g. thr:0.3, pomdp:FILE|λ, "
                   "pomdp-filter:FILE|λ, agg:CKPT, seq:CKPT, query:K, random:P, weak, strong")
    p.add_argument("--model", metavar="FILE", help="TRIM model file for belief policies")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (created/resumed); required")
    p.add_argument("--limit", type=int, help="first N problems only")
    p.add_argument("--concurrency", type=int, default=8, help="problems in flight (default 8)")
    p.add_argument("--server-concurrency", type=int, help="requests in flight per server "
                   "(default: --concurrency)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="most steps per solution (default: the task profile's, 30 for math)")
    p.add_argument("--max-step-tokens", type=int, default=2048, help="most tokens per step")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    p.add_argument("--top-p", type=float, default=0.8, help="nucleus sampling mass")
    p.add_argument("--top-k", type=int, default=20, help="top-k sampling (-1: off)")
    p.add_argument("--seed", type=int, help="sampling seed sent to the servers")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    p.add_argument("--retries", type=int, default=3, help="retries per request")
    p.add_argument("--score-strong-steps", action=argparse.BooleanOptionalAction, default=None,
                   help="pass the strong step's PRM score (from the next step's PRM call) to the "
                   "router, so it enters the min of previous scores, as in the release's loop "
                   "(default: on; a resumed folder keeps its own setting)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the problems recorded as failed again")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr: done / failed / tokens per second / ETA "
                   "(default: when stderr is a terminal; otherwise one line per problem)")
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file (keys: "
                   "the long options, e.g. weak = \"http://...\", max_steps = 20); options given "
                   "on the command line win")


def _dataset_path(name: str) -> Path:
    if name in _DATASETS:
        root = shared_data_dir()
        if root is None or not (root / _DATASETS[name]).exists():
            raise InputError(f"dataset '{name}' needs ../shared/data/{_DATASETS[name]} (or set "
                             "TRIMPOMDP_SHARED_DATA); or pass a problems JSONL path")
        return root / _DATASETS[name]
    return Path(name)


class Progress:
    """The ``run`` progress display: a tqdm bar (done, failed, decoded tokens/s, ETA) or, when
    the bar is off, one line per problem. ``enabled=None``: on when ``file`` is a terminal."""

    def __init__(self, enabled: bool | None = None, file: IO[str] | None = None) -> None:
        self.enabled = enabled
        self.file = file if file is not None else sys.stderr
        self.bar: Any = None
        self.done = self.failed = self.tokens = 0
        self.t0 = time.perf_counter()

    def start(self, todo: int, skipped: int) -> None:
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=todo, desc="run", unit="problem", file=self.file,
                        disable=None if self.enabled is None else not self.enabled,
                        dynamic_ncols=True, mininterval=0.5)
        if self.bar.disable:
            self.bar = None
        if skipped:
            self.write(f"resuming: {skipped} problems already in the run log")
        self._postfix()

    @property
    def rate(self) -> float:
        """Decoded (weak + strong) tokens per second since the start."""
        return self.tokens / max(1e-9, time.perf_counter() - self.t0)

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"done={self.done} failed={self.failed} "
                                     f"tok/s={self.rate:.1f}", refresh=False)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.file)
        else:
            print(line, file=self.file)

    def record(self, rec: dict[str, Any]) -> None:
        ok = rec["status"] == "ok"
        self.done += ok
        self.failed += not ok
        self.tokens += int(rec.get("weak_tokens") or 0) + int(rec.get("strong_tokens") or 0)
        line = (f"{rec['problem_id']}: {'ok correct=' + str(rec.get('correct')) if ok else rec['status']}"
                f" steps={rec.get('n_steps', '-')} strong_tokens={rec.get('strong_tokens', '-')}"
                + ("" if ok else f" reason={rec.get('reason')}"))
        if self.bar is None or not ok:  # with the bar, only failures get a line
            self.write(line)
        if self.bar is not None:
            self._postfix()
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self._postfix()
            self.bar.close()
            self.bar = None


def _score_strong_steps(args: argparse.Namespace) -> bool:
    """--score-strong-steps as given; unset: a resumed folder's own setting (so folders started
    when the default was off resume unchanged), else on."""
    if args.score_strong_steps is not None:
        return bool(args.score_strong_steps)
    try:
        old = json.loads((Path(args.out) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    value = old.get("score_strong_steps", False) if isinstance(old, dict) else True
    return value if isinstance(value, bool) else True


def run(args: argparse.Namespace) -> int:
    apply_config_file(args, add_arguments, "run")
    for name in ("weak", "policy", "out"):
        if not getattr(args, name):
            raise InputError(f"--{name} is required (or {name} = ... in --config).", field=name)
    engine_args = json_object(args.engine_args, "engine_args")
    if engine_args is not None and args.backend != "vllm-inprocess":
        raise InputError("--engine-args is for --backend vllm-inprocess.", field="engine_args")
    cfg = LiveRunConfig(
        weak_url=args.weak, strong_url=args.strong, prm=args.prm, policy=args.policy,
        model=args.model, dataset=args.dataset, task=args.task, limit=args.limit,
        concurrency=args.concurrency,
        server_concurrency=args.server_concurrency or args.concurrency, max_steps=args.max_steps,
        max_step_tokens=args.max_step_tokens, temperature=args.temperature, top_p=args.top_p,
        top_k=args.top_k, seed=args.seed, weak_tokenizer=args.weak_tokenizer,
        strong_tokenizer=args.strong_tokenizer, api=args.api, timeout=args.timeout,
        retries=args.retries, score_strong_steps=_score_strong_steps(args),
        backend=args.backend, engine_args=engine_args or {},
        affinity_header=args.affinity_header or None)
    # a task without a grader (e.g. 'general') needs no gold answers
    problems = read_problems(_dataset_path(args.dataset),
                             require_answer=cfg.profile().grader != "none")
    progress = Progress(args.progress)
    try:
        summary = asyncio.run(run_live(problems, cfg, Path(args.out),
                                       retry_failed=args.retry_failed,
                                       on_record=progress.record, on_start=progress.start))
    finally:
        progress.close()
    print(json.dumps(summary, indent=1))
    return 0
