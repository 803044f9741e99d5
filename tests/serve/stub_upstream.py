"""A real local HTTP server speaking the vLLM/OpenAI protocol with scripted answers (not a model).

Protocol-level stand-in for the weak/strong/PRM servers: the "model" writes ``Step k of <tag>
(good|bad).`` (the last one with ``\\boxed{5}``), the weak one writes "bad" steps when the question
contains ``BADSTEP``; the PRM scores "bad" steps 0.1 and others 0.9. Faults are queued per path
(``"500"``, ``"400"``, ``"close"``, ``"garbage"``, ``"sleep:S"``, ``"badscore"``,
``"nonnumeric"``) or triggered by the question (``FAIL500``, ``FAILCLOSE``, ``FAILSTEP2`` = 500
from the third step on). ``max_tokens`` (one word = one token) and extra ``stop`` strings are
honoured; ``usage.prompt_tokens`` counts the words of the prompt; request bodies are kept in
``bodies``. aiohttp on its own thread and event loop, so it answers hundreds of concurrent
requests; binds 127.0.0.1.
Run ``python tests/serve/stub_upstream.py [N_STEPS] [DELAY]`` for all three roles (URLs as JSON).
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import defaultdict, deque
from typing import Any

from aiohttp import web


class StubUpstream:
    """``with StubUpstream(tag="weak") as s: s.url`` — one role (weak, strong or prm)."""

    def __init__(self, tag: str = "weak", *, n_steps: int = 3, delay: float = 0.0,
                 token_delay: float = 0.0) -> None:
        self.tag = tag
        self.n_steps = n_steps
        self.delay = delay
        #: seconds between streamed tokens (``"stream": true`` requests)
        self.token_delay = token_delay
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.hits: dict[str, int] = defaultdict(int)
        #: the request bodies received, per path (latest last)
        self.bodies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.in_flight = 0
        self.max_in_flight = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, path: str, *faults: str) -> None:
        self.faults[path].extend(faults)

    # ------------------------------------------------------------------ handlers
    async def _models(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        return web.json_response({"object": "list", "data": [
            {"id": self.tag, "root": "/nonexistent/model/dir"}]})

    async def _post(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, path)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, path: str) -> web.StreamResponse:
        body = await request.json()
        self.bodies[path].append(body)
        q = self.faults.get(path)
        fault = q.popleft() if q else "ok"
        text = json.dumps(body)
        prompt = body.get("prompt") or (body.get("messages") or [{}])[-1].get("content", "")
        if path == "/pooling":
            prompt = body["messages"][-1]["content"]
        k = _steps_done(prompt) if path != "/pooling" else 0
        if "FAIL500" in text or ("FAILSTEP2" in text and k >= 2):
            fault = "500"
        if "FAILCLOSE" in text:
            fault = "close"
        if fault.startswith("sleep:"):
            await asyncio.sleep(float(fault.split(":")[1]))
            fault = "ok"
        if fault == "500":
            return web.json_response({"error": {"message": "injected internal error"}}, status=500)
        if fault == "400":
            return web.json_response({"error": {"message": "injected bad request"}}, status=400)
        if fault == "garbage":
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        if fault == "close":
            request.transport.close()  # type: ignore[union-attr]
            raise asyncio.CancelledError
        if self.delay:
            await asyncio.sleep(self.delay)
        if path == "/pooling":
            steps = prompt.split("<extra_0>")[:-1]
            if fault == "badscore":
                rows = [[-0.5, 1.5] for _ in steps]
            elif fault == "nonnumeric":
                rows = [["high", "low"] for _ in steps]
            else:
                rows = [[0.9, 0.1] if "bad" in s else [0.1, 0.9] for s in steps]
            return web.json_response({"data": [{"index": 0, "data": rows}]})
        last = k + 1 >= self.n_steps
        word = "bad" if "BADSTEP" in text and self.tag == "weak" else "good"
        out = f"Step {k} of {self.tag} ({word})."
        if last:
            out += " The answer is \\boxed{5}."
        words = out.split()
        finish, stop_reason = "stop", None if last else "\n\n"
        cap = body.get("max_tokens")
        if isinstance(cap, int) and cap < len(words):  # honour the token limit (1 word = 1 token)
            out, finish, stop_reason = " ".join(words[:cap]), "length", None
        for st in body.get("stop") or []:  # honour extra stop strings, as vLLM does
            if st != "\n\n" and st in out:
                out, finish, stop_reason = out[:out.index(st)], "stop", st
        ntok = len(out.split())
        ptok = len(json.dumps(body.get("messages") or body.get("prompt") or "").split())
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish,
                                  "stop_reason": stop_reason}
        toks = re.findall(r"\S+\s*", out)  # one token per word, spaces attached
        lp = -0.5 if self.tag == "weak" else -0.05  # tells the writer of each token apart
        if path == "/v1/completions":
            choice["text"] = out
            if body.get("logprobs") is not None and body.get("logprobs") is not False:
                choice["logprobs"] = {"tokens": toks, "token_logprobs": [lp] * len(toks)}
        else:
            choice["message"] = {"role": "assistant", "content": out}
            if body.get("logprobs") is True and "NOLOGPROBS" not in text:
                choice["logprobs"] = {"content": [{"token": t, "logprob": lp} for t in toks]}
        usage = {"prompt_tokens": ptok, "completion_tokens": ntok, "total_tokens": ptok + ntok}
        if body.get("stream"):  # SSE, one event per token, as vLLM streams
            return await self._stream(request, path, toks, choice, usage)
        return web.json_response({"choices": [choice], "usage": usage})

    async def _stream(self, request: web.Request, path: str, toks: list[str],
                      choice: dict[str, Any], usage: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(obj: Any) -> None:
            await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")

        for t in toks:
            piece: dict[str, Any] = {"index": 0, "finish_reason": None}
            piece.update({"text": t} if path == "/v1/completions" else {"delta": {"content": t}})
            await send({"choices": [piece]})
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
        end = {"index": 0, "finish_reason": choice["finish_reason"],
               "stop_reason": choice["stop_reason"]}
        end.update({"text": ""} if path == "/v1/completions" else {"delta": {}})
        await send({"choices": [end]})
        await send({"choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    # ------------------------------------------------------------------ lifecycle
    async def _start(self, port: int) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._models)
        for p in ("/v1/completions", "/v1/chat/completions", "/pooling"):
            app.router.add_post(p, self._post)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self, port: int = 0) -> StubUpstream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(port), self.loop).result(10)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
            self.runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def __enter__(self) -> StubUpstream:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _steps_done(text: str) -> int:
    return text.rsplit("Solution: ", 1)[-1].count("\n\n")


if __name__ == "__main__":  # weak, strong and prm stubs; prints their URLs as JSON; until killed
    import signal
    import sys

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    stubs = {t: StubUpstream(t, n_steps=n, delay=delay).start() for t in ("weak", "strong", "prm")}
    print(json.dumps({t: s.url for t, s in stubs.items()}), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for s in stubs.values():
        s.stop()
