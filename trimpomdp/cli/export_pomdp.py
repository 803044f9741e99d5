"""`trimpomdp export-pomdp`: one TRIM instance from a start (t, n, b) as a Cassandra file."""
from __future__ import annotations

import argparse
import json

from trimpomdp._validate import check_number, check_output_path
from trimpomdp.cli._common import parse_belief
from trimpomdp.cli.solve import LAMBDA_MAX
from trimpomdp.model import load_model
from trimpomdp.pomdp.cassandra import write_cassandra
from trimpomdp.pomdp.trim import TrimPOMDP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lambda", dest="lam", type=float, required=True,
                   help="cost per strong token (R = 100)")
    p.add_argument("--model", default=None, help="TRIM model JSON (default: bundled model)")
    p.add_argument("--step", type=int, default=0, help="0-based step the instance starts at")
    p.add_argument("--tokens", type=float, default=60.0, help="tokens of the current step")
    p.add_argument("--belief", default="1,0,0", help="p0,p1,p2 over (S0, S1, S2)")
    p.add_argument("--final", action="store_true", help="start on the final step")
    p.add_argument("--out", required=True, help="output .pomdp file")


def run(args: argparse.Namespace) -> int:

    lam = check_number(args.lam, "--lambda", lo=0.0, hi=LAMBDA_MAX, field="lambda")
    check_number(args.tokens, "--tokens", lo=0.0, lo_open=True, hi=1e9, field="tokens")
    check_output_path(args.out, suffixes=(".pomdp",))
    pomdp = TrimPOMDP(model=load_model(args.model), lam=lam)
    tab = pomdp.to_tabular(args.step, args.tokens, parse_belief(args.belief), final=args.final)
    write_cassandra(tab, args.out)
    print(json.dumps({"out": args.out, "states": tab.n_states, "observations":
                      tab.n_observations}))
    return 0
