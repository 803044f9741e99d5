"""Per-role upstream latency histograms on /metrics: ``trim_upstream_call_seconds{role}`` observes
every weak, strong and PRM call (Prometheus histogram format), cancelled calls excluded."""
from __future__ import annotations

import asyncio
import re

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs

from trimpomdp.serve.metrics import LATENCY_BUCKETS, ServerMetrics, TimedBackend, TimedPRM

NAME = "trim_upstream_call_seconds"


def _hist(text: str, role: str) -> tuple[list[tuple[str, int]], float, int]:
    buckets = [(m.group(1), int(m.group(2))) for m in re.finditer(
        rf'^{NAME}_bucket{{role="{role}",le="([^"]+)"}} (\d+)$', text, re.MULTILINE)]
    total = float(re.search(rf'^{NAME}_sum{{role="{role}"}} (\S+)$', text, re.MULTILINE).group(1))
    count = int(re.search(rf'^{NAME}_count{{role="{role}"}} (\d+)$', text, re.MULTILINE).group(1))
    return buckets, total, count


def test_all_roles_render_empty_before_any_call():
    text = ServerMetrics().render()
    assert f"# TYPE {NAME} histogram" in text
    for role in ("weak", "strong", "prm"):
        buckets, total, count = _hist(text, role)
        assert len(buckets) == len(LATENCY_BUCKETS) + 1 and buckets[-1][0] == "+Inf"
        assert all(c == 0 for _, c in buckets) and total == 0.0 and count == 0


def test_each_upstream_call_is_observed_by_role():
    with stubs() as up, ServerThread(config(up)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as http:
        for path in ("/v1/chat/completions", "/v1/completions"):
            up["weak"].inject(path, "sleep:0.3")  # the first weak call takes >= 0.3 s
        r = http.post("/v1/chat/completions", json={
            "model": "trimpomdp", "messages": [{"role": "user", "content": "2+3? BADSTEP"}]})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["strong_completion_tokens"] > 0  # thr:0.5 rewrites bad steps
        text = http.get("/metrics").text
    calls = {"weak": 3, "strong": 3, "prm": 3}  # 3 steps: 3 drafts, each scored and rewritten
    for role, n in calls.items():
        buckets, total, count = _hist(text, role)
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "buckets must be cumulative"
        assert counts[-1] == count == n, (role, count)
        assert total > 0.0
        if role == "weak":
            assert total >= 0.3
            le_025 = dict(buckets)["0.25"]
            assert le_025 <= n - 1  # the slow call is above 0.25 s
    # the request-level histogram is still there, unchanged in kind
    assert "# TYPE trim_upstream_seconds histogram" in text


class _Slow:
    name = "slow"

    async def generate_step(self, messages, **kw):
        await asyncio.sleep(10)


class _SessionPRM:
    where = "at test"

    def __init__(self) -> None:
        self.closed = 0

    def session(self, question):
        prm = self

        class S:
            async def score(self, steps):
                return [0.5] * len(steps)

            async def aclose(self):
                prm.closed += 1

        return S()

    async def score_steps(self, question, steps):
        return [0.5] * len(steps)

    async def aclose(self):
        raise AssertionError("the shared scorer must not be closed by a request")


def test_cancelled_calls_are_not_observed_and_prm_sessions_are_timed():
    seen: list[tuple[str, float]] = []

    async def main() -> None:
        slow = TimedBackend(_Slow(), "weak", lambda r, s: seen.append((r, s)))
        task = asyncio.ensure_future(slow.generate_step([], stop=(), sampling=None))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        inner = _SessionPRM()
        prm = TimedPRM(inner, lambda r, s: seen.append((r, s)))
        assert prm.where == "at test"
        sess = prm.session("q")  # incremental scoring stays incremental, and is timed
        assert await sess.score(["a", "b"]) == [0.5, 0.5]
        await sess.aclose()
        assert inner.closed == 1
        assert await prm.score_steps("q", ["a"]) == [0.5]
        await prm.aclose()  # a no-op on the shared scorer

    asyncio.run(main())
    assert [r for r, _ in seen] == ["prm", "prm"]
