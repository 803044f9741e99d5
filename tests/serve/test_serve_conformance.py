"""OpenAI conformance of ``trimpomdp serve`` with the official ``openai`` client (issue 15).

Sync and async clients, streaming with ``include_usage``, a system prompt and a 3-turn history,
``stop``, ``n=2``, ``max_completion_tokens`` as a cap on the whole answer, ``seed``,
``models.retrieve`` and budgets by model name, platform-only fields ignored, API key, CORS, the
access log and SSE keep-alive. Upstreams are the loopback stubs (stub_upstream.py), which honour
``max_tokens`` and ``stop`` and report prompt tokens.
"""
from __future__ import annotations

import asyncio
import logging

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")
openai = pytest.importorskip("openai", reason="the official openai client is not installed")

from serve_harness import ServerThread, config, stubs

GOOD = ("Step 0 of weak (good).\n\nStep 1 of weak (good).\n\nStep 2 of weak (good). The answer "
        "is \\boxed{5}.")
Q = [{"role": "user", "content": "What is 2+3?"}]
HISTORY = [
    {"role": "system", "content": "You are a careful tutor."},
    {"role": "user", "content": "What is 1+1?"},
    {"role": "assistant", "content": "2"},
    {"role": "user", "content": "And 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "What is 2+3?"},
]


@pytest.fixture(scope="module")
def env():
    with stubs() as up, ServerThread(config(up, sse_keepalive=0.2)) as srv:
        yield srv, up


@pytest.fixture(scope="module")
def client(env):
    srv, _ = env
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def _weak_bodies(up):
    return up["weak"].bodies["/v1/chat/completions"]


def test_system_prompt_and_three_turn_history_reach_the_models(env, client):
    _, up = env
    n0 = len(_weak_bodies(up))
    r = client.chat.completions.create(model="trimpomdp", messages=HISTORY)
    assert r.choices[0].message.content == GOOD and r.choices[0].finish_reason == "stop"
    sent = _weak_bodies(up)[n0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant",
                                         "user", "assistant"]
    assert sent[0]["content"] == "You are a careful tutor." and sent[3]["content"] == "And 2+2?"
    assert sent[-2]["content"].endswith("Question: What is 2+3?")  # the last user turn
    assert sent[-1]["content"] == "Solution: "
    strong = up["strong"].bodies["/v1/chat/completions"]
    assert not strong or strong[-1]["messages"][0]["role"] == "system"
    # prompt tokens come from the upstream usage: the history makes the prompt longer
    plain = client.chat.completions.create(model="trimpomdp", messages=Q)
    assert 0 < plain.usage.prompt_tokens < r.usage.prompt_tokens
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_developer_role_and_text_parts_are_accepted(client):
    r = client.chat.completions.create(model="trimpomdp", messages=[
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is "},
                                     {"type": "text", "text": "2+3?"}]}])
    assert r.choices[0].message.content == GOOD


def test_stop_ends_the_answer_and_is_sent_upstream(env, client):
    _, up = env
    r = client.chat.completions.create(model="trimpomdp", messages=Q, stop=["Step 2"])
    assert r.choices[0].message.content == "Step 0 of weak (good).\n\nStep 1 of weak (good)."
    assert r.choices[0].finish_reason == "stop"
    assert "Step 2" in _weak_bodies(up)[-1]["stop"] and "\n\n" in _weak_bodies(up)[-1]["stop"]
    # a stop inside a step, as a plain string
    r = client.chat.completions.create(model="trimpomdp", messages=Q, stop="(good)")
    assert r.choices[0].message.content == "Step 0 of weak "
    # a stop that spans the step boundary ("\n\n" is the separator)
    r = client.chat.completions.create(model="trimpomdp", messages=Q, stop=["\n\nStep 1"])
    assert r.choices[0].message.content == "Step 0 of weak (good)."


def test_n_two_gives_two_independent_choices(env, client):
    _, _up = env
    r = client.chat.completions.create(model="trimpomdp", messages=Q, n=2, seed=7)
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.message.content == GOOD for c in r.choices)
    assert r.usage.completion_tokens == 2 * 19
    assert len((r.model_extra or {})["trim"]["choices"]) == 2


def test_max_completion_tokens_caps_the_whole_answer(client):
    r = client.chat.completions.create(model="trimpomdp", messages=Q, max_completion_tokens=7)
    assert r.usage.completion_tokens == 7  # 5 for step 0, the 2 left for step 1
    assert r.choices[0].message.content == "Step 0 of weak (good).\n\nStep 1"
    assert r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model="trimpomdp", messages=Q, max_tokens=100)
    assert r.choices[0].message.content == GOOD and r.choices[0].finish_reason == "stop"


def test_a_step_cut_by_its_token_limit_is_finish_reason_length(client):
    r = client.chat.completions.create(model="trimpomdp", messages=Q,
                                       extra_body={"trim": {"max_step_tokens": 3}})
    assert r.choices[0].message.content == "Step 0 of"
    assert r.choices[0].finish_reason == "length"


def test_seed_is_varied_per_step_and_reproducible(env, client):
    _, up = env

    def seeds(seed):
        n0 = len(_weak_bodies(up))
        client.chat.completions.create(model="trimpomdp", messages=Q, seed=seed)
        return [b.get("seed") for b in _weak_bodies(up)[n0:]]

    a, b, c = seeds(42), seeds(42), seeds(43)
    assert len(a) == 3 and len(set(a)) == 3  # one seed per step
    assert a == b and a != c  # deterministic in the request's seed
    assert seeds(None) == [None, None, None]


def test_models_retrieve_and_budgets_by_model_name(client):
    assert client.models.retrieve("trimpomdp").id == "trimpomdp"
    m = client.models.retrieve("trimpomdp-lambda-0.25")
    assert m.id == "trimpomdp-lambda-0.25" and m.model_extra["root"] == "lambda:0.25"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("trimpomdp-lambda-500")
    r = client.chat.completions.create(model="trimpomdp-lambda-100", messages=Q)
    assert r.model == "trimpomdp-lambda-100"
    trim = r.model_extra["trim"]
    assert trim["lambda"] == 100 and trim["policy"].endswith(":100")
    assert r.usage.model_extra["strong_completion_tokens"] == 0  # λ = 100 never regenerates


def test_platform_only_and_no_op_fields_are_ignored(client, caplog):
    with caplog.at_level(logging.WARNING, logger="trimpomdp.serve"):
        r = client.chat.completions.create(
            model="trimpomdp", messages=Q, user="u1", store=False, metadata={"k": "v"},
            service_tier="auto", tools=[], parallel_tool_calls=False, frequency_penalty=0,
            presence_penalty=0, logprobs=False, response_format={"type": "text"},
            extra_body={"repetition_penalty": 1.0, "chat_template_kwargs": {}})
    assert r.choices[0].message.content == GOOD
    ignored = r.model_extra["trim"]["ignored_fields"]
    for f in ("user", "store", "metadata", "service_tier", "tools", "parallel_tool_calls",
              "logprobs", "response_format", "repetition_penalty", "chat_template_kwargs"):
        assert f in ignored, f
    assert any("ignored fields" in rec.getMessage() and "service_tier" in rec.getMessage()
               for rec in caplog.records)


def test_penalties_are_passed_upstream(env, client):
    _, up = env
    client.chat.completions.create(model="trimpomdp", messages=Q, frequency_penalty=0.5,
                                   presence_penalty=-0.25)
    body = _weak_bodies(up)[-1]
    assert body["frequency_penalty"] == 0.5 and body["presence_penalty"] == -0.25


def test_stream_with_include_usage(client):
    chunks = list(client.chat.completions.create(
        model="trimpomdp", messages=HISTORY, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == GOOD
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].prompt_tokens > 0 and usage[0].completion_tokens == 19
    assert chunks[-1].choices == []


def test_stream_n_two_and_stop(client):
    chunks = list(client.chat.completions.create(model="trimpomdp", messages=Q, stream=True, n=2,
                                                 stop=["Step 2"]))
    by = {0: "", 1: ""}
    for c in chunks:
        for ch in c.choices:
            by[ch.index] += ch.delta.content or ""
    assert by[0] == by[1] == "Step 0 of weak (good).\n\nStep 1 of weak (good)."


def test_async_client_concurrent_requests(env):
    srv, _ = env

    async def go():
        async with openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0) as c:
            rs = await asyncio.gather(*(c.chat.completions.create(
                model="trimpomdp", messages=[{"role": "user", "content": f"q{i}"}])
                for i in range(6)))
            stream = await c.chat.completions.create(model="trimpomdp", messages=Q, stream=True)
            text = "".join([ch.choices[0].delta.content or "" async for ch in stream
                            if ch.choices])
            return rs, text

    rs, text = asyncio.run(go())
    assert all(r.choices[0].message.content == GOOD for r in rs) and text == GOOD


def test_completions_with_stop_n_and_max_tokens(client):
    r = client.completions.create(model="trimpomdp", prompt="What is 2+3?", n=2, max_tokens=6,
                                  stop=["zzz"])
    assert [c.text for c in r.choices] == ["Step 0 of weak (good).\n\nStep"] * 2
    assert {c.finish_reason for c in r.choices} == {"length"}
    assert r.usage.prompt_tokens > 0


def test_sse_keepalive_comments_while_a_step_is_drafted():
    with stubs(delay=0.5) as up, ServerThread(config(up, sse_keepalive=0.1)) as srv:
        lines = []
        with httpx.stream("POST", srv.url + "/v1/chat/completions", timeout=30, json={
                "model": "trimpomdp", "messages": Q, "stream": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = list(r.iter_lines())
    first_data = next(i for i, ln in enumerate(lines) if '"content": "Step' in ln)
    assert any(ln.startswith(": keep-alive") for ln in lines[:first_data]), lines[:first_data]
    assert lines[-1] == "data: [DONE]" or lines[-2] == "data: [DONE]"


def test_api_key_from_option_and_environment(monkeypatch):
    with stubs() as up, ServerThread(config(up, api_key="sekret")) as srv:
        bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as ei:
            bad.chat.completions.create(model="trimpomdp", messages=Q)
        assert ei.value.status_code == 401 and ei.value.body["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        ok = openai.OpenAI(base_url=srv.url + "/v1", api_key="sekret", max_retries=0)
        assert ok.chat.completions.create(model="trimpomdp", messages=Q).choices
        assert httpx.get(srv.url + "/health").status_code == 200  # probes stay open
    import argparse

    from trimpomdp.cli import serve

    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    monkeypatch.setenv("TRIMPOMDP_API_KEY", "from-env")
    cfg = serve.config_from_args(p.parse_args(["--weak", "http://w", "--policy", "weak"]))
    assert cfg.api_key == "from-env"
    cfg = serve.config_from_args(p.parse_args(["--weak", "http://w", "--policy", "weak",
                                               "--api-key", "cli"]))
    assert cfg.api_key == "cli"


def test_cors_preflight_and_headers():
    allowed = "http://app.example"
    with stubs() as up, ServerThread(config(up, allowed_origins=(allowed,))) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as http:
        pre = http.options("/v1/chat/completions", headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == allowed
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "authorization" in pre.headers["access-control-allow-headers"]
        r = http.post("/v1/chat/completions", json={"model": "trimpomdp", "messages": Q},
                      headers={"Origin": allowed})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == allowed
        other = http.options("/v1/chat/completions", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert other.status_code == 403
        r = http.post("/v1/chat/completions", json={"model": "trimpomdp", "messages": Q},
                      headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_access_log_line_per_request_with_request_id(env, caplog):
    srv, _ = env
    with caplog.at_level(logging.INFO, logger="trimpomdp.serve.access"):
        r = httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                       json={"model": "trimpomdp", "messages": Q},
                       headers={"X-Request-Id": "my-req-1"})
        r2 = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={"model": "x"})
        assert r.headers["x-request-id"] == "my-req-1"
        rid2 = r2.headers["x-request-id"]
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "trimpomdp.serve.access"]
    assert any(ln.startswith("my-req-1 ") and " 200 " in ln and "model=trimpomdp" in ln
               for ln in lines), lines
    assert any(ln.startswith(rid2 + " ") and " 400 " in ln for ln in lines), lines


def test_logprobs_of_each_token_under_the_model_that_wrote_it(client):
    r = client.chat.completions.create(model="trimpomdp", messages=[
        {"role": "user", "content": "What is 2+3? BADSTEP"}], logprobs=True, top_logprobs=0)
    content = r.choices[0].logprobs.content
    assert len(content) == 19 and {c.logprob for c in content} == {-0.05}  # all rewritten
    assert "".join(c.token for c in content).replace(" ", "") == \
        r.choices[0].message.content.replace("\n\n", "").replace(" ", "")
    r = client.chat.completions.create(model="trimpomdp", messages=Q, logprobs=True,
                                       max_completion_tokens=7)
    assert [c.logprob for c in r.choices[0].logprobs.content] == [-0.5] * 7
    chunks = list(client.chat.completions.create(model="trimpomdp", messages=Q, logprobs=True,
                                                 stream=True))
    streamed = [c for ch in chunks if ch.choices and ch.choices[0].logprobs
                for c in ch.choices[0].logprobs.content]
    assert len(streamed) == 19
    t = client.completions.create(model="trimpomdp", prompt="What is 2+3?", logprobs=0)
    lp = t.choices[0].logprobs
    assert len(lp.tokens) == 19 and lp.text_offset[0] == 0
    assert t.choices[0].text[lp.text_offset[5]:].startswith(lp.tokens[5].strip())
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="trimpomdp", messages=Q, logprobs=True,
                                       top_logprobs=2)
    assert ei.value.body["param"] == "top_logprobs"
    with pytest.raises(openai.BadRequestError) as ei:  # an upstream without log-probabilities
        client.chat.completions.create(model="trimpomdp", logprobs=True, messages=[
            {"role": "user", "content": "NOLOGPROBS q"}])
    assert ei.value.body["param"] == "logprobs"


def test_stream_tokens_sends_a_strong_rewrite_as_it_is_decoded(env, client):
    _, up = env
    strong = GOOD.replace("weak", "strong")
    chunks = list(client.chat.completions.create(
        model="trimpomdp", messages=[{"role": "user", "content": "What is 2+3? BADSTEP"}],
        stream=True, extra_body={"trim": {"stream_tokens": True}}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == strong
    pieces = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 19  # one chunk per decoded token, not one per step
    metas = [c.model_extra["trim"] for c in chunks if c.choices and "source" in
             (c.model_extra or {}).get("trim", {})]
    assert [(m["step"], m["source"], m["tokens"]) for m in metas] == [
        (0, "strong", 5), (1, "strong", 5), (2, "strong", 9)]
    assert up["strong"].bodies["/v1/chat/completions"][-1]["stream"] is True
    # with a stop string, nothing past it is sent
    chunks = list(client.chat.completions.create(
        model="trimpomdp", messages=[{"role": "user", "content": "What is 2+3? BADSTEP"}],
        stream=True, stop=["(good). The"], extra_body={"trim": {"stream_tokens": True}}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == strong[:strong.index("(good). The")]
