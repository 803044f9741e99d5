"""/metrics in Prometheus text format, /health, upstream concurrency bounds, and the CLI module."""
from __future__ import annotations

import argparse
import asyncio
import re

import pytest

pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp (pip install 'trimpomdp[live]')")
httpx = pytest.importorskip("httpx", reason="the upstream clients need httpx")

from serve_harness import ServerThread, config, stubs

from trimpomdp.errors import InputError

SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="[^"]*",?)*\})? (-?[0-9.e+-]+|\+Inf)$')


def parse_prometheus(text: str) -> dict[str, float]:
    """Strict reader of the exposition format: every sample line must parse, TYPE must precede."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        assert m.group(1) in typed or base in typed, line
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_metrics_count_requests_steps_tokens_and_latency():
    with stubs(n_steps=3) as up, ServerThread(config(up, upstream_concurrency=4)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as http:
        async def burst(n: int) -> list[int]:
            async with httpx.AsyncClient(base_url=srv.url, timeout=60) as c:
                rs = await asyncio.gather(*(c.post("/v1/chat/completions", json={
                    "model": "trimpomdp",
                    "messages": [{"role": "user", "content": f"q{i} {'BADSTEP' * (i % 2)}"}]})
                    for i in range(n)))
            return [r.status_code for r in rs]

        assert asyncio.run(burst(40)) == [200] * 40
        assert http.post("/v1/completions", json={"model": "trimpomdp"}).status_code == 400
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        r = http.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        m = parse_prometheus(r.text)
        for role in ("weak", "strong", "prm"):  # the per-upstream bound held
            assert 1 <= up[role].max_in_flight <= 4, (role, up[role].max_in_flight)
    assert m['trim_requests_total{endpoint="chat",status="200"}'] == 40
    assert m['trim_requests_total{endpoint="completions",status="400"}'] == 1
    assert m["trim_steps_total"] == 120
    assert m["trim_regenerations_total"] == 60  # the 20 BADSTEP requests, 3 steps each
    assert m["trim_weak_tokens_total"] == 40 * 19 and m["trim_strong_tokens_total"] == 20 * 19
    assert m["trim_requests_in_flight"] == 0
    assert m['trim_request_duration_seconds_count{endpoint="chat"}'] == 40
    assert m['trim_request_duration_seconds_bucket{endpoint="chat",le="+Inf"}'] == 40
    buckets = [v for k, v in m.items() if k.startswith("trim_request_duration_seconds_bucket"
                                                       '{endpoint="chat"')]
    assert buckets == sorted(buckets)  # cumulative
    assert m["trim_server_overhead_seconds_count"] == 40
    assert m["trim_upstream_seconds_count"] == 40


def _args(*argv: str) -> argparse.Namespace:
    from trimpomdp.cli import serve

    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    return p.parse_args(list(argv))


@pytest.mark.parametrize("argv,field", [
    (["--weak", "http://x", "--policy", "thr:0.3", "--prm", "http://p"], "strong"),
    (["--weak", "http://x", "--strong", "http://s", "--policy", "thr:0.3"], "prm"),
    (["--weak", "x:1", "--policy", "weak"], "weak"),
    (["--weak", "http://x", "--policy", "weak", "--port", "70000"], "port"),
    (["--weak", "http://x", "--policy", "weak", "--upstream-concurrency", "0"],
     "upstream_concurrency"),
    (["--weak", "http://x", "--policy", "weak", "--max-steps", "0"], "max_steps"),
    (["--weak", "http://x", "--policy", "weak", "--task", "nope"], "task"),
    (["--weak", "http://x", "--policy", "oracle"], "policy"),
])
def test_cli_rejects_bad_settings_before_binding(argv, field):
    from trimpomdp.cli import serve

    with pytest.raises(InputError) as ei:
        serve.run(_args(*argv))
    assert ei.value.field == field


def test_cli_maps_every_option_to_the_config():
    from trimpomdp.cli.serve import config_from_args

    cfg = config_from_args(_args("--weak", "http://w", "--strong", "http://s", "--prm", "http://p",
                                 "--policy", "pomdp-filter:0.3", "--port", "0",
                                 "--served-model-name", "m", "--upstream-concurrency", "3",
                                 "--skip-upstream-check", "--max-steps", "12"))
    assert (cfg.policy, cfg.served_model_name, cfg.upstream_concurrency, cfg.check_upstream,
            cfg.max_steps) == ("pomdp-filter:0.3", "m", 3, False, 12)


def test_client_disconnect_cancels_the_request_and_its_upstream_calls():
    import time

    with stubs(n_steps=3, delay=1.0) as up, ServerThread(config(up)) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as http:
        body = {"model": "trimpomdp", "messages": [{"role": "user", "content": "q"}]}
        with pytest.raises(httpx.ReadTimeout):  # the client gives up during the first draft
            httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=0.4)
        time.sleep(2.0)  # the draft would have returned by now and the PRM been asked
        m = parse_prometheus(http.get("/metrics").text)
        assert m["trim_client_disconnects_total"] == 1
        assert m['trim_requests_total{endpoint="chat",status="499"}'] == 1
        assert m["trim_requests_in_flight"] == 0
        assert up["prm"].hits["/pooling"] == 0  # cancelled before scoring: no wasted calls
        assert up["weak"].hits["/v1/chat/completions"] == 1


def test_trimpomdp_main_runs_serve_and_reports_bad_settings_in_one_line(capsys):
    from trimpomdp.cli.main import main

    assert main(["serve", "--weak", "ftp://x", "--policy", "weak"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trimpomdp serve: error: field 'weak':") and "\n" not in err
