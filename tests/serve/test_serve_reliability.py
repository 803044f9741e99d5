"""Reliability of ``trimpomdp serve`` (issue 13 item 6, issue 12 item 5): deeply nested JSON and
lone surrogates are 400s, a non-numeric PRM probability is a 502 naming the PRM, a port in use is
one line and exit 2, a disconnected stream leaves no pending task, and a routing rule's failure
is a 500 naming the rule (not a 502 blaming an upstream).
"""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

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
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body["error"]


def _post(http, raw: bytes, path="/v1/chat/completions"):
    return http.post(path, content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the C parser's recursion limit
    b'{"model": "trimpomdp", "messages": ' + b"[" * 70 + b"]" * 70 + b"}",
    b'{"model": "trimpomdp", "metadata": ' + b'{"a": ' * 80 + b"1" + b"}" * 80 + b"}",
])
def test_deeply_nested_json_is_400(env, raw):
    _, _, http = env
    e = _err(_post(http, raw), 400)
    assert "nested more than" in e["message"] or "JSON object" in e["message"]


@pytest.mark.parametrize("raw,param", [
    (b'{"model": "trimpomdp", "messages": [{"role": "user", "content": "x \\ud800 y"}]}',
     "messages[0].content"),
    ((b'{"model": "trimpomdp", "messages": [{"role": "user", "content": "q"}], '
     b'"user": "\\udfff"}'), "user"),
    ((b'{"model": "trimpomdp", "messages": [{"role": "user", "content": "q"}], '
     b'"metadata": {"\\ud83d": 1}}'), "metadata."),
])
def test_lone_surrogates_are_400_naming_the_field(env, raw, param):
    _, _, http = env
    e = _err(_post(http, raw), 400)
    assert "surrogate" in e["message"]
    assert e["param"].startswith(param), e


def test_a_valid_surrogate_pair_is_fine(env):
    _, _, http = env
    raw = b'{"model": "trimpomdp", "messages": [{"role": "user", "content": "\\ud83d\\ude00 2+3?"}]}'
    assert _post(http, raw).status_code == 200


@pytest.mark.parametrize("fault", ["nonnumeric", "badscore"])
def test_unusable_prm_probability_is_502_naming_the_prm(env, fault):
    _, up, http = env
    up["prm"].inject("/pooling", fault)
    e = _err(http.post("/v1/chat/completions", json={"model": "trimpomdp", "messages": Q}), 502)
    assert e["type"] == "upstream_error" and up["prm"].url in e["message"], e
    assert "PRM" in e["message"] or "/pooling" in e["message"]


def test_a_routing_rule_error_is_500_naming_the_rule(env):
    srv, _, http = env
    from trimpomdp.serve.budget import RouterChoice

    class Broken:
        def reset(self):
            pass

        def decide(self, score, tokens, step, final=False):
            raise RuntimeError("SeqPolicy must see every step in order")

    routers = srv.server.routers
    original = routers.choose

    async def choose(budget):
        return RouterChoice(lambda: Broken(), "seq:models/x.json")

    routers.choose = choose
    try:
        e = _err(http.post("/v1/chat/completions", json={"model": "trimpomdp", "messages": Q}),
                 500)
    finally:
        routers.choose = original
    assert e["type"] == "server_error" and e["code"] == "routing_error"
    assert "seq:models/x.json" in e["message"] and "every step in order" in e["message"]
    m = http.get("/metrics").text
    assert 'trim_requests_total{endpoint="chat",status="500"} 1' in m


def test_a_disconnected_stream_leaves_no_pending_task():
    with stubs(delay=0.3) as up, ServerThread(config(up, sse_keepalive=0.1)) as srv:
        with httpx.stream("POST", srv.url + "/v1/chat/completions", timeout=30, json={
                "model": "trimpomdp", "messages": Q, "stream": True, "n": 2}) as r:
            for line in r.iter_lines():
                if "keep-alive" in line or '"content"' in line:
                    break  # the client goes away mid-stream
        time.sleep(1.0)

        async def leftovers():
            me = asyncio.current_task()
            return [t for t in asyncio.all_tasks() if t is not me and not t.done()
                    and "_run_" not in repr(t) and any(k in repr(t.get_coro()) for k in (
                        "run", "solve_problem", "Queue.get", "_serve_one", "stream_answers"))]

        assert srv.call(leftovers()) == []
        m = httpx.get(srv.url + "/metrics").text
        assert "trim_requests_in_flight 0" in m
        assert 'status="499"' in m


def test_port_in_use_is_one_line_and_exit_2(capsys):
    from trimpomdp.cli.main import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--weak", "http://127.0.0.1:9", "--policy", "weak",
                     "--skip-upstream-check", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trimpomdp serve: error: field 'port':") and "\n" not in err
    assert f"127.0.0.1:{port} is already in use" in err


def test_port_in_use_real_process_no_traceback():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "trimpomdp.cli.main", "serve", "--weak",
                            "http://127.0.0.1:9", "--policy", "weak", "--skip-upstream-check",
                            "--port", str(port)], capture_output=True, text=True, timeout=120,
                           check=False)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_error_bodies_are_valid_json_without_nan(env):
    _, _, http = env
    r = _post(http, b'{"model": "trimpomdp", "messages": [], "temperature": Infinity}')
    e = _err(r, 400)
    json.loads(r.text)  # strict
    assert "not valid JSON" in e["message"]


def test_one_failing_answer_of_n_fails_the_request_and_cancels_the_other(env):
    srv, up, http = env
    up["weak"].inject("/v1/chat/completions", "ok", "500")
    e = _err(http.post("/v1/chat/completions", json={"model": "trimpomdp", "messages": Q,
                                                     "n": 2}), 502)
    assert "HTTP 500" in e["message"]
    r = http.post("/v1/chat/completions", json={"model": "trimpomdp", "messages": Q, "n": 2})
    assert r.status_code == 200 and len(r.json()["choices"]) == 2  # and the server goes on


def test_a_failure_after_a_keepalive_is_reported_in_band():
    with stubs(delay=0.4) as up, ServerThread(config(up, sse_keepalive=0.1)) as srv:
        up["weak"].inject("/v1/chat/completions", "sleep:0.3", "500")
        with httpx.stream("POST", srv.url + "/v1/chat/completions", timeout=30, json={
                "model": "trimpomdp", "messages": Q, "stream": True}) as r:
            assert r.status_code == 200  # the headers went out with the first keep-alive
            lines = [ln for ln in r.iter_lines() if ln]
    assert lines[0].startswith("data: ") or lines[0].startswith(": keep-alive")
    err = next(json.loads(ln[6:]) for ln in lines if ln.startswith('data: {"error"'))
    assert err["error"]["type"] == "upstream_error" and lines[-1] == "data: [DONE]"
