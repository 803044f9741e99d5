"""The OpenAI-compatible HTTP server (aiohttp): step-routed generation behind ``/v1/*``.

Each answer runs the live loop (:func:`trimpomdp.generation.loop.solve_problem`) once through a
per-answer view of the shared upstream clients (:mod:`trimpomdp.serve.session`). The parts live
by concept: request parsing (:mod:`~trimpomdp.serve.openai_schema`, bounded JSON in
:mod:`~trimpomdp.serve.jsonbody`), model names and budgets (:mod:`~trimpomdp.serve.models`,
:mod:`~trimpomdp.serve.budget`), response bodies (:mod:`~trimpomdp.serve.responses`), SSE
(:mod:`~trimpomdp.serve.streaming`), HTTP plumbing: request ids, access log, CORS, API key, error
bodies (:mod:`~trimpomdp.serve.http`); the upstream clients come from the wiring shared with
``trimpomdp run`` (:mod:`trimpomdp.generation.wiring`).

Status codes: 400 bad requests, 401 a wrong API key, 404 unknown models/paths, 502 when an upstream
server fails or answers unusably, 500 (naming the request id, never a traceback) for the server's
own failures, a routing rule's included.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import signal
import socket
import time
import uuid
from typing import Any, cast

from aiohttp import web

from trimpomdp.data.problems import Problem
from trimpomdp.errors import BackendError, InputError, TrimpomdpError
from trimpomdp.generation.loop import LoopConfig, solve_problem
from trimpomdp.generation.prompting import STEP_SEPARATOR
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.generation.wiring import (
    GuardedRouter,
    RoutingError,
    Upstreams,
    build_upstreams,
    new_router,
    resolve_max_steps,
    warn_learned_bookkeeping,
)
from trimpomdp.serve.budget import BudgetRouters, RouterChoice
from trimpomdp.serve.config import ServeConfig
from trimpomdp.serve.errors import APIError, json_response
from trimpomdp.serve.http import MODEL_KEY, add_response_headers, make_middlewares, request_id
from trimpomdp.serve.jsonbody import decode_json
from trimpomdp.serve.metrics import CONTENT_TYPE, ServerMetrics, TimedBackend, TimedPRM
from trimpomdp.serve.models import budget_from_model, model_card
from trimpomdp.serve.openai_schema import GenerationRequest, parse_request
from trimpomdp.serve.responses import Answer, full_response, trim_info
from trimpomdp.serve.session import AnswerSession
from trimpomdp.serve.steps import StepTap
from trimpomdp.serve.streaming import run_all, stream_answers

log = logging.getLogger("trimpomdp.serve")


def check_port_free(host: str, port: int) -> None:
    """Fail at once, with one clear line, if ``host:port`` cannot be bound (before slow set-up)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"cannot resolve the host {host!r} ({exc.strerror}).",
                         field="host") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            s.bind(addr)
        except OSError as exc:
            raise _bind_error(host, port, exc) from None


def _bind_error(host: str, port: int, exc: OSError) -> InputError:
    if exc.errno == errno.EADDRINUSE:
        return InputError(f"{host}:{port} is already in use (another server is listening "
                          "there); stop it or pick another --port.", field="port")
    if exc.errno == errno.EACCES:
        return InputError(f"no permission to listen on {host}:{port} (ports below 1024 need "
                          "root); pick another --port.", field="port")
    return InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}).", field="host")


class TrimServer:
    """Build with a :class:`ServeConfig`; ``await start()`` binds, ``await stop()`` drains.

    ``stop`` stops listening at once, lets in-flight requests finish (up to
    ``shutdown_timeout`` seconds), then closes the upstream clients.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        self.profile = config.profile()
        #: the step limit in force (resolved against the policy's horizon at start)
        self.max_steps: int = config.max_steps or self.profile.max_steps
        # model-free rules take the step limit as their horizon (a POMDP's is its model's)
        self.routers = BudgetRouters(config.policy, config.model, cache_size=config.policy_cache,
                                     sim_problems=config.budget_sim_problems,
                                     target_share=config.target_share,
                                     target_window=config.target_window,
                                     max_steps=self.max_steps)
        if config.target_share is not None:
            self.metrics.closed_loop = self.routers.closed_state
        self.upstreams: Upstreams | None = None
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.started = time.time()
        self.draining = False

    # the shared clients, by role (tests and benchmarks read them)
    @property
    def weak(self) -> Any:
        return None if self.upstreams is None else self.upstreams.weak

    @property
    def strong(self) -> Any:
        return None if self.upstreams is None else self.upstreams.strong

    @property
    def prm(self) -> Any:
        return None if self.upstreams is None else self.upstreams.prm

    # ------------------------------------------------------------------ lifecycle
    def app(self) -> web.Application:
        c = self.config
        app = web.Application(middlewares=make_middlewares(
            api_key=c.api_key, allowed_origins=c.allowed_origins),
            client_max_size=c.max_body_bytes)
        app.on_response_prepare.append(add_response_headers(c.allowed_origins))
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model_id:.+}", self.model)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.prometheus)
        return app

    async def start(self) -> None:
        """Check the port, connect the upstream clients, build the default router, bind."""
        c = self.config
        check_port_free(c.host, c.port)
        self.profile = c.profile()
        self.upstreams = build_upstreams(c.upstream_settings(), self.profile)
        try:
            if c.check_upstream:
                await self.upstreams.check()
            await self.routers.start()
            default = await self.routers.choose(None)
            # serve's loop books strong steps' PRM scores (LoopConfig's default)
            warn_learned_bookkeeping(default.factory, LoopConfig().score_strong_steps, c.policy)
            self.max_steps = resolve_max_steps(c.max_steps, self.profile.max_steps,
                                               default.factory, c.policy)
            self.runner = web.AppRunner(self.app(), handler_cancellation=True,
                                        shutdown_timeout=c.shutdown_timeout, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, c.host, c.port, backlog=1024)
            try:
                await site.start()
            except OSError as exc:
                raise _bind_error(c.host, c.port, exc) from None
        except BaseException:
            if self.runner is not None:
                await self.runner.cleanup()
                self.runner = None
            await self.upstreams.aclose()
            self.routers.close()
            raise
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr,attr-defined]
        self.port = int(sockets[0].getsockname()[1]) if sockets else c.port
        self.started = time.time()

    async def stop(self) -> None:
        """Stop listening, finish in-flight requests (up to shutdown_timeout), release clients."""
        self.draining = True
        try:
            if self.runner is not None:
                await self.runner.cleanup()
        finally:
            if self.upstreams is not None:
                await self.upstreams.aclose()
            self.routers.close()

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    # ------------------------------------------------------------------ small endpoints
    async def models(self, request: web.Request) -> web.Response:
        c = self.config
        return json_response({"object": "list", "data": [
            model_card(c.served_model_name, int(self.started), c.policy)]})


    async def model(self, request: web.Request) -> web.Response:
        """``GET /v1/models/{id}``: the served name, or a budget name (``<name>-lambda-0.25``)."""
        mid = request.match_info["model_id"]
        budget = budget_from_model(mid, self.config.served_model_name)  # 404 if unknown
        root = self.config.policy if budget is None else (
            f"lambda:{budget.lam:g}" if budget.lam is not None
            else f"strong_token_share:{budget.strong_token_share:g}")
        return json_response(model_card(mid, int(self.started), root))

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "draining" if self.draining else "ok",
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
        req = parse_request(decode_json(raw), endpoint, max_n=self.config.max_n)
        request[MODEL_KEY] = req.model
        budget = budget_from_model(req.model, self.config.served_model_name)
        if budget is not None:
            if req.budget is not None and req.budget != budget:
                raise APIError(400, f"The model name '{req.model}' already sets a budget; drop "
                               "'trim.lambda' / 'trim.strong_token_share' or use the plain model "
                               f"name '{self.config.served_model_name}'.", param="trim")
            req = _replace(req, budget=budget)
        if req.ignored:
            log.warning("request %s: ignored fields (no effect on step-routed generation): %s",
                        request_id(request), ", ".join(req.ignored))
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
            raise APIError(400, f"'trim.max_step_tokens' must be <= {c.max_step_tokens}, this "
                           f"server's --max-step-tokens. Got {req.max_step_tokens} instead.",
                           param="trim.max_step_tokens")
        if req.max_steps is not None and req.max_steps > self.max_steps:
            raise APIError(400, f"'trim.max_steps' must be <= {self.max_steps}, this server's "
                           f"--max-steps. Got {req.max_steps} instead.", param="trim.max_steps")
        sampling = SamplingParams(
            temperature=c.temperature if req.temperature is None else req.temperature,
            top_p=c.top_p if req.top_p is None else req.top_p,
            top_k=c.top_k if req.top_k is None else req.top_k,
            max_tokens=req.max_step_tokens or c.max_step_tokens,
            frequency_penalty=req.frequency_penalty, presence_penalty=req.presence_penalty)
        return LoopConfig(max_steps=req.max_steps or self.max_steps, sampling=sampling,
                          stop=(STEP_SEPARATOR,), is_final=self.profile.is_final)

    async def _serve_one(self, request: web.Request, endpoint: str, t0: float
                         ) -> tuple[web.StreamResponse, int]:
        req = await self._read(request, endpoint)
        cfg = self._loop_config(req)
        choice = await self._choose(req)
        rid = ("chatcmpl-" if endpoint == "chat" else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        loop_s = [0.0] * req.n

        async def run(i: int, tap: StepTap | None) -> Answer:
            session = AnswerSession(index=i, conversation=req.conversation, seed=req.seed,
                                    remaining=req.max_tokens, stops=req.stop, tap=tap,
                                    separator=self.profile.step_separator,
                                    logprobs=req.logprobs, stream_tokens=req.stream_tokens)
            ts = time.perf_counter()
            rec = await self._run_loop(req, choice, cfg, session, request_id(request))
            loop_s[i] = time.perf_counter() - ts
            return Answer(rec, session, cfg.max_steps)

        if not req.stream:
            answers = await run_all(req.n, run)
            resp: web.StreamResponse = json_response(
                full_response(req, rid, created, answers, choice, self.profile.name))
            status = 200
        else:
            resp, status, answers = await stream_answers(
                request, req, rid, created, run, lambda a: trim_info(req, a, choice, self.profile.name),
                keepalive=self.config.sse_keepalive, separator=self.profile.step_separator)
        if answers:
            self.metrics.observe("trim_server_overhead_seconds",
                                 max(0.0, time.perf_counter() - t0 - max(loop_s)))
        return resp, status

    async def _run_loop(self, req: GenerationRequest, choice: RouterChoice, cfg: LoopConfig,
                        session: AnswerSession, rid: str) -> dict[str, Any]:
        assert self.upstreams is not None
        up = self.upstreams
        problem = Problem(problem_id=uuid.uuid4().hex, question=req.question, answer="")
        try:
            # a request with a seed routes reproducibly (e.g. random:P) per answer
            info = None if req.seed is None else {"key": f"{req.seed}:{session.index}"}
            router = GuardedRouter(new_router(choice.factory, info), choice.policy)
        except Exception as exc:  # noqa: BLE001
            raise self._routing_failed(RoutingError(
                f"the routing rule {choice.policy!r} could not be built ({type(exc).__name__}: "
                f"{exc})", rule=choice.policy), rid) from None
        obs = self.metrics.upstream_call
        try:
            weak = cast(Any, session.wrap(TimedBackend(up.weak, "weak", obs), "weak"))
            strong = None if up.strong is None else TimedBackend(up.strong, "strong", obs)
            prm = None if up.prm is None else TimedPRM(up.prm, obs)
            rec = await solve_problem(problem, weak, session.wrap(strong, "strong"), prm,
                                      router, cfg)
        except BackendError as exc:
            raise APIError(502, f"An upstream model server failed: {exc}", type="upstream_error",
                           code="upstream_failed") from None
        except RoutingError as exc:
            raise self._routing_failed(exc, rid) from None
        except TrimpomdpError as exc:  # the loop itself refused: the server's fault, not the client's
            log.error("request %s: the step loop failed: %s", rid, exc)
            raise APIError(500, f"The step loop failed: {exc} (request id {rid}).",
                           type="server_error", code="loop_error") from None
        self.metrics.record_solution(rec)
        self.routers.feedback(choice, rec)
        return rec

    def _routing_failed(self, exc: RoutingError, rid: str) -> APIError:
        log.error("request %s: %s", rid, exc)
        return APIError(500, f"The routing rule {exc.rule!r} failed; this is a server-side bug or "
                        f"a rule used outside its contract, not an upstream failure: {exc} "
                        f"(request id {rid}).", type="server_error", code="routing_error")


def _replace(req: GenerationRequest, **changes: Any) -> GenerationRequest:
    return dataclasses.replace(req, **changes)


# ---------------------------------------------------------------------- blocking entry point
async def serve_forever(config: ServeConfig, *, ready: Any = None) -> None:
    """Run until SIGINT/SIGTERM, then drain in-flight requests and return."""
    server = TrimServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.warning("trimpomdp serve: listening on %s (policy %s, model name %r%s)", server.url,
                config.policy, config.served_model_name,
                ", API key required" if config.api_key else "")
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
