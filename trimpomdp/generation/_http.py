"""Async JSON-over-HTTP with a bounded semaphore, timeouts, retries and exponential back-off.

Shared by the OpenAI-compatible backend and the vLLM PRM client. Retries transport errors
(refused or dropped connections, timeouts), HTTP 429 and 5xx; any other 4xx fails at once.

Every request made while a problem is being solved carries that problem's affinity key in a
header (default ``X-Session-ID``, see :data:`AFFINITY_HEADER`), so a prefix- or session-aware
router in front of several replicas keeps one problem's steps on the replica that caches its
prefix. The key is set per asyncio task by :func:`affinity` (the loop does it per problem).
"""
from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: default name of the per-problem affinity header: vLLM reads ``X-Session-ID`` itself (0.32 tags
#: a request's KV-cache events with it, which KV-event-driven routers such as llm-d's consume), and
#: the vLLM production-stack router pins sessions on any header (``--routing-logic session
#: --session-key X-Session-ID``)
AFFINITY_HEADER = "X-Session-ID"
_AFFINITY: ContextVar[str | None] = ContextVar("trimpomdp_affinity_key", default=None)
_TOKEN = re.compile(r"[A-Za-z0-9._:~+/=-]{1,128}")


def affinity_value(key: str) -> str:
    """``key`` as a header value: itself when it is a short visible-ASCII token, else a hash."""
    if _TOKEN.fullmatch(key):
        return key
    return "h-" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24]


@contextmanager
def affinity(key: str | None) -> Iterator[None]:
    """Requests made inside this block (this task and tasks it starts) carry ``key``."""
    token = _AFFINITY.set(None if key is None else affinity_value(str(key)))
    try:
        yield
    finally:
        _AFFINITY.reset(token)


def current_affinity() -> str | None:
    """The affinity key of the running task (None outside a problem)."""
    return _AFFINITY.get()


def affinity_headers(header: str | None) -> dict[str, str] | None:
    """``{header: key}`` for the running task, or None (no header name or no key)."""
    key = _AFFINITY.get()
    return {header: key} if header and key else None

from trimpomdp.errors import BackendError, InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently one request is retried."""

    retries: int = 3
    timeout: float = 120.0
    backoff: float = 0.5
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise InputError(f"The 'retries' parameter must be an int >= 0. Got {self.retries!r} "
                             "instead.")
        if not self.timeout > 0:
            raise InputError(f"The 'timeout' parameter must be a float > 0 (seconds). Got "
                             f"{self.timeout!r} instead.")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InputError(f"The 'backoff' parameters must be >= 0. Got {self.backoff!r}, "
                             f"{self.max_backoff!r} instead.")

    def delay(self, attempt: int) -> float:
        """Back-off before retry ``attempt`` (0-based): exponential with ±25% jitter."""
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        return base * (0.75 + 0.5 * random.random())


class RetryableHTTPError(Exception):
    """An HTTP status worth retrying (429, 5xx)."""


class JSONClient:
    """POST/GET JSON to one server; at most ``concurrency`` requests in flight."""

    def __init__(self, base_url: str, *, concurrency: int = 8,
                 retry: RetryPolicy | None = None, api_key: str | None = None,
                 affinity_header: str | None = AFFINITY_HEADER) -> None:
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"server URL must start with http:// or https://. Got {base_url!r} "
                             "instead.")
        if concurrency < 1:
            raise InputError(f"The 'concurrency' parameter must be an int >= 1. Got "
                             f"{concurrency!r} instead.")
        self.base_url = base_url.rstrip("/")
        self.base_url = self.base_url.removesuffix("/v1")
        self.retry = retry or RetryPolicy()
        #: the per-problem affinity header sent with each request (None: none)
        self.affinity_header = affinity_header or None
        self.semaphore = asyncio.Semaphore(concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers,
            timeout=httpx.Timeout(self.retry.timeout, connect=min(10.0, self.retry.timeout)),
            limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency))
        #: counters for run summaries and tests
        self.n_requests = 0
        self.n_retries = 0

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request with retries; returns the decoded JSON or raises BackendError."""
        import httpx

        url = self.base_url + path
        last = "no attempt made"
        headers = affinity_headers(self.affinity_header)
        async with self.semaphore:
            for attempt in range(self.retry.retries + 1):
                if attempt:
                    self.n_retries += 1
                    await asyncio.sleep(self.retry.delay(attempt - 1))
                self.n_requests += 1
                try:
                    resp = await self._client.request(method, path, json=body, headers=headers)
                    if resp.status_code == 429 or resp.status_code >= 500:
                        raise RetryableHTTPError(f"HTTP {resp.status_code}: {_brief(resp.text)}")
                    if resp.status_code >= 400:
                        raise BackendError(f"{method} {url} was rejected with HTTP "
                                           f"{resp.status_code}: {_brief(resp.text)}")
                    try:
                        return resp.json()
                    except (ValueError, RecursionError):
                        raise RetryableHTTPError(f"response is not JSON: {_brief(resp.text)}") from None
                except RetryableHTTPError as exc:
                    last = str(exc)
                except httpx.TimeoutException as exc:
                    last = f"timed out after {self.retry.timeout:g} s ({type(exc).__name__})"
                except httpx.TransportError as exc:
                    last = f"connection failed ({type(exc).__name__}: {exc or 'no detail'})"
        raise BackendError(f"{method} {url} failed after {self.retry.retries + 1} attempts: {last}")

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("POST", path, body)

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def check_health(self) -> None:
        """Raise an actionable BackendError unless the server answers ``/v1/models``."""
        try:
            await self.get("/v1/models")
        except BackendError as exc:
            raise BackendError(f"no OpenAI-compatible server answers at {self.base_url} ({exc}). "
                               "Start one, e.g. `python -m vllm.entrypoints.openai.api_server "
                               "--model DIR --host 127.0.0.1 --port PORT`, and pass its URL.") from None

    async def aclose(self) -> None:
        await self._client.aclose()


def _brief(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "…"
