"""`trimpomdp demo`: a quick tour on the bundled defaults (no ../shared, no GPU, no servers).

Solves the release's Qwen2.5-1.5B → 7B TRIM POMDP for a few λ, prints the policy at some beliefs
and replays real PRM-score traces (bundled MATH-500 sample) through the belief-tracking router.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from trimpomdp.cli._common import parse_lambdas
from trimpomdp.data import read_traces
from trimpomdp.evaluation.simplex import plot_policy_map
from trimpomdp.model import load_model
from trimpomdp.policies.policy_set import solve_sweep
from trimpomdp.resources import resource_path
from trimpomdp.routing.spec import pomdp_router


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lambdas", default="0.1,0.25,0.5", help="comma list of λ to solve")
    p.add_argument("--out", default=None, help="optional folder for the policies and a map PNG")
    p.add_argument("--json", action="store_true", help="print one JSON summary instead of text")


def run(args: argparse.Namespace) -> int:

    model = load_model()
    pset = solve_sweep(model, parse_lambdas(args.lambdas), progress=False)
    traces = read_traces(resource_path("data", "strictprmbench_sample/"
                                       "math500_qwen2.5-7b_qwen-prm_sample.jsonl"))
    replay = []
    for pol in pset.policies:
        router = pomdp_router(pol, belief="filter", record=False)
        flagged: dict[bool, list[float]] = {True: [], False: []}
        for tr in traces:
            router.reset()
            n = min(tr.n_steps, model.max_steps)
            acts = [int(router.decide(tr.scores[t], tr.tokens[t], t, final=(t == n - 1)).action)
                    for t in range(n)]
            flagged[bool(tr.correct)].append(float(np.mean(acts)))
        replay.append({"lambda": pol.lam, "regen_share_correct": float(np.mean(flagged[True])),
                       "regen_share_incorrect": float(np.mean(flagged[False]))})
    if args.out:

        pset.save(args.out)
        plot_policy_map(pset.policies[0], 5, out=f"{args.out}/policy_map_step5.png")
    summary = {"model": model.name, "solves": list(pset.summary), "replay": replay,
               "n_traces": len(traces)}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"TRIM-POMDP on {model.name} (p_w={model.p_weak:.4f}, p_s={model.p_strong:.4f})")
    print("λ      solve s  alphas  V(t=0,S0)  regenerate share (belief grid)")
    for r in pset.summary:
        print(f"{r['lambda']:<6g} {r['seconds']:<8.3f} {r['alpha_vectors']:<7d} "
              f"{r['value_t0']:<10.3f} {r['regen_share_grid']:.3f}")
    print(f"\nReplay of {len(traces)} real Qwen2.5-Math-PRM-7B score traces (MATH-500, Bayes "
          "filter): share of steps the policy would regenerate")
    for r in replay:
        print(f"λ={r['lambda']:<6g} correct solutions {r['regen_share_correct']:.3f}   "
              f"incorrect solutions {r['regen_share_incorrect']:.3f}")
    print("\nNext: trimpomdp solve --lambda 0.25 --out policy.json; trimpomdp act --policy "
          "policy.json --step 3 --tokens 60 --belief 0.2,0.1,0.7")
    return 0
