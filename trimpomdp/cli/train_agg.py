"""`trimpomdp train-agg`: train a TRIM-Agg (or --seq: TRIM-Seq) PPO policy in the simulator."""
from __future__ import annotations

import argparse
import json

from trimpomdp._validate import check_number, check_output_path
from trimpomdp.cli.solve import LAMBDA_MAX
from trimpomdp.routing.learned import load_learned_rule
from trimpomdp.training.ppo import PPOConfig, train_ppo


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lambda", dest="lam", type=float, required=True,
                   help="cost per strong token (reward 100 per correct answer, as the POMDP)")
    p.add_argument("--out", required=True, help="checkpoint file (JSON)")
    p.add_argument("--iterations", type=int, default=150, help="PPO iterations")
    p.add_argument("--episodes", type=int, default=512, help="episodes per PPO iteration")
    p.add_argument("--seed", type=int, default=0, help="random seed (integer >= 0)")
    p.add_argument("--seq", action="store_true", help="train TRIM-Seq (GRU) instead")
    p.add_argument("--init", metavar="CKPT", help="warm-start from a trained checkpoint of the "
                   "same kind (e.g. a smaller λ's): from scratch PPO tends to collapse to "
                   "weak-only at high λ")
    p.add_argument("--observe-regenerated", action=argparse.BooleanOptionalAction, default=True,
                   help="book each strong step's PRM score into the min / product features, as "
                   "the release's loop and `trimpomdp run` (--score-strong-steps) do (default: "
                   "on; off: a regenerated step counts 1.0)")


def run(args: argparse.Namespace) -> int:
    """Check the options and the output path first (training takes minutes), then train."""
    check_number(args.lam, "--lambda", lo=0.0, hi=LAMBDA_MAX, field="lambda")
    check_number(args.seed, "--seed", lo=0, integer=True, field="seed")
    check_output_path(args.out, suffixes=(".json",))
    cfg = PPOConfig(lam=args.lam, iterations=args.iterations, episodes_per_iter=args.episodes,
                    seed=args.seed, observe_regenerated=args.observe_regenerated)
    kind = "seq" if args.seq else "agg"
    init = load_learned_rule(args.init, expect=kind) if args.init else None
    pol = train_ppo(kind, args.lam, config=cfg, progress=True, init=init)
    pol.save(args.out)
    last = pol.w.info["curve"][-1]
    print(json.dumps({"out": args.out, "policy": pol.name, "episodes": pol.w.info["episodes"],
                      "seconds": round(pol.w.info["seconds"], 1), "last_iteration": last}))
    return 0
