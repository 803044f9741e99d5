"""`trimpomdp export-pomdp`: one TRIM instance from a start (t, n, b) as a Cassandra file."""
from __future__ import annotations

import argparse
import json

from trimpomdp.cli._common import parse_belief
from trimpomdp.model import load_model
from trimpomdp.pomdp.cassandra import write_cassandra
from trimpomdp.pomdp.trim import TrimPOMDP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lambda", dest="lam", type=float, required=True)
    p.add_argument("--model", default=None, help="TRIM model JSON (default: bundled model)")
    p.add_argument("--step", type=int, default=0)
    p.add_argument("--tokens", type=float, default=60.0)
    p.add_argument("--belief", default="1,0,0", help="p0,p1,p2 over (S0, S1, S2)")
    p.add_argument("--final", action="store_true", help="start on the final step")
    p.add_argument("--out", required=True, help="output .pomdp file")


def run(args: argparse.Namespace) -> int:

    pomdp = TrimPOMDP(model=load_model(args.model), lam=args.lam)
    tab = pomdp.to_tabular(args.step, args.tokens, parse_belief(args.belief), final=args.final)
    write_cassandra(tab, args.out)
    print(json.dumps({"out": args.out, "states": tab.n_states, "observations":
                      tab.n_observations}))
    return 0
