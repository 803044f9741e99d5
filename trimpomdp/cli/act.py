"""`trimpomdp act`: one JSON line with the action and Q-values of a policy at (step, tokens, b)."""
from __future__ import annotations

import argparse
import json

from trimpomdp.cli._common import parse_belief
from trimpomdp.policies.trim_policy import TrimPolicy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, help="policy file from `trimpomdp solve`")
    p.add_argument("--step", type=int, required=True, help="0-based step index")
    p.add_argument("--tokens", type=float, required=True, help="tokens of the current step")
    p.add_argument("--belief", required=True, help="p0,p1,p2 over (S0, S1, S2)")
    p.add_argument("--final", action="store_true", help="the current step is the last one")


def run(args: argparse.Namespace) -> int:

    belief = parse_belief(args.belief)
    policy = TrimPolicy.load(args.policy)
    q = policy.q_values(args.step, args.tokens, belief, final=args.final)
    print(json.dumps({"action": "regenerate" if q[1] > q[0] else "continue",
                      "q": [float(q[0]), float(q[1])]}))
    return 0
