"""The live loop against REAL vLLM CPU servers: SmolLM2-135M (weak), Gemma-3-270M (strong) and a
tiny random Qwen2 PRM on ``/pooling``. Marked ``server``; ``.ci/live.sh`` prepares and runs them.
"""
from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.server

httpx = pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends")

from servers import live_servers

from trimpomdp.data.problems import Problem
from trimpomdp.generation._http import RetryPolicy
from trimpomdp.generation.live import LiveRunConfig, run_live
from trimpomdp.generation.openai_compat import OpenAICompletionsBackend
from trimpomdp.generation.prm_self import SelfScorePRM
from trimpomdp.generation.prm_vllm import VLLMPoolingPRM
from trimpomdp.generation.prompting import generation_messages
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.generation.runlog import read_runlog

RETRY = RetryPolicy(retries=2, timeout=300.0)
GREEDY = SamplingParams(temperature=0.0, max_tokens=24)
QUESTION = "What is $2+3$?"


@pytest.fixture(scope="session")
def live():
    with live_servers(max_model_len=1024) as (servers, paths):
        urls = {k: srv.url for k, srv in servers.items()}
        asyncio.run(_warm_up(urls))
        yield {"urls": urls, "models": paths, "servers": servers}


async def _warm_up(urls):
    for name in ("weak", "strong"):
        b = OpenAICompletionsBackend(urls[name], name=name, retry=RETRY)
        await b.generate_step(generation_messages(QUESTION, []), stop=["\n\n"],
                              sampling=SamplingParams(max_tokens=4))
        await b.aclose()


def _run(coro):
    return asyncio.run(coro)


def test_real_step_counts_decoded_tokens_and_stops(live):
    async def go():
        b = OpenAICompletionsBackend(live["urls"]["weak"], name="weak", retry=RETRY)
        try:
            out = await b.generate_step(generation_messages(QUESTION, []), stop=["\n\n"],
                                        sampling=GREEDY)
            return out, b.api
        finally:
            await b.aclose()
    out, api = _run(go())
    assert api == "completions"  # the server's model folder is local: rendered on the client
    assert 1 <= out.tokens <= GREEDY.max_tokens and "\n\n" not in out.text
    assert out.stopped_on_stop or out.finish_reason == "length" or out.tokens < 24
    if out.finish_reason == "length":
        assert out.tokens == GREEDY.max_tokens and not out.stopped_on_stop


@pytest.mark.parametrize("name", ["weak", "strong"])
def test_client_rendering_matches_server_chat_rendering(live, name):
    """Greedy steps from /v1/completions (client template) and /v1/chat/completions
    (server template, continue_final_message) agree: the same prompt reached the model."""
    msgs = generation_messages(QUESTION, ["We add the two numbers."])

    async def go(api):
        b = OpenAICompletionsBackend(live["urls"][name], name=name, api=api, retry=RETRY)
        try:
            return await b.generate_step(msgs, stop=["\n\n"], sampling=GREEDY)
        finally:
            await b.aclose()
    a, c = _run(go("completions")), _run(go("chat"))
    assert (a.text, a.tokens) == (c.text, c.tokens)


def test_real_prm_pooling_matches_local_transformers_scorer(live):
    pytest.importorskip("torch", reason="the reference scorer runs the PRM with transformers")
    from trimpomdp.generation.prm_hf import HFLocalPRM

    steps = ["We add 2 and 3.", "This gives 5.", "The answer is $\\boxed{5}$."]

    async def go():
        prm = VLLMPoolingPRM(live["urls"]["prm"], retry=RETRY)
        try:
            return await prm.score_steps(QUESTION, steps)
        finally:
            await prm.aclose()
    served = _run(go())
    local = HFLocalPRM(live["models"]["prm"]).score_sync(QUESTION, steps)
    assert len(served) == 3 and all(0.0 < s < 1.0 for s in served)
    assert served == pytest.approx(local, abs=2e-3)


def test_real_self_scoring_from_logprobs(live):
    async def go():
        b = OpenAICompletionsBackend(live["urls"]["strong"], name="strong", retry=RETRY)
        try:
            return await SelfScorePRM(b).score_steps(QUESTION, ["2 + 3 = 5.", "zebra cloud kettle"])
        finally:
            await b.aclose()
    sensible, nonsense = _run(go())
    assert 0.0 < nonsense < sensible <= 1.0


def test_real_end_to_end_run_and_resume(live, tmp_path):
    urls = live["urls"]
    probs = [Problem(problem_id=f"t{i}", question=q, answer=a) for i, (q, a) in enumerate(
        [("What is $2+3$?", "5"), ("What is $7 \\times 6$?", "42"), ("Compute $10-4$.", "6")])]
    cfg = LiveRunConfig(weak_url=urls["weak"], strong_url=urls["strong"], prm=urls["prm"],
                        policy="thr:0.55", dataset="inline", concurrency=3, max_steps=4,
                        max_step_tokens=32, seed=0)
    first = _run(run_live(probs[:2], cfg, tmp_path))
    assert first["ok"] == 2
    summary = _run(run_live(probs, cfg, tmp_path))
    assert summary["last_invocation"]["skipped"] == 2 and summary["ok"] == 3
    recs = read_runlog(tmp_path)
    assert sorted(r["problem_id"] for r in recs) == ["t0", "t1", "t2"]
    for r in recs:
        steps = r["steps"]
        assert 1 <= r["n_steps"] == len(steps) <= 4
        assert r["strong_tokens"] == sum(s.get("strong_tokens", 0) for s in steps)
        assert r["weak_tokens"] >= sum(s["draft_tokens"] for s in steps)
        assert r["discarded_weak_tokens"] >= sum(s["draft_tokens"] for s in steps
                                                 if s["source"] == "strong")
        for s in steps:
            assert 0.0 <= s["score"] <= 1.0
            assert s["action"] == ("regenerate" if s["score"] < 0.55 else "continue")
