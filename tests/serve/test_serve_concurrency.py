"""Concurrent requests get their own routers (issue 12): through ``serve``, each request's
decisions equal those of the same request served alone, for stateful specs (query-level, random
with a seed, Seq, the POMDP filter), against stub upstreams whose PRM scores vary by request."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs

ROOT = Path(__file__).resolve().parents[2]
SPECS = ["query:0.5", "random:0.5", "pomdp-filter:0.3", "thr:0.5"]
SEQ = ROOT / "models" / "learned" / "seq_lam0.1_it120.json"
if SEQ.exists():
    SPECS.append(f"seq:{SEQ}")


def _body(i: int) -> dict:
    q = f"problem {i}" + (" BADSTEP" if i % 3 == 0 else "")
    return {"model": "trimpomdp", "seed": 1000 + i, "messages": [{"role": "user", "content": q}],
            "trim": {"trace": True}}


def _decisions(doc: dict) -> list[tuple]:
    return [(s["action"], s["source"], s.get("score")) for s in doc["trim"]["trace"]]


@pytest.mark.parametrize("spec", SPECS)
def test_interleaved_requests_route_as_if_alone(spec):
    with stubs(delay=0.02) as up, ServerThread(config(up, policy=spec)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as http:
        alone = {}
        for i in range(6):
            r = http.post("/v1/chat/completions", json=_body(i))
            assert r.status_code == 200, r.text
            alone[i] = _decisions(r.json())

        async def together():
            async with httpx.AsyncClient(base_url=srv.url, timeout=60) as c:
                rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=_body(i % 6))
                                            for i in range(18)))
            return rs

        rs = asyncio.run(together())
    for i, r in enumerate(rs):
        assert r.status_code == 200, r.text
        assert _decisions(r.json()) == alone[i % 6], (spec, i)
    if spec.startswith("query"):  # the query-level rule: all-strong for bad, all-weak for good
        assert {s[1] for s in alone[0]} == {"strong"} and {s[1] for s in alone[1]} == {"weak"}
