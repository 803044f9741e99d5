"""``trimpomdp run``: live step-routed generation against model servers, with resume.

Re-running the same command on the same ``--out`` folder finishes the remaining problems only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from trimpomdp.cli._config import DefaultsHelpFormatter, apply_config_file
from trimpomdp.data.problems import read_problems
from trimpomdp.errors import InputError
from trimpomdp.generation.live import LiveRunConfig, run_live
from trimpomdp.resources import shared_data_dir

_DATASETS = {"math500": "math500/test.jsonl"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = DefaultsHelpFormatter
    p.add_argument("--weak", metavar="URL", help="weak model server (OpenAI API); required")
    p.add_argument("--strong", metavar="URL", help="strong model server (OpenAI API)")
    p.add_argument("--prm", metavar="URL|self", help="vLLM /pooling PRM server URL, or 'self' to "
                   "score steps by the strong model's log-probabilities")
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
    p.add_argument("--weak-tokenizer", metavar="DIR", help="weak model's tokenizer (default: the "
                   "server's model folder when local, else the chat endpoint renders)")
    p.add_argument("--strong-tokenizer", metavar="DIR", help="strong model's tokenizer")
    p.add_argument("--api", choices=("auto", "completions", "chat"), default="auto",
                   help="completions: render prompts here with the tokenizer; chat: the server "
                   "renders them; auto: completions when a tokenizer is found")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    p.add_argument("--retries", type=int, default=3, help="retries per request")
    p.add_argument("--score-strong-steps", action="store_true",
                   help="pass the strong step's PRM score to the router (release: off)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the problems recorded as failed again")
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


def run(args: argparse.Namespace) -> int:
    apply_config_file(args, add_arguments, "run")
    for name in ("weak", "policy", "out"):
        if not getattr(args, name):
            raise InputError(f"--{name} is required (or {name} = ... in --config).", field=name)
    cfg = LiveRunConfig(
        weak_url=args.weak, strong_url=args.strong, prm=args.prm, policy=args.policy,
        model=args.model, dataset=args.dataset, task=args.task, limit=args.limit,
        concurrency=args.concurrency,
        server_concurrency=args.server_concurrency or args.concurrency, max_steps=args.max_steps,
        max_step_tokens=args.max_step_tokens, temperature=args.temperature, top_p=args.top_p,
        top_k=args.top_k, seed=args.seed, weak_tokenizer=args.weak_tokenizer,
        strong_tokenizer=args.strong_tokenizer, api=args.api, timeout=args.timeout,
        retries=args.retries, score_strong_steps=args.score_strong_steps)
    problems = read_problems(_dataset_path(args.dataset))

    def progress(rec: dict) -> None:
        status = rec["status"] if rec["status"] != "ok" else f"ok correct={rec.get('correct')}"
        print(f"{rec['problem_id']}: {status} steps={rec.get('n_steps', '-')} "
              f"strong_tokens={rec.get('strong_tokens', '-')}"
              + (f" reason={rec['reason']}" if rec["status"] != "ok" else ""), file=sys.stderr)

    summary = asyncio.run(run_live(problems, cfg, Path(args.out), retry_failed=args.retry_failed,
                                   on_record=progress))
    print(json.dumps(summary, indent=1))
    return 0
