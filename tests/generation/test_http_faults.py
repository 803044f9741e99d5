"""Retries, timeouts and back-off of the HTTP layer against a real misbehaving local server."""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends (trimpomdp[live])")

from faulty_server import FaultyServer

from trimpomdp.errors import BackendError, InputError
from trimpomdp.generation._http import JSONClient, RetryPolicy
from trimpomdp.generation.openai_compat import OpenAICompletionsBackend
from trimpomdp.generation.prm_vllm import VLLMPoolingPRM
from trimpomdp.generation.prompting import generation_messages
from trimpomdp.generation.protocols import SamplingParams

FAST = RetryPolicy(retries=2, timeout=2.0, backoff=0.01, max_backoff=0.02)
SAMPLING = SamplingParams(max_tokens=32)


def _step(url: str, retry: RetryPolicy = FAST) -> tuple:
    async def go():
        b = OpenAICompletionsBackend(url, name="weak", api="chat", retry=retry)
        try:
            out = await b.generate_step(generation_messages("What is 2+3?", []), stop=["\n\n"],
                                        sampling=SAMPLING)
            return out, b.http.n_requests, b.http.n_retries
        finally:
            await b.aclose()
    return asyncio.run(go())


def test_500s_are_retried_then_succeed():
    with FaultyServer() as srv:
        srv.inject("/v1/chat/completions", "500", "500")
        out, _, n_retry = _step(srv.url)
        assert srv.state.hits["/v1/chat/completions"] == 3 and n_retry == 2
    assert out.text == "Step 0 of weak (good)." and out.tokens == 5 and out.stopped_on_stop


def test_persistent_500_raises_backend_error_after_all_attempts():
    with FaultyServer() as srv:
        srv.inject("/v1/chat/completions", *["500"] * 5)
        with pytest.raises(BackendError, match=r"failed after 3 attempts: HTTP 500"):
            _step(srv.url)
        assert srv.state.hits["/v1/chat/completions"] == 3


def test_timeout_is_retried_and_reported():
    slow = RetryPolicy(retries=1, timeout=0.3, backoff=0.01)
    with FaultyServer() as srv:
        srv.inject("/v1/chat/completions", "sleep:1.0")
        out, _, n_retry = _step(srv.url, slow)  # the second attempt is fast
        assert out.tokens == 5 and n_retry == 1
        srv.inject("/v1/chat/completions", "sleep:1.0", "sleep:1.0")
        with pytest.raises(BackendError, match="timed out after 0.3 s"):
            _step(srv.url, slow)


def test_connection_closed_mid_response_is_retried():
    with FaultyServer() as srv:
        srv.inject("/v1/chat/completions", "close")
        out, _, n_retry = _step(srv.url)
        assert out.tokens == 5 and n_retry == 1
        srv.inject("/v1/chat/completions", "close", "close", "close")
        with pytest.raises(BackendError, match="connection failed"):
            _step(srv.url)


def test_non_json_body_is_retried():
    with FaultyServer() as srv:
        srv.inject("/v1/chat/completions", "garbage")
        _, _, n_retry = _step(srv.url)
    assert n_retry == 1


def test_client_errors_fail_at_once_without_retry():
    with FaultyServer() as srv:
        srv.inject("/v1/chat/completions", "400")
        with pytest.raises(BackendError, match="rejected with HTTP 400"):
            _step(srv.url)
        assert srv.state.hits["/v1/chat/completions"] == 1


def test_refused_connection_names_the_server():
    async def go():
        c = JSONClient("http://127.0.0.1:9", retry=RetryPolicy(retries=0, timeout=1.0))
        try:
            await c.check_health()
        finally:
            await c.aclose()
    with pytest.raises(BackendError, match=r"no OpenAI-compatible server answers at "
                                           r"http://127.0.0.1:9"):
        asyncio.run(go())


def test_semaphore_bounds_requests_in_flight():
    async def go(url):
        c = JSONClient(url, concurrency=2, retry=FAST)
        peak = 0

        async def one():
            nonlocal peak
            await c.get("/v1/models")
        orig = c._client.request

        async def tracked(*a, **k):
            nonlocal peak
            peak = max(peak, 2 - c.semaphore._value)
            return await orig(*a, **k)
        c._client.request = tracked
        await asyncio.gather(*(one() for _ in range(8)))
        await c.aclose()
        return peak
    with FaultyServer(delay=0.0) as srv:
        srv.inject("/v1/models", *["sleep:0.05"] * 8)
        assert asyncio.run(go(srv.url)) == 2


def test_bad_settings_are_input_errors():
    with pytest.raises(InputError, match="'retries' parameter"):
        RetryPolicy(retries=-1)
    with pytest.raises(InputError, match="must start with http"):
        JSONClient("localhost:8000")


def test_prm_left_truncates_long_inputs_as_score_one():
    async def go(url):
        prm = VLLMPoolingPRM(url, retry=FAST)
        try:
            steps = [f"step {i}" for i in range(9)] + ["a bad step"]
            return await prm.score_steps("q", steps)
        finally:
            await prm.aclose()
    with FaultyServer(tag="prm") as srv:
        scores = asyncio.run(go(srv.url))
    assert len(scores) == 10
    assert scores[:4] == [1.0] * 4  # dropped leading steps count as 1.0 (the release's rule)
    assert scores[4:9] == pytest.approx([0.9] * 5) and scores[9] == pytest.approx(0.1)


class _BadPRMHandler(BaseHTTPRequestHandler):
    body = b"{}"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self._send(json.dumps({"data": [{"id": "prm"}]}).encode())

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(self.body)

    def _send(self, raw):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@contextlib.contextmanager
def _bad_prm(raw: bytes):
    handler = type("H", (_BadPRMHandler,), {"body": raw})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)


@pytest.mark.parametrize("raw,field", [
    (b'{"data": [{"data": [[0.1, "abc"]]}]}', r"data\[0\]\.data\[0\]\[1\]"),
    (b'{"data": [{"data": [[0.1, NaN]]}]}', r"data\[0\]\.data\[0\]\[1\]"),
    (b'{"data": [{"data": [[0.1, null]]}]}', r"data\[0\]\.data\[0\]\[1\]"),
    (b'{"data": [{"data": [[0.1, true]]}]}', r"data\[0\]\.data\[0\]\[1\]"),
    (b'{"data": [{"data": [[0.1, 1.5]]}]}', r"data\[0\]\.data\[0\]\[1\]"),
    (b'{"data": [{"data": [[0.1, 0.9], [0.2, Infinity]]}]}', r"data\[0\]\.data\[1\]\[1\]"),
    (b'{"data": [{"data": [[0.1, 0.2, 0.7]]}]}', r"data\[0\]\.data\[0\]"),
    (b'{"data": [{"data": "x"}]}', r"data\[0\]\.data"),
    (b'{"result": 1}', r"data\[0\]\.data"),
    (b'[1, 2]', r"data\[0\]\.data"),
])
def test_bad_prm_probability_is_a_backend_error_naming_prm_and_field(raw, field):
    async def go(url):
        prm = VLLMPoolingPRM(url, retry=FAST)
        try:
            return await prm.score_steps("q", ["a step"])
        finally:
            await prm.aclose()
    with _bad_prm(raw) as url:  # noqa: SIM117 - the URL is needed in the match
        with pytest.raises(BackendError, match=rf"PRM at {url}/pooling: .*'{field}'") as exc:
            asyncio.run(go(url))
    assert "\n" not in str(exc.value)


def test_self_scoring_rejects_nan_logprobs():
    from trimpomdp.generation.prm_self import SelfScorePRM

    class Backend:
        async def continuation_logprobs(self, messages, text):
            return [(0, -0.1), (3, float("nan"))]

    with pytest.raises(BackendError, match="log-probability must be a number <= 0"):
        asyncio.run(SelfScorePRM(Backend()).score_steps("q", ["ab", "cd"]))


def test_replay_prm_rejects_non_numbers():
    from trimpomdp.generation.prm_replay import ReplayPRM

    with pytest.raises(InputError, match="field 'scores'"):
        ReplayPRM({"q": [0.5, "0.7"]})
    with pytest.raises(InputError, match="field 'scores'"):
        ReplayPRM({"q": [float("nan")]})
