"""``trimpomdp serve``: OpenAI-compatible server doing step-routed generation (see docs/serve.md).

Runs until SIGINT/SIGTERM, then stops listening and finishes the requests in flight.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

from trimpomdp.cli._config import DefaultsHelpFormatter, apply_config_file, json_object
from trimpomdp.cli._upstream import add_model_arguments
from trimpomdp.errors import InputError
from trimpomdp.generation._http import AFFINITY_HEADER
from trimpomdp.generation.wiring import UpstreamSettings
from trimpomdp.serve.config import API_KEY_ENV, ServeConfig


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _ServeConfig(ServeConfig):
    """:class:`ServeConfig` plus the upstream backend choice and the affinity header (kept in
    the CLI: the serve package's config is another part's; ``upstream_settings`` carries them)."""

    backend: str = "http"
    engine_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    affinity_header: str | None = AFFINITY_HEADER

    def upstream_settings(self) -> UpstreamSettings:
        base = ServeConfig.upstream_settings(self) if self.backend == "http" else None
        if base is not None:
            return dataclasses.replace(base, affinity_header=self.affinity_header)
        return UpstreamSettings(
            weak_url=self.weak_url, strong_url=self.strong_url, prm=self.prm_url, api=self.api,
            weak_tokenizer=self.weak_tokenizer, strong_tokenizer=self.strong_tokenizer,
            timeout=self.timeout, retries=self.retries, concurrency=self.upstream_concurrency,
            api_key=self.upstream_api_key, backend=self.backend, engine_args=self.engine_args,
            affinity_header=self.affinity_header)


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in text.split(",") if o.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = DefaultsHelpFormatter
    up = p.add_argument_group("upstream servers")
    add_model_arguments(up)
    up.add_argument("--upstream-concurrency", type=int, default=16, metavar="N",
                    help="requests in flight per upstream server")
    up.add_argument("--timeout", type=float, default=300.0, help="seconds per upstream request")
    up.add_argument("--retries", type=int, default=2, help="retries per upstream request")
    up.add_argument("--upstream-api-key", metavar="KEY", help="bearer token sent upstream")
    up.add_argument("--skip-upstream-check", action="store_true",
                    help="start even if an upstream server does not answer yet")
    ro = p.add_argument_group("routing")
    ro.add_argument("--policy", default="thr:0.5", metavar="SPEC",
                    help="default routing policy: thr:K, pomdp:FILE|λ, pomdp-filter:FILE|λ, "
                    "agg:CKPT, seq:CKPT, query:K, random:P, weak, strong; requests may override "
                    "the budget")
    ro.add_argument("--model", metavar="FILE", help="TRIM model file for POMDP policies and "
                    "per-request budgets (default: the bundled model)")
    ro.add_argument("--task", default="math", metavar="NAME|FILE.toml", help="task profile: "
                    "math (the release's), general, thinking, or a profile file (docs/serve.md)")
    ro.add_argument("--max-steps", type=int, default=None,
                    help="most steps per answer (default: the task profile's, 30 for math, within the "
                    "policy's horizon)")
    ro.add_argument("--max-step-tokens", type=int, default=2048, help="most tokens per step")
    ro.add_argument("--temperature", type=float, default=0.7)
    ro.add_argument("--top-p", type=float, default=0.8)
    ro.add_argument("--top-k", type=int, default=20)
    ro.add_argument("--budget-sim-problems", type=int, default=2000, metavar="N",
                    help="simulated problems per bisection step for strong_token_share budgets")
    ro.add_argument("--target-share", type=float, default=None, metavar="S",
                    help="closed loop: requests without a budget hold this strong-token share "
                    "(strong / strong-only tokens) over the recent --target-window requests, by "
                    "moving λ (docs/serve.md); overrides --policy for them")
    ro.add_argument("--target-window", type=int, default=100, metavar="N",
                    help="closed loop: requests in the sliding window of the realised share")
    sv = p.add_argument_group("server")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sv.add_argument("--port", type=int, default=8000, help="port to listen on")
    sv.add_argument("--served-model-name", default="trimpomdp", metavar="NAME",
                    help="the model id clients send (NAME-lambda-L and NAME-share-S set budgets)")
    sv.add_argument("--api-key", metavar="KEY", default=None,
                    help="require 'Authorization: Bearer KEY' on /v1/* (default: the "
                    "TRIMPOMDP_API_KEY environment variable; unset: open)")
    sv.add_argument("--allowed-origins", type=_origins, default=(), metavar="ORIGINS",
                    help="comma-separated origins allowed by CORS, or '*'")
    sv.add_argument("--sse-keepalive", type=float, default=5.0, metavar="S",
                    help="seconds between SSE keep-alive comments while a step is drafted")
    sv.add_argument("--max-n", type=int, default=8, help="largest 'n' per request")
    sv.add_argument("--shutdown-timeout", type=float, default=60.0,
                    help="seconds in-flight requests get to finish on SIGTERM")
    sv.add_argument("--log-level", default="WARNING",
                    choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                    help="INFO adds one access-log line per request")
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file (keys: "
                   "the long options, e.g. weak = \"http://...\", max_steps = 20); options given on "
                   "the command line win")


def config_from_args(args: argparse.Namespace):
    """The :class:`~trimpomdp.serve.ServeConfig` of parsed arguments (raises InputError)."""
    apply_config_file(args, add_arguments, "serve")
    if not args.weak:
        raise InputError("a weak model server is required: pass --weak URL (or weak = \"URL\" in "
                         "--config).", field="weak")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    engine_args = json_object(args.engine_args, "engine_args")
    if engine_args is not None and args.backend != "vllm-inprocess":
        raise InputError("--engine-args is for --backend vllm-inprocess.", field="engine_args")
    return _ServeConfig(
        backend=args.backend, engine_args=engine_args or {},
        affinity_header=args.affinity_header or None,
        weak_url=args.weak, strong_url=args.strong, prm_url=args.prm, policy=args.policy,
        model=args.model, served_model_name=args.served_model_name, host=args.host,
        port=args.port, upstream_concurrency=args.upstream_concurrency, timeout=args.timeout,
        retries=args.retries, shutdown_timeout=args.shutdown_timeout, max_steps=args.max_steps,
        task=args.task,
        max_step_tokens=args.max_step_tokens, temperature=args.temperature, top_p=args.top_p,
        top_k=args.top_k, api=args.api, weak_tokenizer=args.weak_tokenizer,
        strong_tokenizer=args.strong_tokenizer, budget_sim_problems=args.budget_sim_problems,
        check_upstream=not args.skip_upstream_check, api_key=api_key,
        allowed_origins=tuple(args.allowed_origins), sse_keepalive=args.sse_keepalive,
        max_n=args.max_n, upstream_api_key=args.upstream_api_key,
        target_share=args.target_share, target_window=args.target_window)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        from trimpomdp.serve.app import serve_forever
    except ModuleNotFoundError as exc:
        raise InputError(f"trimpomdp serve needs '{exc.name}' (pip install "
                         "'trimpomdp[live]')") from None
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call otherwise
    logging.getLogger("trimpomdp.serve.access").setLevel(args.log_level)
    asyncio.run(serve_forever(cfg))
    return 0
