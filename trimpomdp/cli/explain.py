"""`trimpomdp explain`: draw a policy's continue/regenerate regions on the belief simplex (PNG)."""
from __future__ import annotations

import argparse
import json

from trimpomdp.errors import InputError
from trimpomdp.evaluation.simplex import plot_policy_map
from trimpomdp.policies.trim_policy import TrimPolicy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, help="policy file from `trimpomdp solve`")
    p.add_argument("--step", type=int, required=True, help="0-based step index")
    p.add_argument("--tokens", default="30,60,120,240", help="comma list of token counts")
    p.add_argument("--final", action="store_true", help="draw the final-step rule")
    p.add_argument("--out", default=None, help="PNG path (default policy_map_step<T>.png)")


def run(args: argparse.Namespace) -> int:

    try:
        tokens = [float(x) for x in args.tokens.split(",")]
    except ValueError:
        raise InputError(f"--tokens must be a comma list of numbers. Got {args.tokens!r} instead.",
                         field="tokens") from None
    policy = TrimPolicy.load(args.policy)
    policy.pomdp.check_query(args.step, min(tokens), [1, 0, 0])
    out = args.out or f"policy_map_step{args.step}.png"
    plot_policy_map(policy, args.step, tokens, out=out, final=args.final)
    print(json.dumps({"out": out}))
    return 0
