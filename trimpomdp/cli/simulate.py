"""`trimpomdp simulate`: run one routing policy on the calibrated simulator."""
from __future__ import annotations

import argparse
import json

from trimpomdp._validate import check_number
from trimpomdp.errors import InputError
from trimpomdp.model import load_model
from trimpomdp.routing.spec import PolicySpec
from trimpomdp.sim.calibrated import CalibratedSimulator, load_simulator
from trimpomdp.sim.engine import simulate
from trimpomdp.sim.naive import NaiveSimulator
from trimpomdp.sim.release_rule import OBSERVE_STRONG_SCORES, release_factory
from trimpomdp.tuning import is_bundled, simulator_for


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, help="thr:K | pomdp:FILE|λ | pomdp-filter:FILE|λ "
                   "| agg:CKPT | seq:CKPT | weak | strong | random:P | query:K | oracle")
    p.add_argument("--n", type=int, default=2000, help="problems to simulate")
    p.add_argument("--seed", type=int, default=0, help="scenario seed (integer >= 0)")
    p.add_argument("--model", help="TRIM model file for POMDP specs (default: bundled)")
    p.add_argument("--observe-regenerated", action=argparse.BooleanOptionalAction, default=True,
                   help="pass each strong step's PRM score to the router, so it enters the min "
                   "of previous scores, as the release's loop and `trimpomdp run` do (default: "
                   "on; --no-observe-regenerated counts a regenerated step as 1.0)")
    p.add_argument("--release-rule", action="store_true",
                   help="pomdp:FILE|λ with the release's exact runtime rule (reflected KDE, "
                        "0.4 gate, snapped table lookup, strong steps' scores in the min); "
                        "the model the release's curve was measured with")
    p.add_argument("--naive", action="store_true", help="use the POMDP itself as simulator")
    p.add_argument("--simulator", choices=("auto", "calibrated", "naive"), default="auto",
                   help="auto: the calibrated MATH-500 simulator for the bundled model, the "
                        "loaded model itself as simulator for any other")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:

    check_number(args.n, "--n", lo=1, hi=10_000_000, integer=True, field="n")
    check_number(args.seed, "--seed", lo=0, integer=True, field="seed")
    spec = PolicySpec.parse(args.policy)
    model = load_model(args.model)
    kind = "naive" if args.naive else args.simulator
    if kind == "auto":
        sim: CalibratedSimulator | NaiveSimulator = simulator_for(model)[0]
    else:
        sim = NaiveSimulator(model) if kind == "naive" else load_simulator()
    sc = sim.scenario(args.n, args.seed)
    strong = simulate(PolicySpec.parse("strong").factory(model, record=False), sc).mean_strong_tokens
    if args.release_rule:
        if spec.kind != "pomdp":
            raise InputError(f"--release-rule needs a pomdp:FILE|λ policy. Got "
                             f"{args.policy!r} instead.", field="policy")
        # the release's reflected KDE belongs to the bundled model; any other model keeps its
        # own (binned, continuous) density under the same gate and table lookup
        density = "kde" if is_bundled(model) else "continuous"
        make = release_factory(spec.solved_policy(model), density=density)
        res = simulate(make, sc, observe_regenerated=OBSERVE_STRONG_SCORES)
    else:
        res = simulate(spec.factory(model, record=False), sc,
                       observe_regenerated=args.observe_regenerated)
    out = {"spec": args.policy, "seed": args.seed, "simulator": sc.source,
           "rule": "release" if args.release_rule else "router",
           **res.summary(strong_only_tokens=strong)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['policy']}: accuracy {out['accuracy']:.3f} ± {out['accuracy_se']:.3f}, "
              f"{out['mean_strong_tokens']:.1f} strong tokens/problem, strong-token share "
              f"{out['strong_share']:.3f} of strong-only (target_token_frac "
              f"{out['target_token_frac']:.3f}), n={out['n']}")
    return 0
