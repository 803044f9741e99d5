"""Prometheus text-format metrics of the server (counters and histograms, no dependency).

Single event loop, so plain integers suffice; :meth:`ServerMetrics.render` writes the exposition
format version 0.0.4.
"""
from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0)
OVERHEAD_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

Labels = tuple[tuple[str, str], ...]
#: the upstream roles of ``trim_upstream_call_seconds``
ROLES = ("weak", "strong", "prm")


class Histogram:
    """Cumulative-bucket histogram per label set."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def seed(self, labels: Labels) -> None:
        """Make ``labels`` render (all zeros) before any observation."""
        self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))

    def observe(self, value: float, labels: Labels = ()) -> None:
        row = self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        row[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] += value


def _fmt_labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    esc = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in items)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(items, esc)) + "}"


def _fmt_value(v: float) -> str:
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class ServerMetrics:
    """The server's counters (requests, steps, regenerations, tokens) and latency histograms."""

    COUNTERS: ClassVar[dict[str, str]] = {
        "trim_requests_total": "Requests answered, by endpoint and HTTP status.",
        "trim_steps_total": "Solution steps accepted.",
        "trim_regenerations_total": "Steps rewritten by the strong model.",
        "trim_weak_tokens_total": "Tokens decoded by the weak model (discarded drafts included).",
        "trim_strong_tokens_total": "Tokens decoded by the strong model.",
        "trim_upstream_errors_total": "Requests that failed because an upstream server failed.",
        "trim_client_disconnects_total": "Requests cancelled because the client went away.",
    }
    HISTOGRAMS: ClassVar[dict[str, tuple[str, tuple[float, ...]]]] = {
        "trim_request_duration_seconds": ("Wall time from request to last byte, by endpoint.",
                                          LATENCY_BUCKETS),
        "trim_upstream_seconds": ("Time inside upstream calls (weak, strong, prm) per request.",
                                  LATENCY_BUCKETS),
        "trim_upstream_call_seconds": (
            "Latency of each upstream call by role (weak, strong, prm), retries included.",
            LATENCY_BUCKETS),
        "trim_server_overhead_seconds": (
            "Server time per request outside the step loop (parse, validate, route, serialise).",
            OVERHEAD_BUCKETS),
    }

    def __init__(self) -> None:
        self.counters: dict[str, dict[Labels, float]] = {k: defaultdict(float)
                                                          for k in self.COUNTERS}
        self.hist = {k: Histogram(b) for k, (_, b) in self.HISTOGRAMS.items()}
        for role in ROLES:
            self.hist["trim_upstream_call_seconds"].seed((("role", role),))
        self.in_flight = 0
        #: the closed-loop controller's state (set by the server when --target-share is on)
        self.closed_loop: Callable[[], dict[str, float | None]] | None = None

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        self.counters[name][tuple(sorted(labels.items()))] += value

    def observe(self, name: str, value: float, **labels: str) -> None:
        self.hist[name].observe(value, tuple(sorted(labels.items())))

    def record_solution(self, rec: dict[str, Any]) -> None:
        self.inc("trim_steps_total", rec["n_steps"])
        self.inc("trim_regenerations_total", rec["n_regenerated"])
        self.inc("trim_weak_tokens_total", rec["weak_tokens"])
        self.inc("trim_strong_tokens_total", rec["strong_tokens"])
        t = rec.get("timing") or {}
        self.observe("trim_upstream_seconds",
                     sum(t.get(k, 0.0) for k in ("weak_s", "strong_s", "prm_s")))

    def upstream_call(self, role: str, seconds: float) -> None:
        self.observe("trim_upstream_call_seconds", seconds, role=role)

    CLOSED_LOOP: ClassVar[dict[str, tuple[str, str]]] = {
        "target_share": ("gauge", "Strong-token share the closed loop holds (--target-share)."),
        "window_share": ("gauge", ("Realised strong-token share (strong / strong-only tokens) "
                         "over the window of recent closed-loop requests.")),
        "window_requests": ("gauge", "Closed-loop requests in the window."),
        "lambda": ("gauge", "λ of the policy closed-loop requests are routed with now."),
        "lambda_controller": ("gauge", "The controller's λ before quantisation to the solve grid."),
        "solves_total": ("counter", "Fast POMDP solves of the closed loop (one per new λ)."),
        "requests_total": ("counter", "Closed-loop requests fed back to the controller."),
    }

    def _render_closed_loop(self, out: list[str]) -> None:
        if self.closed_loop is None:
            return
        state = self.closed_loop()
        for key, (kind, help_) in self.CLOSED_LOOP.items():
            name = f"trim_closed_loop_{key}"
            v = state.get(key)
            out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}",
                    f"{name} {_fmt_value(float('nan') if v is None else float(v))}"]

    def render(self) -> str:
        out: list[str] = []
        for name, help_ in self.COUNTERS.items():
            out += [f"# HELP {name} {help_}", f"# TYPE {name} counter"]
            rows = self.counters[name] or {(): 0}
            for labels, v in sorted(rows.items()):
                out.append(f"{name}{_fmt_labels(labels)} {_fmt_value(v)}")
        out += ["# HELP trim_requests_in_flight Requests being served now.",
                "# TYPE trim_requests_in_flight gauge", f"trim_requests_in_flight {self.in_flight}"]
        for name, (help_, _) in self.HISTOGRAMS.items():
            h = self.hist[name]
            out += [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
            hrows: dict[Any, list[int]] = dict(h.counts) or {(): [0] * (len(h.buckets) + 1)}
            for labels, row in sorted(hrows.items()):
                acc = 0
                for le, c in zip((*h.buckets, float("inf")), row):
                    acc += c
                    le_s = "+Inf" if le == float("inf") else repr(le)
                    out.append(f"{name}_bucket{_fmt_labels(labels, (('le', le_s),))} {acc}")
                out.append(f"{name}_sum{_fmt_labels(labels)} {h.sums.get(labels, 0.0)!r}")
                out.append(f"{name}_count{_fmt_labels(labels)} {acc}")
        self._render_closed_loop(out)
        return "\n".join(out) + "\n"


class TimedBackend:
    """A generation backend whose every call's latency goes to ``observe(role, seconds)``
    (``generate_step`` and ``stream_step``; other attributes are the inner backend's).
    Cancelled calls (the client went away) are not observed."""

    def __init__(self, inner: Any, role: str, observe: Callable[[str, float], None]) -> None:
        self.inner = inner
        self.role = role
        self._observe = observe
        self.name = getattr(inner, "name", role)

    async def _timed(self, coro: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await coro
        except asyncio.CancelledError:
            t0 = math.nan
            raise
        finally:
            if not math.isnan(t0):
                self._observe(self.role, time.perf_counter() - t0)

    async def generate_step(self, messages: Sequence[Any], **kw: Any) -> Any:
        return await self._timed(self.inner.generate_step(messages, **kw))

    def __getattr__(self, name: str) -> Any:  # stream_step, setup, http, ...
        attr = getattr(self.inner, name)
        if name == "stream_step":
            async def stream_step(messages: Sequence[Any], **kw: Any) -> Any:
                return await self._timed(attr(messages, **kw))
            return stream_step
        return attr

    async def aclose(self) -> None:
        """The shared client stays open."""


class TimedPRM:
    """A PRM scorer (or its per-problem sessions) whose every scoring call is observed as role
    ``prm``; ``where`` and other attributes are the inner scorer's."""

    def __init__(self, inner: Any, observe: Callable[[str, float], None], *,
                 session: bool = False) -> None:
        self.inner = inner
        self._observe = observe
        self._session = session

    async def _timed(self, coro: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await coro
        except asyncio.CancelledError:
            t0 = math.nan
            raise
        finally:
            if not math.isnan(t0):
                self._observe("prm", time.perf_counter() - t0)

    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]:
        return list(await self._timed(self.inner.score_steps(question, steps)))

    async def score(self, steps: Sequence[str]) -> list[float]:  # as a session
        return list(await self._timed(self.inner.score(steps)))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name == "session":  # incremental scoring: time each session's calls too
            return lambda question: TimedPRM(attr(question), self._observe, session=True)
        return attr

    async def aclose(self) -> None:
        """Closes a session; the shared scorer stays open (the server closes it)."""
        if self._session:
            await self.inner.aclose()
