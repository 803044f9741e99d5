"""400/404/413/502 answers of ``trimpomdp serve``: OpenAI-shaped JSON bodies, never a traceback.

Upstreams are real loopback servers that misbehave on purpose (stub_upstream.py) or a closed port.
"""
from __future__ import annotations

import json
import socket

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs

Q = [{"role": "user", "content": "What is 2+3?"}]


@pytest.fixture(scope="module")
def env():
    with stubs() as up, ServerThread(config(up)) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as http:
        yield srv, up, http


def _err(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body["error"]


def _chat(http, **kw):
    return http.post("/v1/chat/completions", json={"model": "trimpomdp", "messages": Q, **kw})


@pytest.mark.parametrize("raw,needle", [
    (b"{not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"model": "trimpomdp", "messages": [], "temperature": NaN}', "not valid JSON"),
    (b"\xff\xfe", "UTF-8"),
])
def test_malformed_body_is_400(env, raw, needle):
    _, _, http = env
    e = _err(http.post("/v1/chat/completions", content=raw,
                       headers={"content-type": "application/json"}), 400)
    assert needle in e["message"] and e["type"] == "invalid_request_error"


@pytest.mark.parametrize("extra,param", [
    ({"frequency_penalty": 2.5}, "frequency_penalty"),
    ({"presence_penalty": "x"}, "presence_penalty"),
    ({"trim": {"lambda": 0.2, "budget": 3}}, "trim.budget"),
    ({"trim": {"lambda": -0.1}}, "trim.lambda"),
    ({"trim": {"lambda": 1e9}}, "trim.lambda"),
    ({"trim": {"lambda": "0.2"}}, "trim.lambda"),
    ({"trim": {"lambda": True}}, "trim.lambda"),
    ({"trim": {"strong_token_share": -0.01}}, "trim.strong_token_share"),
    ({"trim": {"lambda": 0.1, "strong_token_share": 0.2}}, "trim"),
    ({"trim": {"trace": "yes"}}, "trim.trace"),
    ({"trim": {"max_steps": 31}}, "trim.max_steps"),
    ({"trim": {"max_step_tokens": 0}}, "trim.max_step_tokens"),
    ({"trim": [0.2]}, "trim"),
    ({"n": 0}, "n"),
    ({"n": 9}, "n"),  # above --max-n
    ({"stop": 5}, "stop"),
    ({"stop": ["a", 1]}, "stop"),
    ({"stop": [str(i) for i in range(17)]}, "stop"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_k": 0}, "top_k"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 10, "max_completion_tokens": 20}, "max_tokens"),
    ({"seed": 1.5}, "seed"),
    ({"logprobs": "yes"}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"audio": {"voice": "alloy"}}, "audio"),
    ({"messages": [*Q, {"role": "assistant", "content": "The answer"}]}, "messages[1].role"),
    ({"messages": [{"role": "robot", "content": "q"}]}, "messages[0].role"),
    ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "x"}, *Q]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "   "}]}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"prompt": "q"}, "prompt"),  # a completions field on the chat endpoint
])
def test_invalid_field_is_400_naming_it(env, extra, param):
    _, _, http = env
    e = _err(_chat(http, **extra), 400)
    assert e["param"] == param, e


def test_completions_validation(env):
    _, _, http = env
    e = _err(http.post("/v1/completions", json={"model": "trimpomdp"}), 400)
    assert e["param"] == "prompt"
    e = _err(http.post("/v1/completions", json={"model": "trimpomdp", "prompt": ["a", "b"]}), 400)
    assert e["param"] == "prompt"
    e = _err(http.post("/v1/completions", json={"model": "trimpomdp", "prompt": "q",
                                                "messages": Q}), 400)
    assert e["param"] == "messages"  # a chat field on the completions endpoint
    for bad in ({"prompt": [1, 2, 3]}, {"prompt": "q", "echo": True},
                {"prompt": "q", "suffix": "x"}, {"prompt": "q", "logprobs": 2}, {"prompt": "q", "logprobs": -1},
                {"prompt": "q", "best_of": 3}):
        e = _err(http.post("/v1/completions", json={"model": "trimpomdp", **bad}), 400)
        assert e["param"] == next(iter(k for k in bad if k != "prompt"), "prompt"), (bad, e)


def test_missing_model_unknown_path_wrong_method_big_body(env):
    _, _, http = env
    assert _err(http.post("/v1/chat/completions", json={"messages": Q}), 400)["param"] == "model"
    _err(http.post("/v1/embeddings", json={}), 404)
    _err(http.get("/v1/chat/completions"), 405)
    big = json.dumps({"model": "trimpomdp", "messages": [{"role": "user",
                                                         "content": "x" * (2 << 20)}]})
    _err(http.post("/v1/chat/completions", content=big.encode()), 413)


@pytest.mark.parametrize("fault,needle", [
    ("500", "HTTP 500"),
    ("garbage", "not JSON"),
    ("close", "connection failed"),
])
def test_weak_upstream_failures_are_502(env, fault, needle):
    _, up, http = env
    up["weak"].inject("/v1/chat/completions", fault)
    e = _err(_chat(http), 502)
    assert needle in e["message"] and e["type"] == "upstream_error", e


def test_upstream_400_and_bad_prm_scores_are_502(env):
    _, up, http = env
    up["strong"].inject("/v1/chat/completions", "400")
    e = _err(http.post("/v1/chat/completions", json={"model": "trimpomdp", "messages": [
        {"role": "user", "content": "BADSTEP q"}]}), 502)
    assert "HTTP 400" in e["message"] and "injected bad request" in e["message"]
    up["prm"].inject("/pooling", "badscore")
    e = _err(_chat(http), 502)
    assert "P(class 1)" in e["message"]


def test_server_keeps_serving_after_errors_and_counts_them(env):
    _, _, http = env
    r = _chat(http)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].endswith("{5}.")
    text = http.get("/metrics").text
    line = next(ln for ln in text.splitlines() if ln.startswith("trim_upstream_errors_total"))
    assert int(line.split()[-1]) >= 5
    assert 'trim_requests_total{endpoint="chat",status="400"}' in text


def test_upstream_down_is_502_naming_the_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        with stubs() as up:
            cfg = config(up, weak_url=dead, check_upstream=False)
            with ServerThread(cfg) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
                e = _err(_chat(http), 502)
                assert dead in e["message"] and "connection failed" in e["message"]
                # the health check at start-up fails with an actionable message instead
            from trimpomdp.errors import BackendError

            with pytest.raises(BackendError, match="no OpenAI-compatible server answers"), \
                    ServerThread(config(up, weak_url=dead)):
                pass


def test_limits_above_the_server_settings_are_400(env):
    _, _, http = env
    e = _err(_chat(http, trim={"max_step_tokens": 4096}), 400)  # --max-step-tokens is 2048
    assert e["param"] == "trim.max_step_tokens" and "2048" in e["message"]
    r = _chat(http, max_tokens=4096, trim={"max_steps": 2})  # a whole-answer cap: any size
    assert r.status_code == 200 and r.json()["trim"]["n_steps"] == 2
    assert r.json()["choices"][0]["finish_reason"] == "length"  # cut by the step limit


def test_budget_without_strong_or_prm_is_400():
    with stubs() as up:
        cfg = config(up, strong_url=None, prm_url=None, policy="weak")
        with ServerThread(cfg) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
            e = _err(_chat(http, trim={"lambda": 0.2}), 400)
            assert e["param"] == "trim" and "--strong" in e["message"]
            r = _chat(http)  # weak-only generation still works
            assert r.status_code == 200 and r.json()["usage"]["strong_completion_tokens"] == 0
