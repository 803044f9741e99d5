"""Per-request budgets: ``trim.lambda`` routes with the exact POMDP policy at that λ (solved once,
cached, shared by concurrent requests); ``trim.strong_token_share`` goes through
``lambda_for_budget``; neither blocks the event loop."""
from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs


@pytest.fixture(scope="module")
def env():
    with stubs() as up, ServerThread(config(up, budget_sim_problems=100)) as srv, \
            httpx.Client(base_url=srv.url, timeout=120) as http:
        yield srv, http


def _ask(http, trim, question="What is 2+3? BADSTEP"):
    r = http.post("/v1/chat/completions", json={
        "model": "trimpomdp", "messages": [{"role": "user", "content": question}], "trim": trim})
    assert r.status_code == 200, r.text
    return r.json()


def test_lambda_selects_the_pomdp_policy_and_its_cost(env):
    _, http = env
    cheap = _ask(http, {"lambda": 0.25, "trace": True})
    dear = _ask(http, {"lambda": 100})
    # every weak step scores 0.1: at λ = 0.25 the POMDP rewrites them, at λ = 100 it never pays
    assert cheap["trim"]["policy"] == "pomdp-filter:0.25" and cheap["trim"]["lambda"] == 0.25
    assert cheap["usage"]["strong_completion_tokens"] == 19
    assert all(s["q"] is not None and s["belief"] is not None for s in cheap["trim"]["trace"])
    assert dear["usage"]["strong_completion_tokens"] == 0
    assert dear["choices"][0]["message"]["content"].count("(bad)") == 3
    # the default policy (thr:0.5) is untouched by budgets
    assert _ask(http, None)["trim"]["policy"] == "thr:0.5"


def test_same_lambda_is_solved_once_even_when_concurrent(env):
    srv, http = env
    before = srv.server.routers.n_solves
    out: list = []
    ts = [threading.Thread(target=lambda: out.append(_ask(http, {"lambda": 0.4})))
          for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    _ask(http, {"lambda": 0.4})
    assert len(out) == 4 and srv.server.routers.n_solves == before + 1


def test_strong_token_share_finds_a_lambda_without_blocking_the_loop(env):
    srv, http = env
    res: dict = {}

    def share_request() -> None:
        t0 = time.perf_counter()
        res["body"] = _ask(http, {"strong_token_share": 0.3})
        res["seconds"] = time.perf_counter() - t0

    t = threading.Thread(target=share_request)
    t.start()
    worst = 0.0
    with httpx.Client(base_url=srv.url, timeout=60) as other:
        while t.is_alive():
            t0 = time.perf_counter()
            assert other.get("/health").status_code == 200
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.1)
    t.join()
    trim = res["body"]["trim"]
    assert trim["strong_token_share"] == 0.3 and 0.0 < trim["lambda"] < 5.0
    assert trim["policy"] == f"pomdp-filter:{trim['lambda']:g}"
    assert srv.server.routers.n_share_searches == 1
    assert worst < res["seconds"] / 2, (worst, res["seconds"])  # /health never waited on it
    again = _ask(http, {"strong_token_share": 0.3})  # cached: no second search
    assert again["trim"]["lambda"] == trim["lambda"] and srv.server.routers.n_share_searches == 1


def test_pomdp_default_policy_is_solved_at_start_and_used_without_budget():
    with stubs() as up, ServerThread(config(up, policy="pomdp:100")) as srv, \
            httpx.Client(base_url=srv.url, timeout=120) as http:
        r = _ask(http, {"trace": True})
        trace = r["trim"]["trace"]
        assert r["trim"]["policy"] == "pomdp:100" and r["trim"]["lambda"] is None
        assert r["usage"]["strong_completion_tokens"] == 0  # λ = 100: never worth a rewrite
        assert len(trace) == 3 and all(s["action"] == "continue" for s in trace)
        # a budget on a pomdp:... server keeps the release's single-observation belief
        assert _ask(http, {"lambda": 0.25})["trim"]["policy"] == "pomdp:0.25"
        assert srv.server.routers.belief == "release"
