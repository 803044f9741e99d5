"""`trimpomdp simulate`: run one routing policy on the calibrated simulator."""
from __future__ import annotations

import argparse
import json

from trimpomdp.model import load_model
from trimpomdp.routing.spec import make_router
from trimpomdp.sim import NaiveSimulator, load_simulator, simulate


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, help="thr:K | pomdp:FILE|λ | pomdp-filter:FILE|λ "
                   "| agg:CKPT | seq:CKPT | weak | strong | random:P | query:K | oracle")
    p.add_argument("--n", type=int, default=2000, help="problems to simulate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="TRIM model file for POMDP specs (default: bundled)")
    p.add_argument("--observe-regenerated", action="store_true",
                   help="pass each strong step's PRM score to the router (the release does not)")
    p.add_argument("--naive", action="store_true", help="use the POMDP itself as simulator")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:

    model = load_model(args.model)
    sim = NaiveSimulator(model) if args.naive else load_simulator()
    sc = sim.scenario(args.n, args.seed)
    strong = simulate(make_router("strong", record=False), sc).mean_strong_tokens
    res = simulate(make_router(args.policy, model, record=False), sc,
                   observe_regenerated=args.observe_regenerated)
    out = {"spec": args.policy, "seed": args.seed, "simulator": sc.source,
           **res.summary(strong_only_tokens=strong)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['policy']}: accuracy {out['accuracy']:.3f} ± {out['accuracy_se']:.3f}, "
              f"{out['mean_strong_tokens']:.1f} strong tokens/problem, strong-token share "
              f"{out['strong_share']:.3f} of strong-only (target_token_frac "
              f"{out['target_token_frac']:.3f}), n={out['n']}")
    return 0
