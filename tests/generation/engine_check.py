"""Run inside the vLLM interpreter (``PYTHONPATH=<repo>``): the live loop on in-process engines.

``python tests/generation/engine_check.py MODELS_DIR OUT_DIR`` builds weak, strong and PRM
``AsyncLLM`` engines (trimpomdp.generation.engine_vllm), and writes ``OUT_DIR/result.json`` with
a greedy step of each model, the PRM's last-token and STEP scores on the same engine, the
engine's prompt/cached token counts, and an end-to-end ``run_live``-style run with resume (its run
log in ``OUT_DIR/run``). ``test_live_vllm.py::test_in_process_engine_*`` checks them against the
HTTP servers and the transformers PRM.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

QUESTION = "What is $2+3$?"
PRM_STEPS = ["We add 2 and 3.", "This gives 5.", "The answer is $\\boxed{5}$."]
PROBLEMS = [("What is $2+3$?", "5"), ("What is $7 \\times 6$?", "42"), ("Compute $10-4$.", "6")]


async def main(models: Path, out: Path) -> None:
    from trimpomdp.data.problems import Problem
    from trimpomdp.generation.engine_vllm import VLLMEngineBackend, VLLMEnginePRM
    from trimpomdp.generation.loop import LoopConfig, run_problems
    from trimpomdp.generation.prompting import generation_messages
    from trimpomdp.generation.protocols import SamplingParams
    from trimpomdp.generation.runlog import RunLog
    from trimpomdp.routing.spec import PolicySpec

    gen_args = {"max_model_len": 1024, "dtype": "bfloat16", "enable_prefix_caching": True,
                "max_num_seqs": 4, "block_size": 32}
    res: dict = {}
    t0 = time.perf_counter()
    weak = VLLMEngineBackend(models / "weak", name="weak", engine_args=gen_args)
    strong = VLLMEngineBackend(models / "strong", name="strong", engine_args=gen_args)
    prm = VLLMEnginePRM(models / "prm", engine_args={"max_model_len": 1024, "block_size": 32,
                                                     "max_num_seqs": 4})
    try:
        greedy = SamplingParams(temperature=0.0, max_tokens=24)
        msgs = generation_messages(QUESTION, ["We add the two numbers."])
        for name, b in (("weak", weak), ("strong", strong)):
            o = await b.generate_step(msgs, stop=["\n\n"], sampling=greedy)
            res[name] = {"text": o.text, "tokens": o.tokens, "stopped": o.stopped_on_stop,
                         "finish": o.finish_reason}
            first = await b.generate_step(generation_messages(QUESTION, []), stop=["\n\n"],
                                          sampling=greedy)
            res[name + "_first"] = {"text": first.text, "tokens": first.tokens,
                                    "stopped": first.stopped_on_stop, "finish": first.finish_reason}
        res["engines_s"] = time.perf_counter() - t0
        res["prm_mode"] = await prm.resolve_mode()
        s = prm.session(QUESTION)
        res["prm_last"] = [await s.score(PRM_STEPS[:k]) for k in (1, 2, 3)][-1]
        c0 = (prm.prompt_tokens, prm.cached_tokens)
        res["prm_session_tokens"] = {"prompt": c0[0], "cached": c0[1],
                                     "single": len(prm.prompt_ids(QUESTION, PRM_STEPS))}
        prm._mode = "step"  # the STEP fallback on the same engine
        res["prm_step"] = await prm.score_steps(QUESTION, PRM_STEPS)
        prm._mode = None
        probs = [Problem(problem_id=f"t{i}", question=q, answer=a)
                 for i, (q, a) in enumerate(PROBLEMS)]
        cfg = LoopConfig(max_steps=4, sampling=SamplingParams(max_tokens=32, seed=0))
        factory = PolicySpec.parse("thr:0.55").factory()
        runs = []
        for todo in (probs[:2], probs):  # first two, then all three: the run resumes
            with RunLog(out / "run" / "runlog.jsonl") as log:
                st = await run_problems(todo, weak=weak, strong=strong, prm=prm,
                                        router_factory=factory, runlog=log, concurrency=3,
                                        config=cfg)
            runs.append({"skipped": st.skipped, "finished": st.finished, "failed": st.failed,
                         "seconds": st.seconds})
        res["runs"] = runs
        res["weak_counts"] = {"prompt": weak.prompt_tokens, "cached": weak.cached_tokens}
        res["prm_counts"] = {"prompt": prm.prompt_tokens, "cached": prm.cached_tokens,
                             "requests": prm.requests}
    finally:
        for b in (weak, strong, prm):
            await b.aclose()
    (out / "result.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
