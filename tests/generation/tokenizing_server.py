"""A real local HTTP server speaking vLLM's token-id protocol, with a code-point "tokenizer".

Token ids are Unicode code points, so a prompt of ids decodes exactly and tests can read what the
model was sent. ``/tokenize`` renders chat messages with a tiny template
(``<u>USER</u><a>ASSISTANT``; with ``trim=True`` message content is stripped, like Llama-3's
``| trim``), honouring ``continue_final_message`` the way Hugging Face does (the rendering stops
at the end of the final message's content as the template wrote it). ``/detokenize``,
``/v1/completions`` (text or ids), ``/v1/chat/completions`` and ``/pooling`` (score 0.9 per
marker) answer like vLLM. Every request's path, headers and body are kept in ``requests``.
Without ``tokenize=True`` the server has no ``/tokenize`` (404), like a non-vLLM server.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def render(messages: list[dict[str, str]], *, trim: bool, continue_final: bool) -> str:
    """The stub template: ``<u>…</u>`` user turns, ``<s>…</s>`` system, ``<a>…</a>`` assistant."""
    tags = {"user": "u", "system": "s", "assistant": "a"}
    out = ""
    for i, m in enumerate(messages):
        content = m["content"].strip() if trim else m["content"]
        tag = tags[m["role"]]
        out += f"<{tag}>{content}"
        if not (continue_final and i == len(messages) - 1):
            out += f"</{tag}>"
    return out


class TokenizingServer:
    """``with TokenizingServer(tokenize=True, trim=False) as srv: srv.url``."""

    def __init__(self, *, tokenize: bool = True, trim: bool = False, n_steps: int = 3,
                 tag: str = "weak") -> None:
        self.tokenize = tokenize
        self.trim = trim
        self.n_steps = n_steps
        self.tag = tag
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"srv": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def bodies(self, path: str) -> list[Any]:
        return [b for p, _, b in self.requests if p == path]

    def __enter__(self) -> TokenizingServer:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    srv: TokenizingServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with self.srv.lock:
            self.srv.requests.append((self.path, dict(self.headers), None))
        if self.path in ("/v1/models", "/health"):
            return self._send(200, {"object": "list", "data": [
                {"id": self.srv.tag, "root": "/nonexistent/model/dir"}]})
        self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        with self.srv.lock:
            self.srv.requests.append((self.path, dict(self.headers), body))
        s = self.srv
        if self.path == "/tokenize" and s.tokenize:
            if "messages" in body:
                text = render(body["messages"], trim=s.trim,
                              continue_final=bool(body.get("continue_final_message")))
            else:
                text = body["prompt"]
            return self._send(200, {"tokens": [ord(c) for c in text], "count": len(text),
                                    "max_model_len": 4096})
        if self.path == "/detokenize" and s.tokenize:
            return self._send(200, {"prompt": "".join(chr(t) for t in body["tokens"])})
        if self.path == "/pooling":
            content = body["messages"][-1]["content"] if "messages" in body else ""
            rows = [[0.1, 0.9] for _ in content.split("<extra_0>")[:-1]]
            return self._send(200, {"data": [{"index": 0, "data": rows}]})
        if self.path in ("/v1/completions", "/v1/chat/completions"):
            prompt = body.get("prompt")
            if isinstance(prompt, list):
                prompt = "".join(chr(t) for t in prompt)
            elif prompt is None:
                prompt = body["messages"][-1]["content"]
            k = prompt.rsplit("Solution: ", 1)[-1].count("\n\n")
            last = k + 1 >= s.n_steps
            out = f"Step {k} of {s.tag}." + (" The answer is \\boxed{5}." if last else "")
            choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                      "stop_reason": None if last else "\n\n"}
            if self.path == "/v1/completions":
                choice["text"] = out
            else:
                choice["message"] = {"role": "assistant", "content": out}
            return self._send(200, {"choices": [choice], "usage": {
                "prompt_tokens": len(prompt), "completion_tokens": len(out.split()),
                "total_tokens": len(prompt) + len(out.split())}})
        self._send(404, {"error": {"message": "not found"}})
