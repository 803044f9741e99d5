"""Graceful shutdown of the real ``trimpomdp serve`` process: SIGTERM lets in-flight requests
finish (plain and streaming), refuses new connections, and the process exits 0."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import stubs

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(f"trimpomdp serve not healthy at {url} after {timeout} s")


def test_sigterm_finishes_in_flight_requests_then_exits():
    # each upstream call takes 0.4 s: 3 steps x (draft + score) = ~2.4 s per request
    with stubs(n_steps=3, delay=0.4) as up:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "trimpomdp", "serve", "--weak", up["weak"].url,
             "--strong", up["strong"].url,
             "--prm", up["prm"].url, "--port", str(port), "--shutdown-timeout", "30"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)))
        try:
            _wait_healthy(url, proc)
            results: dict[int, object] = {}

            def call(i: int) -> None:
                body = {"model": "trimpomdp", "messages": [{"role": "user", "content": f"q{i}"}],
                        "stream": i % 2 == 1}
                try:
                    with httpx.stream("POST", url + "/v1/chat/completions", json=body,
                                      timeout=60) as r:
                        results[i] = (r.status_code, r.read().decode())
                except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                    results[i] = exc

            threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while up["weak"].hits["/v1/chat/completions"] < 6 and time.monotonic() < deadline:
                time.sleep(0.05)  # every request has reached the weak model: all are in flight
            t_term = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(httpx.ConnectError):  # no longer listening
                httpx.post(url + "/v1/chat/completions", json={}, timeout=5)
            for t in threads:
                t.join(timeout=60)
            rc = proc.wait(timeout=60)
            waited = time.monotonic() - t_term
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0, proc.stderr.read() if proc.stderr else ""
    assert waited > 1.0  # it did wait for the requests (each needs ~2.4 s)
    assert sorted(results) == list(range(6))
    for i, res in results.items():
        assert not isinstance(res, Exception), (i, res)
        status, text = res
        assert status == 200, text
        if i % 2:
            assert text.rstrip().endswith("data: [DONE]")
            assert text.count('"source": "weak"') == 3
        else:
            assert json.loads(text)["choices"][0]["message"]["content"].endswith("\\boxed{5}.")
