"""Overhead of the live TRIM loop over plain weak-only generation, on the same servers and problems.

Runs the problems one at a time (no concurrency, greedy decoding) twice: weak-only generation
(no PRM, no router) and the TRIM loop (weak draft → PRM → router → strong rewrite). The routing
and switching overhead is the TRIM loop's wall time minus the time spent on strong tokens and
minus what its weak tokens cost at the weak-only rate (s per weak token); its share is taken of
the TRIM wall time without the strong calls. The PRM's own time is reported inside and apart.

Start the servers first (``python tests/generation/servers.py serve ...``, with and without
``--no-prefix-caching``) and run this once per setting with a ``--label``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from trimpomdp.data.problems import read_problems
from trimpomdp.generation.loop import LoopConfig, router_factory, solve_problem
from trimpomdp.generation.openai_compat import OpenAICompletionsBackend
from trimpomdp.generation.prm_vllm import VLLMPoolingPRM
from trimpomdp.generation.prompting import generation_messages
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.resources import shared_data_dir


async def measure(args: argparse.Namespace) -> dict:
    path = Path(args.dataset) if args.dataset else shared_data_dir() / "math500" / "test.jsonl"
    problems = read_problems(path)[args.offset: args.offset + args.n]
    weak = OpenAICompletionsBackend(args.weak, name="weak", concurrency=1)
    strong = OpenAICompletionsBackend(args.strong, name="strong", concurrency=1)
    prm = VLLMPoolingPRM(args.prm, concurrency=1)
    cfg = LoopConfig(max_steps=args.max_steps, sampling=SamplingParams(
        temperature=0.0, max_tokens=args.max_step_tokens, seed=0))
    factory = router_factory(args.policy)
    for b in (weak, strong):  # warm up (first requests are slow)
        await b.generate_step(generation_messages("1+1?", []), stop=["\n\n"],
                              sampling=SamplingParams(max_tokens=4))
    await prm.score_steps("1+1?", ["2"])
    out: dict = {"label": args.label, "policy": args.policy, "problems": len(problems),
                 "max_steps": args.max_steps, "max_step_tokens": args.max_step_tokens}
    recs: dict[str, list[dict]] = {"weak_only": [], "trim": []}
    for p in problems:  # interleaved, so that load from other jobs hits both modes alike
        recs["weak_only"].append(await solve_problem(p, weak, None, None, None, cfg))
        recs["trim"].append(await solve_problem(p, weak, strong, prm, factory(), cfg))
    for mode, rs in recs.items():
        tim = {k: sum(r["timing"][k] for r in rs) for k in rs[0]["timing"]}
        out[mode] = {"wall_s": tim["total_s"], **tim,
                     "weak_tokens": sum(r["weak_tokens"] for r in rs),
                     "strong_tokens": sum(r["strong_tokens"] for r in rs),
                     "steps": sum(r["n_steps"] for r in rs),
                     "regenerated": sum(r["n_regenerated"] for r in rs)}
    w, t = out["weak_only"], out["trim"]
    rate = w["weak_s"] / max(1, w["weak_tokens"])  # s per weak token, weak-only
    base = t["wall_s"] - t["strong_s"]
    expected_weak = rate * t["weak_tokens"]
    overhead = base - expected_weak
    out["weak_s_per_token"] = rate
    out["overhead_s"] = overhead
    out["overhead_share"] = overhead / base
    out["overhead_share_excl_prm"] = (overhead - t["prm_s"]) / base
    # the loop's own cost, free of generation-speed noise: PRM + routing + bookkeeping
    direct = t["wall_s"] - t["weak_s"] - t["strong_s"]
    out["direct_overhead_share"] = direct / base
    out["direct_overhead_share_excl_prm"] = (direct - t["prm_s"]) / base
    out["breakdown_share"] = {"prm": t["prm_s"] / base, "route": t["route_s"] / base,
                              "weak_beyond_rate": (t["weak_s"] - expected_weak) / base,
                              "loop_bookkeeping": (t["wall_s"] - t["weak_s"] - t["strong_s"]
                                                   - t["prm_s"] - t["route_s"]) / base}
    for c in (weak, strong, prm):
        await c.aclose()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weak", required=True)
    ap.add_argument("--strong", required=True)
    ap.add_argument("--prm", required=True)
    ap.add_argument("--policy", default="thr:0.5")
    ap.add_argument("--dataset", help="problems JSONL (default: shared MATH-500)")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--max-step-tokens", type=int, default=48)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", help="append the result as one JSON line to this file")
    args = ap.parse_args(argv)
    res = asyncio.run(measure(args))
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
