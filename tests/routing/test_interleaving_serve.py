"""The per-problem router property through `serve`: concurrent requests route each question
exactly as the same request sent alone, against local stub servers whose PRM scores vary by
question (a hash of the question and the steps so far)."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="httpx drives the server (trimpomdp[live])")
pytest.importorskip("aiohttp", reason="serve needs aiohttp (trimpomdp[live])")
HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE / "generation"), str(HERE / "serve")]

from faulty_server import FaultyServer  # noqa: E402
from serve_harness import ServerThread  # noqa: E402

from trimpomdp.resources import resource_path  # noqa: E402
from trimpomdp.serve.config import ServeConfig  # noqa: E402

QUESTIONS = [f"What is {i} + {7 * i}? Think step by step." for i in range(6)]


def _ckpt(kind: str) -> str:
    files = sorted(resource_path("models", "learned").glob(f"{kind}_*.json"))
    if not files:
        pytest.skip(f"no bundled {kind} checkpoint")
    return str(files[0])


@pytest.fixture(scope="module")
def upstreams():
    with FaultyServer(tag="weak", n_steps=6) as w, FaultyServer(tag="strong", n_steps=6) as s, \
            FaultyServer(tag="prm", varied=True) as p:
        yield w.url, s.url, p.url


async def _ask(client, url: str, q: str) -> list[str]:
    r = await client.post(url + "/v1/chat/completions", json={
        "model": "trimpomdp", "messages": [{"role": "user", "content": q}],
        "trim": {"trace": True}}, timeout=60)
    assert r.status_code == 200, r.text
    return [s["action"] for s in r.json()["trim"]["trace"]]


async def _together(url: str) -> list[list[str]]:
    async with httpx.AsyncClient() as c:
        return list(await asyncio.gather(*(_ask(c, url, q) for q in QUESTIONS)))


async def _alone(url: str) -> list[list[str]]:
    async with httpx.AsyncClient() as c:
        return [await _ask(c, url, q) for q in QUESTIONS]


@pytest.mark.parametrize("spec", ["thr:0.5", "pomdp-filter:0.2", "pomdp:0.2", "query:0.5",
                                  "agg", "seq", "weak", "strong"])
def test_concurrent_requests_route_like_each_request_alone(upstreams, spec):
    if spec in ("agg", "seq"):
        spec = f"{spec}:{_ckpt(spec)}"
    w, s, p = upstreams
    cfg = ServeConfig(weak_url=w, strong_url=s, prm_url=p, policy=spec, port=0, max_steps=6,
                      api="chat")
    with ServerThread(cfg) as srv:
        together = asyncio.run(_together(srv.url))
        alone = asyncio.run(_alone(srv.url))
    assert together == alone
    if spec.startswith(("thr", "query", "pomdp")):
        assert len({tuple(a) for a in alone}) > 1  # the scores do vary by question
