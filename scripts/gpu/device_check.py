"""Short device check of the live loop on GPU servers (scripts/gpu/launch.sh). UNTESTED ON A GPU.

    python scripts/gpu/device_check.py --urls runs/gpu-servers/urls.json [--problems 32]
    python scripts/gpu/device_check.py --inprocess MODELS_DIR [--problems 32]   # no servers

1. The PRM server pools the last token (mode "last") and each new step is served from the prefix
   cache: PRM prompt tokens computed per problem (vLLM's /metrics) against one pass.
2. Throughput, weak-only generation vs the TRIM loop (weak draft -> PRM -> threshold router ->
   strong rewrite) on the same servers and problems, interleaved in rounds so that load drifts
   hit both alike: decoded tokens per second and problems per second.

With ``--inprocess MODELS_DIR`` (``weak/``, ``strong/``, ``prm/`` folders) step 2 runs on the
in-process backend instead (``--backend vllm-inprocess``: three AsyncLLM engines in this process,
memory fractions from ``--engine-args``); step 1 is then the engine PRM's mode. Writes a JSON
report (``--out``). Problems: MATH-500 from ``shared/data/math500`` when present,
else synthetic arithmetic questions.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trimpomdp.data.problems import Problem, read_problems
from trimpomdp.generation.loop import LoopConfig, run_problems
from trimpomdp.generation.openai_compat import OpenAICompletionsBackend
from trimpomdp.generation.prm_vllm import VLLMPoolingPRM
from trimpomdp.generation.prompting import prm_messages
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.generation.runlog import RunLog
from trimpomdp.generation.wiring import UpstreamSettings, build_upstreams
from trimpomdp.routing.spec import PolicySpec

#: memory fractions of the three in-process engines on one GPU (vLLM sizes each KV cache from it)
GPU_ENGINE_ARGS = {"max_model_len": 4096, "weak": {"gpu_memory_utilization": 0.2},
                   "strong": {"gpu_memory_utilization": 0.4},
                   "prm": {"gpu_memory_utilization": 0.15}}


def computed(url: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:prompt_tokens_by_source_total{")
               and 'source="local_compute"' in line)


def problems(n: int) -> list[Problem]:
    for d in (ROOT / "shared" / "data" / "math500", ROOT.parent / "shared" / "data" / "math500"):
        if (d / "test.jsonl").exists():
            return read_problems(d / "test.jsonl")[:n]
    return [Problem(problem_id=f"s{i}", question=f"What is ${i} + {2 * i + 1}$?",
                    answer=str(3 * i + 1)) for i in range(n)]


async def prm_check(url: str, n: int = 8, steps: int = 6) -> dict:
    prm = VLLMPoolingPRM(url, cache_salt=True)
    try:
        mode = await prm.resolve_mode()
        out = []
        for i in range(n):
            q = f"Compute the sum of the first {i + 5} odd numbers."
            st = [f"Step {k}: the partial sum after {k + 1} terms is {(k + 1) ** 2}, since each "
                  f"odd number 2j - 1 adds to the square." for k in range(steps)]
            single = (await prm.http.post("/tokenize", {
                "model": await prm._model(), "messages": prm_messages(q, st),
                "add_generation_prompt": False}))["count"]
            c0 = computed(url)
            s = prm.session(q)
            for k in range(steps):
                await s.score(st[:k + 1])
            out.append((computed(url) - c0) / single)
        return {"mode": mode, "probe_note": prm.probe_note, "computed_over_single_mean":
                sum(out) / len(out), "computed_over_single_max": max(out)}
    finally:
        await prm.aclose()


async def throughput(urls: dict, probs: list[Problem], rounds: int, concurrency: int,
                     max_steps: int, max_step_tokens: int, policy: str,
                     inprocess: Path | None = None, engine_args: dict | None = None) -> dict:
    if inprocess is not None:
        up = build_upstreams(UpstreamSettings(
            weak_url=str(inprocess / "weak"), strong_url=str(inprocess / "strong"),
            prm=str(inprocess / "prm"), backend="vllm-inprocess",
            engine_args=engine_args or GPU_ENGINE_ARGS))
        await up.check()  # start the engines (not timed)
        weak, strong, prm = up.weak, up.strong, up.prm
    else:
        weak = OpenAICompletionsBackend(urls["weak"], name="weak", concurrency=concurrency)
        strong = OpenAICompletionsBackend(urls["strong"], name="strong", concurrency=concurrency)
        prm = VLLMPoolingPRM(urls["prm"], concurrency=concurrency)
    cfg = LoopConfig(max_steps=max_steps, sampling=SamplingParams(max_tokens=max_step_tokens,
                                                                  seed=0))
    factory = PolicySpec.parse(policy).factory()
    agg = {k: {"s": 0.0, "tokens": 0, "problems": 0, "strong_tokens": 0}
           for k in ("weak_only", "trim")}
    chunk = max(1, len(probs) // rounds)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                part = probs[r * chunk:(r + 1) * chunk]
                for kind in ("weak_only", "trim"):
                    recs: list[dict] = []
                    with RunLog(Path(tmp) / f"{kind}-{r}.jsonl") as log:
                        t0 = time.perf_counter()
                        await run_problems(
                            part, weak=weak, strong=strong if kind == "trim" else None,
                            prm=prm if kind == "trim" else None,
                            router_factory=factory if kind == "trim" else None, runlog=log,
                            concurrency=concurrency, config=cfg, on_record=recs.append)
                        agg[kind]["s"] += time.perf_counter() - t0
                    ok = [x for x in recs if x["status"] == "ok"]
                    agg[kind]["problems"] += len(ok)
                    agg[kind]["tokens"] += sum(x["weak_tokens"] + x["strong_tokens"] for x in ok)
                    agg[kind]["strong_tokens"] += sum(x["strong_tokens"] for x in ok)
    finally:
        for c in (weak, strong, prm):
            await c.aclose()
    for v in agg.values():
        v["tokens_per_s"] = v["tokens"] / v["s"] if v["s"] else 0.0
        v["problems_per_s"] = v["problems"] / v["s"] if v["s"] else 0.0
    agg["trim_over_weak_tokens_per_s"] = (agg["trim"]["tokens_per_s"]
                                          / max(agg["weak_only"]["tokens_per_s"], 1e-9))
    agg["trim_over_weak_problems_per_s"] = (agg["trim"]["problems_per_s"]
                                            / max(agg["weak_only"]["problems_per_s"], 1e-9))
    if inprocess is not None:
        agg["prm_mode"] = await prm.inner.resolve_mode()
    return agg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--urls", type=Path)
    ap.add_argument("--inprocess", type=Path, metavar="MODELS_DIR",
                    help="in-process backend on MODELS_DIR/{weak,strong,prm} (no servers)")
    ap.add_argument("--engine-args", type=json.loads, default=None,
                    help="in-process engine arguments (JSON; default: GPU_ENGINE_ARGS)")
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--max-step-tokens", type=int, default=64)
    ap.add_argument("--policy", default="thr:0.5")
    ap.add_argument("--out", type=Path, default=Path("device_check.json"))
    args = ap.parse_args()
    if args.inprocess is not None:
        report = {"throughput_inprocess": asyncio.run(throughput(
            {}, problems(args.problems), args.rounds, args.concurrency, args.max_steps,
            args.max_step_tokens, args.policy, inprocess=args.inprocess,
            engine_args=args.engine_args))}
        print(json.dumps(report, indent=1))
        args.out.write_text(json.dumps(report, indent=1))
        raise SystemExit(0 if report["throughput_inprocess"]["prm_mode"] == "last" else 1)
    if args.urls is None:
        ap.error("pass --urls (servers) or --inprocess MODELS_DIR")
    urls = json.loads(args.urls.read_text())
    report = {"prm": asyncio.run(prm_check(urls["prm"]))}
    print(json.dumps(report["prm"]), flush=True)
    report["throughput"] = asyncio.run(throughput(
        urls, problems(args.problems), args.rounds, args.concurrency, args.max_steps,
        args.max_step_tokens, args.policy))
    print(json.dumps(report["throughput"], indent=1))
    args.out.write_text(json.dumps(report, indent=1))
    ok = report["prm"]["mode"] == "last" and report["prm"]["computed_over_single_mean"] < 1.5
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
