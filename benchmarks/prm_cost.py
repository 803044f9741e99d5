"""PRM cost of the live loop: tokens the PRM computes per problem, old vs linear-cost scoring.

The loop scores every new step. The old protocol sends the question and all steps each time (STEP
pooling of the whole chat: vLLM never reads its prefix cache for token-wise pooling), so the PRM's
work grows with the square of the step count. The new one (``prm_incremental.open_session``)
sends, per new step, a prompt ending at that step's ``<extra_0>`` pooled at its last token: vLLM
serves the earlier steps from its prefix cache (server with the trimpomdp plugin); the
transformers PRM keeps each problem's KV cache.

Inputs: real multi-step solutions — PRM800K phase-1 test trajectories (human-rated GPT-4 steps;
``../shared/data/prm800k``), the first ``--problems`` questions with at least ``--min-steps``
steps, cut to ``--max-steps``. Each problem is scored as the loop does: after step k the scorer
gets steps[:k+1]. With ``--drafts`` a rejected draft (a lower-rated alternative step from the
same data) is scored before each step that has one, as the loop does when the router
regenerates.

Counted by vLLM itself (``/metrics``: ``vllm:prompt_tokens_by_source{source="local_compute"}``,
i.e. prompt tokens minus prefix-cache hits), read before and after each problem (problems run
one at a time; the new scorer uses one ``cache_salt`` per problem, so nothing is shared across
problems, not even the system prompt; ``--shared-cache``: one salt per run). "single pass" = the prompt tokens of one request over
the final solution. The transformers PRM counts the tokens it runs (``prefilled_tokens``).

    python benchmarks/prm_cost.py --start            # starts both PRM servers (tests/generation/servers.py)
    python benchmarks/prm_cost.py --step-url URL --last-url URL

Writes benchmarks/results/prm_cost.json and .md.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trimpomdp.generation.prm_vllm import VLLMPoolingPRM
from trimpomdp.generation.prompting import prm_messages

DATA = ROOT.parent / "shared" / "data" / "prm800k" / "phase1_test.stepwise-critic.jsonl.gz"


def load_problems(path: Path, n: int, min_steps: int, max_steps: int) -> list[dict[str, Any]]:
    """[{question, steps, drafts: {k: rejected alternative of step k}}], in file order."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    by_q: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_q[r["instruction"]].append(r)
    out = []
    for q, rs in by_q.items():
        best = max(rs, key=lambda r: len(r["responses"]))
        steps = [*best["responses"], best["next_response"]][:max_steps]
        if len(steps) < min_steps:
            continue
        drafts = {}
        for k in range(len(steps)):
            alts = [r["next_response"] for r in rs if r["responses"] == steps[:k]
                    and r["next_response"] != steps[k] and (r.get("rating") or 0) < 1]
            if alts:
                drafts[k] = alts[0]
        out.append({"question": q, "steps": steps, "drafts": drafts})
        if len(out) == n:
            break
    return out


def calls(problem: dict[str, Any], drafts: bool) -> list[list[str]]:
    """The scorer's inputs in loop order (a rejected draft first where one is scored)."""
    out, steps = [], problem["steps"]
    for k in range(len(steps)):
        if drafts and k in problem["drafts"]:
            out.append([*steps[:k], problem["drafts"][k]])
        out.append(steps[:k + 1])
    return out


def computed_tokens(url: str) -> tuple[float, float]:
    """(prompt tokens computed, prompt tokens served from the prefix cache) so far."""
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    got = {"local_compute": 0.0, "local_cache_hit": 0.0}
    for line in text.splitlines():
        if line.startswith("vllm:prompt_tokens_by_source_total{"):
            for k in got:
                if f'source="{k}"' in line:
                    got[k] += float(line.rsplit(" ", 1)[1])
    return got["local_compute"], got["local_cache_hit"]


async def single_pass(prm: VLLMPoolingPRM, question: str, steps: list[str]) -> int:
    doc = await prm.http.post("/tokenize", {"model": await prm._model(),
                                            "messages": prm_messages(question, steps),
                                            "add_generation_prompt": False})
    return int(doc["count"])


async def run_vllm(problems: list[dict[str, Any]], step_url: str, last_url: str,
                   drafts: bool, salt: bool | str = True) -> list[dict[str, Any]]:
    old = VLLMPoolingPRM(step_url, mode="step")
    new = VLLMPoolingPRM(last_url, cache_salt=salt)
    assert await new.resolve_mode() == "last", new.probe_note
    await old.score_steps("warm-up", ["one step"])
    out = []
    try:
        for i, p in enumerate(problems):
            q = p["question"]
            single = await single_pass(old, q, p["steps"])
            c0 = computed_tokens(step_url)
            r0 = old.requests
            t0 = time.perf_counter()
            old_scores = [await old.score_steps(q, c) for c in calls(p, drafts)]
            t_old = time.perf_counter() - t0
            c1 = computed_tokens(step_url)
            n0 = computed_tokens(last_url)
            s = new.session(q)
            rn = new.requests
            t0 = time.perf_counter()
            new_scores = [await s.score(c) for c in calls(p, drafts)]
            t_new = time.perf_counter() - t0
            n1 = computed_tokens(last_url)
            await s.aclose()
            diff = max(abs(a - b) for x, y in zip(old_scores, new_scores, strict=True)
                       for a, b in zip(x, y, strict=True))
            rec = {"problem": i, "steps": len(p["steps"]), "calls": len(calls(p, drafts)),
                   "single_pass": single, "old_computed": c1[0] - c0[0],
                   "old_cache_hits": c1[1] - c0[1], "new_computed": n1[0] - n0[0],
                   "new_cache_hits": n1[1] - n0[1], "old_requests": old.requests - r0,
                   "new_requests": new.requests - rn, "old_s": t_old, "new_s": t_new,
                   "max_abs_score_diff": diff}
            out.append(rec)
            print(json.dumps(rec), flush=True)
    finally:
        await old.aclose()
        await new.aclose()
    return out


def run_hf(problems: list[dict[str, Any]], prm_dir: Path, drafts: bool) -> list[dict[str, Any]]:
    from trimpomdp.generation.prm_hf import HFLocalPRM

    old, new = HFLocalPRM(prm_dir), HFLocalPRM(prm_dir)
    out = []
    for i, p in enumerate(problems):
        q = p["question"]
        single = len(old._load()[0](old._load()[0].apply_chat_template(
            prm_messages(q, p["steps"]), tokenize=False), add_special_tokens=False)["input_ids"])
        a0, b0 = old.prefilled_tokens, new.prefilled_tokens
        t0 = time.perf_counter()
        old_scores = [old.score_sync(q, c) for c in calls(p, drafts)]
        t_old = time.perf_counter() - t0
        s = new.session(q)
        t0 = time.perf_counter()
        new_scores = [s.score_sync(c) for c in calls(p, drafts)]
        t_new = time.perf_counter() - t0
        diff = max(abs(a - b) for x, y in zip(old_scores, new_scores, strict=True)
                   for a, b in zip(x, y, strict=True))
        out.append({"problem": i, "steps": len(p["steps"]), "single_pass": single,
                    "old_computed": old.prefilled_tokens - a0,
                    "new_computed": new.prefilled_tokens - b0, "old_s": t_old, "new_s": t_new,
                    "max_abs_score_diff": diff, "scores": new_scores[-1]})
    return out


async def run_engine(problems: list[dict[str, Any]], prm_dir: Path,
                     drafts: bool) -> list[dict[str, Any]]:
    """The in-process vLLM engine (run with the vLLM interpreter): STEP and last-token modes of
    one engine, tokens computed = prompt tokens - vLLM's ``num_cached_tokens``. No cache salt:
    problems share cached blocks (the system prompt), as with ``--shared-cache``."""
    from trimpomdp.generation.engine_vllm import VLLMEnginePRM

    prm = VLLMEnginePRM(prm_dir, engine_args={"max_model_len": 2048, "block_size": 32,
                                              "max_num_seqs": 4})
    out = []
    try:
        assert await prm.resolve_mode() == "last"
        await prm.score_steps("warm-up", ["one step"])
        for i, p in enumerate(problems):
            q = p["question"]
            single = len(prm.tokenizer(prm.tokenizer.apply_chat_template(
                prm_messages(q, p["steps"]), tokenize=False),
                add_special_tokens=False)["input_ids"])
            # the last-token pass first: STEP requests write the blocks they compute (they only
            # never read), so the other order would hand the new pass this problem's blocks
            prm._mode = "last"
            s = prm.session(q)
            a = (prm.prompt_tokens, prm.cached_tokens)
            t0 = time.perf_counter()
            new_scores = [await s.score(c) for c in calls(p, drafts)]
            t_new = time.perf_counter() - t0
            b = (prm.prompt_tokens, prm.cached_tokens)
            prm._mode = "step"
            t0 = time.perf_counter()
            old_scores = [await prm.session(q).score(c) for c in calls(p, drafts)]
            t_old = time.perf_counter() - t0
            c = (prm.prompt_tokens, prm.cached_tokens)
            prm._mode = "last"
            diff = max(abs(x - y) for u, v in zip(old_scores, new_scores, strict=True)
                       for x, y in zip(u, v, strict=True))
            out.append({"problem": i, "steps": len(p["steps"]), "single_pass": single,
                        "new_computed": (b[0] - a[0]) - (b[1] - a[1]),
                        "new_cache_hits": b[1] - a[1], "old_computed": (c[0] - b[0]) - (c[1] - b[1]),
                        "old_cache_hits": c[1] - b[1], "old_requests": 0, "new_requests": 0,
                        "old_s": t_old, "new_s": t_new, "max_abs_score_diff": diff})
            print(json.dumps(out[-1]), flush=True)
    finally:
        await prm.aclose()
    return out


def summarize(recs: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    old = np.array([r["old_computed"] / r["single_pass"] for r in recs])
    new = np.array([r["new_computed"] / r["single_pass"] for r in recs])
    out = {"problems": len(recs), "steps_mean": float(np.mean([r["steps"] for r in recs])),
           "single_pass_mean": float(np.mean([r["single_pass"] for r in recs])),
           "old_computed_mean": float(np.mean([r["old_computed"] for r in recs])),
           "new_computed_mean": float(np.mean([r["new_computed"] for r in recs])),
           "old_ratio_mean": float(old.mean()), "old_ratio_max": float(old.max()),
           "new_ratio_mean": float(new.mean()), "new_ratio_max": float(new.max()),
           "total_ratio_old": sum(r["old_computed"] for r in recs) / sum(
               r["single_pass"] for r in recs),
           "total_ratio_new": sum(r["new_computed"] for r in recs) / sum(
               r["single_pass"] for r in recs),
           "max_abs_score_diff": max(r["max_abs_score_diff"] for r in recs),
           "old_s": sum(r["old_s"] for r in recs), "new_s": sum(r["new_s"] for r in recs)}
    if "old_cache_hits" in recs[0]:
        out["old_cache_hits"] = sum(r["old_cache_hits"] for r in recs)
        out["new_cache_hits"] = sum(r["new_cache_hits"] for r in recs)
        out["old_requests"] = sum(r["old_requests"] for r in recs)
        out["new_requests"] = sum(r["new_requests"] for r in recs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--problems", type=int, default=24)
    ap.add_argument("--min-steps", type=int, default=5)
    ap.add_argument("--max-steps", type=int, default=8)
    ap.add_argument("--drafts", action="store_true", help="also score rejected drafts")
    ap.add_argument("--shared-cache", action="store_true",
                    help="one cache_salt for the whole run: problems share cached blocks (the "
                         "system prompt) with each other, as on a production server, but not "
                         "with earlier runs")
    ap.add_argument("--step-url", help="stock STEP-pooling PRM server")
    ap.add_argument("--last-url", help="PRM server with the trimpomdp plugin (classify)")
    ap.add_argument("--start", action="store_true", help="start both servers (CPU, vllm venv)")
    ap.add_argument("--vllm-python", default=os.environ.get(
        "TRIMPOMDP_VLLM_PYTHON", str(ROOT / ".venv-vllm" / "bin" / "python")))
    ap.add_argument("--models", type=Path, default=Path(os.environ.get(
        "TRIMPOMDP_LIVE_MODELS", Path.home() / ".cache" / "trimpomdp-live" / "models")))
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers PRM")
    ap.add_argument("--engine", action="store_true",
                    help="also the in-process vLLM engine (run with the vLLM interpreter)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prm_cost")
    args = ap.parse_args()
    problems = load_problems(args.data, args.problems, args.min_steps, args.max_steps)
    result: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()},
                              "data": str(args.data)}
    servers = []
    try:
        if args.start:
            sys.path.insert(0, str(ROOT / "tests" / "generation"))
            from servers import prm_server

            for last in (False, True):
                srv = prm_server(args.vllm_python, args.models / "prm", last_pool=last,
                                 max_model_len=2048).start()
                servers.append(srv)
                srv.wait_healthy(600)
            args.step_url, args.last_url = servers[0].url, servers[1].url
        if args.step_url and args.last_url:
            recs = asyncio.run(run_vllm(problems, args.step_url, args.last_url, args.drafts,
                                        salt=f"run-{time.time_ns()}" if args.shared_cache
                                        else True))
            result["vllm"] = {"summary": summarize(recs), "problems": recs}
            print("vllm", json.dumps(result["vllm"]["summary"], indent=1))
    finally:
        for srv in servers:
            srv.stop()
    if args.engine:
        recs = asyncio.run(run_engine(problems, args.models / "prm", args.drafts))
        result["engine"] = {"summary": summarize(recs), "problems": recs}
        print("engine", json.dumps(result["engine"]["summary"], indent=1))
    if not args.no_hf:
        recs = run_hf(problems, args.models / "prm", args.drafts)
        result["hf"] = {"summary": summarize(recs), "problems": recs}
        print("hf", json.dumps(result["hf"]["summary"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out.with_suffix(".json"))
    lines = [("| scorer | problems | steps | single pass (tokens) | old: computed, × single | "
             "new: computed, × single (mean / max) | max abs score diff | old / new s |"),
             "|---|---|---|---|---|---|---|---|"]
    for k in ("vllm", "engine", "hf"):
        if k in result:
            s = result[k]["summary"]
            lines.append(f"| {k} | {s['problems']} | {s['steps_mean']:.1f} | "
                         f"{s['single_pass_mean']:.0f} | {s['old_computed_mean']:.0f}, "
                         f"{s['old_ratio_mean']:.2f}× | {s['new_computed_mean']:.0f}, "
                         f"{s['new_ratio_mean']:.2f}× / {s['new_ratio_max']:.2f}× | "
                         f"{s['max_abs_score_diff']:.1e} | {s['old_s']:.1f} / {s['new_s']:.1f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
