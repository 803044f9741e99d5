"""The official ``openai`` client against ``trimpomdp serve`` backed by stub upstream servers.

Protocol-level: the upstreams are real loopback HTTP servers with scripted steps (stub_upstream.py),
so the expected text, routing and token counts are known exactly.
"""
from __future__ import annotations

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
pytest.importorskip("httpx", reason="the upstream clients need httpx")
openai = pytest.importorskip("openai", reason="the official openai client is not installed")

from serve_harness import ServerThread, config, stubs

GOOD = "Step 0 of weak (good).\n\nStep 1 of weak (good).\n\nStep 2 of weak (good). The answer is \\boxed{5}."
STRONG = GOOD.replace("weak", "strong")
WORDS = [5, 5, 9]  # tokens the stubs report per step


@pytest.fixture(scope="module")
def server():
    with stubs() as up, ServerThread(config(up)) as srv:
        yield srv, up


@pytest.fixture(scope="module")
def client(server):
    srv, _ = server
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def _extra(obj, key):
    return (obj.model_extra or {})[key]


def test_chat_weak_steps_are_kept(client):
    r = client.chat.completions.create(model="trimpomdp",
                                       messages=[{"role": "user", "content": "What is 2+3?"}])
    assert r.choices[0].message.content == GOOD
    assert r.choices[0].finish_reason == "stop"
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    u = r.usage
    assert _extra(u, "weak_completion_tokens") == sum(WORDS)
    assert _extra(u, "strong_completion_tokens") == 0
    assert u.completion_tokens == sum(WORDS)
    trim = _extra(r, "trim")
    assert trim["policy"] == "thr:0.5" and trim["n_steps"] == 3 and trim["n_regenerated"] == 0
    assert "trace" not in trim


def test_chat_bad_steps_are_regenerated_and_usage_split(client):
    r = client.chat.completions.create(
        model="trimpomdp", messages=[{"role": "user", "content": "What is 2+3? BADSTEP"}],
        extra_body={"trim": {"trace": True}})
    assert r.choices[0].message.content == STRONG
    u = r.usage
    assert _extra(u, "weak_completion_tokens") == sum(WORDS)  # drafts were decoded, then dropped
    assert _extra(u, "strong_completion_tokens") == sum(WORDS)
    assert _extra(u, "discarded_weak_tokens") == sum(WORDS)
    assert u.completion_tokens == 2 * sum(WORDS)
    trace = _extra(r, "trim")["trace"]
    assert [s["action"] for s in trace] == ["regenerate"] * 3
    assert [s["score"] for s in trace] == [0.1] * 3
    assert all("bad" in s["draft"] and s["source"] == "strong" for s in trace)


def test_chat_stream_one_chunk_per_step(client):
    stream = client.chat.completions.create(
        model="trimpomdp", messages=[{"role": "user", "content": "What is 2+3? BADSTEP"}],
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    steps = [c for c in chunks if c.choices and (c.model_extra or {}).get("trim", {}).get("source")]
    assert [_extra(c, "trim")["step"] for c in steps] == [0, 1, 2]
    assert all(_extra(c, "trim")["source"] == "strong" for c in steps)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == STRONG
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and _extra(usage[0], "strong_completion_tokens") == sum(WORDS)


def test_completions_endpoint_stream_and_not(client):
    r = client.completions.create(model="trimpomdp", prompt="What is 2+3?")
    assert r.choices[0].text == GOOD and r.object == "text_completion"
    chunks = list(client.completions.create(model="trimpomdp", prompt="What is 2+3?",
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == GOOD
    assert sum(1 for c in chunks if (c.model_extra or {}).get("trim", {}).get("source")) == 3


def test_models_lists_the_served_name(client):
    assert [m.id for m in client.models.list().data] == ["trimpomdp"]


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}])
    assert ei.value.body["code"] == "model_not_found"


def test_out_of_range_budget_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="trimpomdp",
                                       messages=[{"role": "user", "content": "q"}],
                                       extra_body={"trim": {"strong_token_share": 1.5}})
    assert ei.value.body["param"] == "trim.strong_token_share"
    assert "[0, 1]" in ei.value.body["message"]


def test_upstream_failure_is_502_with_reason(client):
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(
            model="trimpomdp", messages=[{"role": "user", "content": "FAIL500 please"}])
    assert ei.value.status_code == 502
    assert "HTTP 500" in ei.value.body["message"] and ei.value.body["type"] == "upstream_error"


def test_stream_failing_after_first_step_reports_in_band(client):
    stream = client.chat.completions.create(
        model="trimpomdp", messages=[{"role": "user", "content": "FAILSTEP2 q"}], stream=True)
    got: list = []
    with pytest.raises(openai.APIError) as ei:
        got.extend(stream)
    assert "HTTP 500" in str(ei.value)
    texts = [c.choices[0].delta.content for c in got if c.choices and c.choices[0].delta.content]
    assert texts == ["Step 0 of weak (good).", "\n\nStep 1 of weak (good)."]


def test_steps_are_streamed_as_they_are_accepted_not_buffered():
    import time

    import httpx

    with stubs(n_steps=3, delay=0.3) as up, ServerThread(config(up)) as srv:
        arrivals = []
        t0 = time.perf_counter()
        body = {"model": "trimpomdp", "stream": True,
                "messages": [{"role": "user", "content": "What is 2+3?"}]}
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=30) as r:
            for line in r.iter_lines():
                if '"source": ' in line:
                    arrivals.append(time.perf_counter() - t0)
        total = time.perf_counter() - t0
    # each step costs a draft and a score (0.3 s each): step 0 is out after ~0.6 s, the
    # last one at the end (~1.8 s)
    assert len(arrivals) == 3
    assert arrivals[0] < total - 0.8 and arrivals[1] < total - 0.3, (arrivals, total)
