"""The OpenAI-compatible HTTP server (aiohttp): step-routed generation behind ``/v1/*``.

Each request runs the live loop (:func:`trimpomdp.generation.loop.solve_problem`) once; the shared
upstream clients bound the requests in flight per server. Errors are OpenAI-shaped JSON: 400 for
bad requests, 404 for unknown models/paths, 502 when an upstream server fails, and a 500 that
names a log id (never a traceback) for anything unexpected.
"""
from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
import uuid
from typing import Any

from aiohttp import web

from trimpomdp.data.problems import Problem
from trimpomdp.errors import BackendError, InputError, TrimpomdpError
from trimpomdp.generation.loop import LoopConfig, solve_problem
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.serve.budget import BudgetRouters, RouterChoice
from trimpomdp.serve.config import ServeConfig
from trimpomdp.serve.metrics import CONTENT_TYPE, ServerMetrics
from trimpomdp.serve.steps import StepEvent, StepTap, TappedBackend
from trimpomdp.serve.validation import APIError, GenerationRequest, decode_json, parse_request

log = logging.getLogger("trimpomdp.serve")

_FINISH = {"final_step": "stop", "stop": "stop", "empty_steps": "stop", "max_steps": "length",
           "length": "length"}


def _finish_reason(rec: dict[str, Any], max_steps: int) -> str:
    """OpenAI's finish_reason: "length" when the step limit cut a solution short of an answer.

    The loop marks the last allowed step as final; without a \\boxed answer that is a cut.
    """
    if rec["answer"] is None and rec["n_steps"] >= max_steps:
        return "length"
    return _FINISH.get(rec["end_reason"], "stop")


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj).encode(),
                        content_type="application/json")


def _error_response(err: APIError) -> web.Response:
    return _json(err.body(), err.status)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure becomes an OpenAI-style JSON error; tracebacks go to the log only."""
    try:
        return await handler(request)
    except APIError as err:
        return _error_response(err)
    except web.HTTPException as exc:  # 404/405/413 from aiohttp itself
        if exc.status < 400:
            raise
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        msg = exc.reason if exc.status != 413 else (
            f"The request body is too large ({exc.text or exc.reason}).")
        return _json({"error": {"message": msg, "type": kind, "param": None,
                                "code": str(exc.status)}}, exc.status)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        ref = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", ref, request.method, request.path)
        return _json({"error": {"message": f"Internal server error (log id {ref}).",
                                "type": "server_error", "param": None, "code": None}}, 500)


class TrimServer:
    """Build with a :class:`ServeConfig`; ``await start()`` binds, ``await stop()`` drains.

    ``stop`` stops listening at once, lets in-flight requests finish (up to
    ``shutdown_timeout`` seconds), then closes the upstream clients.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        self.routers = BudgetRouters(config.policy, config.model, cache_size=config.policy_cache,
                                     sim_problems=config.budget_sim_problems)
        self.weak: Any = None
        self.strong: Any = None
        self.prm: Any = None
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.started = time.time()
        self.draining = False

    # ------------------------------------------------------------------ lifecycle
    def _make_clients(self) -> None:
        from trimpomdp.generation._http import RetryPolicy
        from trimpomdp.generation.openai_compat import OpenAICompletionsBackend
        from trimpomdp.generation.prm_vllm import VLLMPoolingPRM

        c = self.config
        retry = RetryPolicy(retries=c.retries, timeout=c.timeout)
        kw: dict[str, Any] = {"api": c.api, "concurrency": c.upstream_concurrency,
                              "retry": retry}
        self.weak = OpenAICompletionsBackend(c.weak_url, name="weak", tokenizer=c.weak_tokenizer,
                                             **kw)
        if c.strong_url:
            self.strong = OpenAICompletionsBackend(c.strong_url, name="strong",
                                                   tokenizer=c.strong_tokenizer, **kw)
        if c.prm_url:
            self.prm = VLLMPoolingPRM(c.prm_url, concurrency=c.upstream_concurrency, retry=retry)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_errors], client_max_size=self.config.max_body_bytes)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.prometheus)
        return app

    async def start(self) -> None:
        """Connect the upstream clients, build the default router, bind the socket."""
        self._make_clients()
        try:
            if self.config.check_upstream:
                for b in (self.weak, self.strong):
                    if b is not None:
                        await b.http.check_health()
                        await b.setup()
                if self.prm is not None:
                    await self.prm.http.check_health()
            await self.routers.start()
            self.runner = web.AppRunner(self.app(), handler_cancellation=True,
                                        shutdown_timeout=self.config.shutdown_timeout,
                                        access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, self.config.host, self.config.port, backlog=1024)
            await site.start()
        except BaseException:
            await self._close_clients()
            raise
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.config.port
        self.started = time.time()

    async def stop(self) -> None:
        """Stop listening, finish in-flight requests (up to shutdown_timeout), release clients."""
        self.draining = True
        try:
            if self.runner is not None:
                await self.runner.cleanup()
        finally:
            await self._close_clients()
            self.routers.close()

    async def _close_clients(self) -> None:
        for c in (self.weak, self.strong, self.prm):
            if c is not None:
                await c.aclose()

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    # ------------------------------------------------------------------ small endpoints
    async def models(self, request: web.Request) -> web.Response:
        return _json({"object": "list", "data": [{
            "id": self.config.served_model_name, "object": "model", "created": int(self.started),
            "owned_by": "trimpomdp", "root": self.config.policy}]})

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "draining" if self.draining else "ok",
                      "in_flight": self.metrics.in_flight}, 503 if self.draining else 200)

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render().encode(),
                            headers={"Content-Type": CONTENT_TYPE})

    # ------------------------------------------------------------------ generation
    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "completions")

    async def _generate(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        t0 = time.perf_counter()
        self.metrics.in_flight += 1
        status = 500
        try:
            resp, status = await self._serve_one(request, endpoint, t0)
            return resp
        except APIError as err:
            status = err.status
            if err.status == 502:
                self.metrics.inc("trim_upstream_errors_total")
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            status = 499  # client closed the connection (nginx's convention)
            self.metrics.inc("trim_client_disconnects_total")
            raise
        finally:
            self.metrics.in_flight -= 1
            self.metrics.inc("trim_requests_total", endpoint=endpoint, status=str(status))
            self.metrics.observe("trim_request_duration_seconds", time.perf_counter() - t0,
                                 endpoint=endpoint)

    async def _read(self, request: web.Request, endpoint: str) -> GenerationRequest:
        raw = await request.read()
        req = parse_request(decode_json(raw), endpoint)
        if req.model != self.config.served_model_name:
            raise APIError(404, f"The model '{req.model}' does not exist; this server serves "
                           f"'{self.config.served_model_name}'.", param="model",
                           code="model_not_found")
        return req

    async def _choose(self, req: GenerationRequest) -> RouterChoice:
        if req.budget is not None and (self.strong is None or self.prm is None):
            raise APIError(400, "This server has no strong model or no PRM (--strong, --prm), so "
                           "it cannot route by a budget; drop 'trim.lambda' / "
                           "'trim.strong_token_share'.", param="trim")
        try:
            return await self.routers.choose(req.budget)
        except InputError as exc:
            param = "trim.strong_token_share" if req.budget and \
                req.budget.strong_token_share is not None else "trim.lambda"
            raise APIError(400, f"Cannot meet the requested budget: {exc.reason}",
                           param=param) from None

    def _loop_config(self, req: GenerationRequest) -> LoopConfig:
        c = self.config
        if req.max_step_tokens is not None and req.max_step_tokens > c.max_step_tokens:
            raise APIError(400, f"'max_tokens' (a per-step limit here) must be <= "
                           f"{c.max_step_tokens}, this server's --max-step-tokens. Got "
                           f"{req.max_step_tokens} instead.", param="max_tokens")
        if req.max_steps is not None and req.max_steps > c.max_steps:
            raise APIError(400, f"'trim.max_steps' must be <= {c.max_steps}, this server's "
                           f"--max-steps. Got {req.max_steps} instead.", param="trim.max_steps")
        sampling = SamplingParams(
            temperature=c.temperature if req.temperature is None else req.temperature,
            top_p=c.top_p if req.top_p is None else req.top_p,
            top_k=c.top_k if req.top_k is None else req.top_k,
            max_tokens=req.max_step_tokens or c.max_step_tokens, seed=req.seed)
        return LoopConfig(max_steps=req.max_steps or c.max_steps, sampling=sampling)

    async def _serve_one(self, request: web.Request, endpoint: str, t0: float
                         ) -> tuple[web.StreamResponse, int]:
        req = await self._read(request, endpoint)
        cfg = self._loop_config(req)
        choice = await self._choose(req)
        problem = Problem(problem_id=uuid.uuid4().hex, question=req.question, answer="")
        rid = ("chatcmpl-" if endpoint == "chat" else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        if not req.stream:
            rec, loop_s = await self._run_loop(problem, choice, cfg, None)
            body = _full_response(req, rid, created, rec, choice,
                                  _finish_reason(rec, cfg.max_steps))
            resp = _json(body)
            self._observe_overhead(rec, t0, loop_s)
            return resp, 200
        return await self._stream(request, req, problem, choice, cfg, rid, created, t0)

    async def _run_loop(self, problem: Problem, choice: RouterChoice, cfg: LoopConfig,
                        tap: StepTap | None) -> tuple[dict[str, Any], float]:
        weak, strong = self.weak, self.strong
        if tap is not None:
            weak = TappedBackend(weak, tap, "weak")
            strong = None if strong is None else TappedBackend(strong, tap, "strong")
        ts = time.perf_counter()
        try:
            rec = await solve_problem(problem, weak, strong, self.prm, choice.factory(), cfg)
        except BackendError as exc:
            raise APIError(502, f"An upstream model server failed: {exc}", type="upstream_error",
                           code="upstream_failed") from None
        except TrimpomdpError as exc:  # the loop rejected what an upstream sent back
            raise APIError(502, f"An upstream model server sent an unusable answer: {exc}",
                           type="upstream_error", code="upstream_invalid") from None
        self.metrics.record_solution(rec)
        return rec, time.perf_counter() - ts

    def _observe_overhead(self, rec: dict[str, Any], t0: float, loop_s: float) -> None:
        self.metrics.observe("trim_server_overhead_seconds",
                             max(0.0, time.perf_counter() - t0 - loop_s))

    async def _stream(self, request: web.Request, req: GenerationRequest, problem: Problem,
                      choice: RouterChoice, cfg: LoopConfig, rid: str, created: int, t0: float
                      ) -> tuple[web.StreamResponse, int]:
        """SSE: one chunk per accepted step; headers go out with the first step, so an upstream
        failure before any step is still a plain 502."""
        tap = StepTap()
        task = asyncio.ensure_future(self._run_loop(problem, choice, cfg, tap))
        resp: web.StreamResponse | None = None

        async def send(obj: Any) -> None:
            nonlocal resp
            if resp is None:
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                   "Cache-Control": "no-cache"})
                await resp.prepare(request)
                await resp.write(_sse(_chunk(req, rid, created, delta_role=True)))
            await resp.write(obj if isinstance(obj, bytes) else _sse(obj))

        try:
            while True:
                getter = asyncio.ensure_future(tap.queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await send(_step_chunk(req, rid, created, getter.result()))
                    continue
                getter.cancel()
                while not tap.queue.empty():
                    await send(_step_chunk(req, rid, created, tap.queue.get_nowait()))
                break
            try:
                rec, loop_s = task.result()
            except Exception as exc:
                if resp is None:
                    raise  # nothing sent yet: a plain JSON error (middleware)
                if isinstance(exc, APIError):
                    err = exc
                else:
                    ref = uuid.uuid4().hex[:12]
                    log.exception("internal error %s while streaming", ref)
                    err = APIError(500, f"Internal server error (log id {ref}).",
                                   type="server_error")
                await send({"error": err.body()["error"]})  # headers are out: report in-band
                await send(b"data: [DONE]\n\n")
                return resp, err.status
            for ev in tap.finish(rec):
                await send(_step_chunk(req, rid, created, ev))
            final = _chunk(req, rid, created, finish=_finish_reason(rec, cfg.max_steps))
            final["trim"] = _trim_info(req, rec, choice)
            await send(final)
            if req.include_usage:
                await send({**_chunk(req, rid, created), "choices": [], "usage": _usage(rec)})
            await send(b"data: [DONE]\n\n")
            assert resp is not None
            await resp.write_eof()
            self._observe_overhead(rec, t0, loop_s)
            return resp, 200
        finally:
            if not task.done():
                task.cancel()


# ---------------------------------------------------------------------- response bodies
def _usage(rec: dict[str, Any]) -> dict[str, Any]:
    w, s = int(rec["weak_tokens"]), int(rec["strong_tokens"])
    return {"prompt_tokens": 0, "completion_tokens": w + s, "total_tokens": w + s,
            "weak_completion_tokens": w, "strong_completion_tokens": s,
            "discarded_weak_tokens": int(rec["discarded_weak_tokens"])}


def _trim_info(req: GenerationRequest, rec: dict[str, Any], choice: RouterChoice
               ) -> dict[str, Any]:
    info: dict[str, Any] = {"policy": choice.policy, "lambda": choice.lam,
                            "strong_token_share": choice.strong_token_share,
                            "n_steps": rec["n_steps"], "n_regenerated": rec["n_regenerated"],
                            "end_reason": rec["end_reason"],
                            "timing": {k: round(v, 6) for k, v in rec["timing"].items()}}
    if req.trace:
        info["trace"] = [{k: v for k, v in s.items() if k != "prefix_scores"}
                         for s in rec["steps"]]
    return info


def _full_response(req: GenerationRequest, rid: str, created: int, rec: dict[str, Any],
                   choice: RouterChoice, finish: str) -> dict[str, Any]:
    if req.endpoint == "chat":
        ch: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None,
                              "message": {"role": "assistant", "content": rec["solution"]}}
        obj = "chat.completion"
    else:
        ch = {"index": 0, "finish_reason": finish, "logprobs": None, "text": rec["solution"]}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": req.model, "choices": [ch],
            "usage": _usage(rec), "trim": _trim_info(req, rec, choice)}


def _chunk(req: GenerationRequest, rid: str, created: int, *, text: str | None = None,
           delta_role: bool = False, finish: str | None = None) -> dict[str, Any]:
    if req.endpoint == "chat":
        delta: dict[str, Any] = {}
        if delta_role:
            delta = {"role": "assistant", "content": ""}
        elif text is not None:
            delta = {"content": text}
        ch: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        ch = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": req.model, "choices": [ch]}


def _step_chunk(req: GenerationRequest, rid: str, created: int, ev: StepEvent) -> dict[str, Any]:
    text = ev.text if ev.index == 0 else "\n\n" + ev.text
    out = _chunk(req, rid, created, text=text)
    out["trim"] = {"step": ev.index, "source": ev.source, "tokens": ev.tokens}
    return out


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


# ---------------------------------------------------------------------- blocking entry point
async def serve_forever(config: ServeConfig, *, ready: Any = None) -> None:
    """Run until SIGINT/SIGTERM, then drain in-flight requests and return."""
    server = TrimServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.warning("trimpomdp serve: listening on %s (policy %s, model name %r)", server.url,
                config.policy, config.served_model_name)
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
        log.warning("trimpomdp serve: shutting down, finishing %d in-flight request(s)",
                    server.metrics.in_flight)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()
    log.warning("trimpomdp serve: stopped")
