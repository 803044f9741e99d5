"""Server-Sent Events for ``"stream": true``: one chunk per accepted step of each answer, keep-alive
comments while a step is drafted, the final chunks, the usage chunk and ``[DONE]``.

The headers go out with the first step or the first keep-alive, whichever comes first: a failure
before that (an upstream refusing at once) is still a plain JSON error with its status; a failure
after it arrives in-band as ``data: {"error": {...}}`` then ``data: [DONE]``.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from trimpomdp.serve.errors import APIError, internal_error
from trimpomdp.serve.http import request_id
from trimpomdp.serve.openai_schema import GenerationRequest
from trimpomdp.serve.responses import (
    DONE,
    KEEPALIVE,
    Answer,
    chunk,
    sse,
    step_chunk,
    usage,
)
from trimpomdp.serve.steps import StepEvent, StepTap

log = logging.getLogger("trimpomdp.serve")


async def cancel_all(tasks: Any) -> None:
    """Cancel the tasks that are not done and wait for them, so none is left pending."""
    live = [t for t in tasks if t is not None and not t.done()]
    for t in live:
        t.cancel()
    if live:
        await asyncio.gather(*live, return_exceptions=True)


async def run_all(n: int, run: Callable[[int, StepTap | None], Awaitable[Answer]]
                  ) -> list[Answer]:
    """Run ``n`` answers concurrently; the first failure cancels the others and is raised."""
    if n == 1:
        return [await run(0, None)]
    tasks = [asyncio.ensure_future(run(i, None)) for i in range(n)]
    try:
        _done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
    finally:
        await cancel_all(tasks)


async def stream_answers(request: web.Request, req: GenerationRequest, rid: str, created: int,
                         run: Callable[[int, StepTap | None], Awaitable[Answer]],
                         trim_info: Callable[[list[Answer]], dict[str, Any]], *,
                         keepalive: float, separator: str = "\n\n"
                         ) -> tuple[web.StreamResponse, int, list[Answer]]:
    """Stream ``req.n`` answers; returns the response, the status to count and the answers."""
    queue: asyncio.Queue[StepEvent] = asyncio.Queue()
    taps = [StepTap(queue, i) for i in range(req.n)]
    tasks = [asyncio.ensure_future(run(i, taps[i])) for i in range(req.n)]
    resp: web.StreamResponse | None = None
    getter: asyncio.Future[StepEvent] | None = None

    async def send(obj: Any) -> None:
        nonlocal resp
        if resp is None:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
            await resp.prepare(request)
            if req.endpoint == "chat":
                for i in range(req.n):
                    await resp.write(sse(chunk(req, rid, created, i, role=True)))
        await resp.write(sse(obj))

    try:
        try:
            pending = set(tasks)
            while pending:
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                waiting: set[asyncio.Future[Any]] = {getter, *pending}
                done, _ = await asyncio.wait(waiting, timeout=keepalive,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    await send(KEEPALIVE)
                    continue
                g = getter
                if g in done:
                    getter = None
                    await send(step_chunk(req, rid, created, g.result(), separator))
                for t in done:
                    if t is not g and t in pending:
                        pending.discard(t)
                        if t.exception() is not None:
                            raise t.exception()  # type: ignore[misc]
            while not queue.empty():
                await send(step_chunk(req, rid, created, queue.get_nowait(), separator))
            answers = [t.result() for t in tasks]
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:
            if resp is None:
                raise  # nothing sent yet: a plain JSON error with its status
            if isinstance(exc, APIError):
                err = exc
            else:
                log.exception("internal error while streaming, request id %s",
                              request_id(request))
                err = internal_error(request_id(request))
            await send({"error": err.body()["error"]})  # headers are out: report in-band
            await send(DONE)
            return resp, err.status, []
        for i, a in enumerate(answers):
            for ev in taps[i].finish(a.record):
                await send(step_chunk(req, rid, created, ev, separator))
        for i, a in enumerate(answers):
            final = chunk(req, rid, created, i, finish=a.finish)
            if i == len(answers) - 1:
                final["trim"] = trim_info(answers)
            await send(final)
        if req.include_usage:
            await send({**chunk(req, rid, created), "choices": [], "usage": usage(answers)})
        await send(DONE)
        assert resp is not None
        await resp.write_eof()
        return resp, 200, answers
    finally:
        await cancel_all([getter, *tasks])
