"""A real local HTTP server that speaks the OpenAI/vLLM protocol and misbehaves on purpose.

Not a model: its "weak/strong model" writes scripted steps ("Step k of <tag>.", the last one with
a \\boxed answer) and its PRM scores every step 0.9 (0.1 for steps containing "bad"). Faults are
queued per path (``"500"``, ``"400"``, ``"sleep:S"``, ``"close"``, ``"garbage"``) or triggered by a
question containing ``FAIL500`` / ``FAILCLOSE``. Used by the fault tests; binds 127.0.0.1 only.
"""
from __future__ import annotations

import json
import re
import threading
import time
import zlib
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultyState:
    def __init__(self, n_steps: int = 3, tag: str = "weak", delay: float = 0.0,
                 varied: bool = False) -> None:
        self.varied = varied
        self.n_steps = n_steps
        self.tag = tag
        self.delay = delay
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.hits: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def next_fault(self, path: str) -> str:
        with self.lock:
            self.hits[path] += 1
            q = self.faults.get(path)
            return q.popleft() if q else "ok"


def _steps_done(text: str) -> int:
    tail = text.rsplit("Solution: ", 1)[-1]
    return tail.count("\n\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: FaultyState

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, code: int, obj: Any, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _close_mid_response(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 500\r\n\r\n{\"choices\": [")
        self.wfile.flush()
        self.close_connection = True
        try:
            import socket
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:
        fault = self.state.next_fault(self.path)
        if fault == "500":
            return self._send(500, {"error": "injected"})
        if self.path in ("/v1/models", "/health"):
            return self._send(200, {"object": "list", "data": [
                {"id": self.state.tag, "root": "/nonexistent/model/dir"}]})
        self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        fault = self.state.next_fault(self.path)
        text = json.dumps(body)
        if "FAIL500" in text:
            fault = "500"
        if "FAILCLOSE" in text:
            fault = "close"
        if fault.startswith("sleep:"):
            time.sleep(float(fault.split(":")[1]))
            fault = "ok"
        if fault == "500":
            return self._send(500, {"error": {"message": "injected internal error"}})
        if fault == "400":
            return self._send(400, {"error": {"message": "This model's maximum context length "
                                                         "is 64 tokens"}})
        if fault == "close":
            return self._close_mid_response()
        if fault == "garbage":
            return self._send(200, None, raw=b"<html>proxy error</html>")
        if self.state.delay:
            time.sleep(self.state.delay)
        if self.path == "/pooling":
            content = body["messages"][-1]["content"]
            steps = content.split("<extra_0>")[:-1]
            if len(steps) > 6:  # pretend the PRM's context only holds 6 steps
                return self._send(400, {"error": {"message": "maximum context length exceeded"}})
            if self.state.varied:  # scores that vary by problem: a hash of the prefix so far
                head = json.dumps(body["messages"][:-1])  # the question lives there
                ps = [0.05 + 0.9 * (zlib.crc32((head + "<extra_0>".join(steps[:i + 1]))
                                               .encode()) % 1000) / 999 for i in range(len(steps))]
                rows = [[1.0 - p, p] for p in ps]
            else:
                rows = [[0.9, 0.1] if "bad" in s else [0.1, 0.9] for s in steps]
            return self._send(200, {"data": [{"index": 0, "data": rows}]})
        if self.path in ("/v1/completions", "/v1/chat/completions"):
            prompt = body.get("prompt") or body["messages"][-1]["content"]
            k = _steps_done(prompt)
            last = k + 1 >= self.state.n_steps
            word = "bad" if re.search(r"BADSTEP", text) and self.state.tag == "weak" else "good"
            out = (f"Step {k} of {self.state.tag} ({word}). The answer is \\boxed{{5}}." if last
                   else f"Step {k} of {self.state.tag} ({word}).")
            ntok = len(out.split())
            choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                      "stop_reason": None if last else "\n\n"}
            if self.path == "/v1/completions":
                choice["text"] = out
            else:
                choice["message"] = {"role": "assistant", "content": out}
            return self._send(200, {"choices": [choice], "usage": {
                "prompt_tokens": 10, "completion_tokens": ntok, "total_tokens": 10 + ntok}})
        self._send(404, {"error": "not found"})


class FaultyServer:
    """Start with ``with FaultyServer(...) as srv: srv.url``; stops and joins its thread on exit."""

    def __init__(self, **kw: Any) -> None:
        self.state = FaultyState(**kw)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def inject(self, path: str, *faults: str) -> None:
        self.state.faults[path].extend(faults)

    def __enter__(self) -> FaultyServer:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


if __name__ == "__main__":  # serve until killed (used by the kill/resume test)
    import sys

    srv = FaultyServer(tag=sys.argv[1], delay=float(sys.argv[2]))
    print(srv.url, flush=True)
    srv.thread.start()
    srv.thread.join()
