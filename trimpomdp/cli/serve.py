"""``trimpomdp serve``: OpenAI-compatible server doing step-routed generation (see docs/serve.md).

Runs until SIGINT/SIGTERM, then stops listening and finishes the requests in flight.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weak", required=True, metavar="URL", help="weak model server (OpenAI API)")
    p.add_argument("--strong", metavar="URL", help="strong model server (OpenAI API)")
    p.add_argument("--prm", metavar="URL", help="vLLM /pooling PRM server")
    p.add_argument("--policy", default="thr:0.5", metavar="SPEC",
                   help="default routing policy: thr:K, pomdp:FILE|λ, pomdp-filter:FILE|λ, agg:CKPT,"
                   " weak, strong, ... (default thr:0.5); requests may override the budget")
    p.add_argument("--model", metavar="FILE", help="TRIM model file for POMDP policies and "
                   "per-request budgets (default: the bundled model)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default="trimpomdp", metavar="NAME",
                   help="the model id clients send (default trimpomdp)")
    p.add_argument("--upstream-concurrency", type=int, default=16, metavar="N",
                   help="requests in flight per upstream server (default 16)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per upstream request")
    p.add_argument("--retries", type=int, default=2, help="retries per upstream request")
    p.add_argument("--shutdown-timeout", type=float, default=60.0,
                   help="seconds in-flight requests get to finish on SIGTERM (default 60)")
    p.add_argument("--max-steps", type=int, default=30)
    p.add_argument("--max-step-tokens", type=int, default=2048)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--api", choices=("auto", "completions", "chat"), default="auto",
                   help="how prompts reach the upstream servers (see `trimpomdp run`)")
    p.add_argument("--weak-tokenizer", metavar="DIR")
    p.add_argument("--strong-tokenizer", metavar="DIR")
    p.add_argument("--budget-sim-problems", type=int, default=2000, metavar="N",
                   help="simulated problems per bisection step for strong_token_share budgets")
    p.add_argument("--skip-upstream-check", action="store_true",
                   help="start even if an upstream server does not answer yet")
    p.add_argument("--log-level", default="WARNING",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def config_from_args(args: argparse.Namespace):
    """The :class:`~trimpomdp.serve.ServeConfig` of parsed arguments (raises InputError)."""
    from trimpomdp.serve.config import ServeConfig

    return ServeConfig(
        weak_url=args.weak, strong_url=args.strong, prm_url=args.prm, policy=args.policy,
        model=args.model, served_model_name=args.served_model_name, host=args.host,
        port=args.port, upstream_concurrency=args.upstream_concurrency, timeout=args.timeout,
        retries=args.retries, shutdown_timeout=args.shutdown_timeout, max_steps=args.max_steps,
        max_step_tokens=args.max_step_tokens, temperature=args.temperature, top_p=args.top_p,
        top_k=args.top_k, api=args.api, weak_tokenizer=args.weak_tokenizer,
        strong_tokenizer=args.strong_tokenizer, budget_sim_problems=args.budget_sim_problems,
        check_upstream=not args.skip_upstream_check)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from trimpomdp.errors import InputError

    cfg = config_from_args(args)
    try:
        from trimpomdp.serve.app import serve_forever
    except ModuleNotFoundError as exc:
        raise InputError(f"trimpomdp serve needs '{exc.name}' (pip install "
                         "'trimpomdp[live]')") from None
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call otherwise
    asyncio.run(serve_forever(cfg))
    return 0
