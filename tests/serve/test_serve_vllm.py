"""The official openai client → ``trimpomdp serve`` → REAL vLLM CPU servers (SmolLM2-135M weak,
Gemma-3-270M strong, a tiny random Qwen2 PRM on /pooling). Marked ``server``; needs the models of
``.ci/live.sh`` ($TRIMPOMDP_LIVE_MODELS) and its vLLM interpreter ($TRIMPOMDP_VLLM_PYTHON)."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
pytest.importorskip("httpx", reason="the upstream clients need httpx")
openai = pytest.importorskip("openai", reason="the official openai client is not installed")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "generation"))  # servers.py: the live-loop test servers

from serve_harness import ServerThread
from servers import live_servers

from trimpomdp.serve.config import ServeConfig

K = 0.55
LIMITS = {"max_steps": 3}


@pytest.fixture(scope="module")
def live_serve():
    with live_servers(max_model_len=1024) as (servers, _):
        urls = {k: srv.url for k, srv in servers.items()}
        cfg = ServeConfig(weak_url=urls["weak"], strong_url=urls["strong"], prm_url=urls["prm"],
                          policy=f"thr:{K}", port=0, timeout=300.0, max_step_tokens=24)
        with ServerThread(cfg) as srv:
            client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0,
                                   timeout=600)
            # warm-up: the first request of each vLLM server is slow
            client.completions.create(model="trimpomdp", prompt="What is 1+1?",
                                      extra_body={"trim": {"max_steps": 1}})
            yield srv, client


def _trim(obj):
    return (obj.model_extra or {})["trim"]


def _usage(obj, key):
    return (obj.usage.model_extra or {})[key]


def test_openai_client_gets_step_routed_completion(live_serve):
    _, client = live_serve
    r = client.chat.completions.create(
        model="trimpomdp", messages=[{"role": "user", "content": "What is $2+3$?"}],
        temperature=0.0, max_tokens=24, extra_body={"trim": {"trace": True, **LIMITS}})
    trim = _trim(r)
    trace = trim["trace"]
    assert 1 <= trim["n_steps"] == len(trace) <= 3
    assert r.choices[0].message.content == "\n\n".join(s["text"] for s in trace)
    for s in trace:  # real PRM scores, routed by the threshold
        assert 0.0 <= s["score"] <= 1.0
        assert s["action"] == ("regenerate" if s["score"] < K else "continue")
        assert s["source"] == ("strong" if s["action"] == "regenerate" else "weak")
        assert 1 <= s["draft_tokens"] <= 24
    assert _usage(r, "strong_completion_tokens") == sum(s.get("strong_tokens", 0) for s in trace)
    assert _usage(r, "weak_completion_tokens") >= sum(s["draft_tokens"] for s in trace)
    assert r.usage.completion_tokens == (_usage(r, "weak_completion_tokens")
                                         + _usage(r, "strong_completion_tokens"))


def test_openai_stream_one_chunk_per_accepted_step(live_serve):
    _, client = live_serve
    chunks = list(client.chat.completions.create(
        model="trimpomdp", messages=[{"role": "user", "content": "Compute $10-4$."}],
        temperature=0.0, max_tokens=24, stream=True, stream_options={"include_usage": True},
        extra_body={"trim": LIMITS}))
    steps = [c for c in chunks if c.choices and "source" in (c.model_extra or {}).get("trim", {})]
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert len(steps) == _trim(final)["n_steps"] >= 1
    assert sum(_trim(c)["source"] == "strong" for c in steps) == _trim(final)["n_regenerated"]
    usage = next(c for c in chunks if c.usage is not None)
    assert _usage(usage, "strong_completion_tokens") == sum(
        _trim(c)["tokens"] for c in steps if _trim(c)["source"] == "strong")


def test_lambda_budget_and_concurrency_against_real_servers(live_serve):
    srv, _ = live_serve

    async def go():
        c = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0,
                               timeout=600)
        rs = await asyncio.gather(*(c.chat.completions.create(
            model="trimpomdp", messages=[{"role": "user", "content": f"What is ${i}+{i}$?"}],
            max_tokens=16, extra_body={"trim": {"lambda": 100, **LIMITS}}) for i in range(6)))
        await c.close()
        return rs

    rs = asyncio.run(go())
    assert len(rs) == 6
    for r in rs:  # λ = 100: a strong token costs more than the whole reward, never regenerate
        assert _trim(r)["policy"] == "pomdp-filter:100"
        assert _usage(r, "strong_completion_tokens") == 0
        assert r.choices[0].message.content
