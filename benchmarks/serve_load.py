"""Load test of ``trimpomdp serve`` on loopback — PROTOCOL-LEVEL: the upstreams are stub servers.

The weak/strong/PRM upstreams are ``tests/serve/stub_upstream.py`` (real HTTP servers in their own
process that answer instantly with scripted steps, no model), so the figures are the cost of the
server itself: HTTP, validation, the step loop's bookkeeping, routing, serialisation — not of
decoding. The server is the real CLI process (``python -m trimpomdp serve``).

Phases: (1) sequential requests → latency at concurrency 1 and overhead per request (client
latency − time inside the step loop, as the response's ``trim.timing.total_s`` reports it);
(2) ``--concurrency`` (default 200) requests launched at once, half streaming, half with steps the
router rewrites, under a hard deadline → completed / errors / lost, p50/p99 latency, throughput;
the server's own ``trim_server_overhead_seconds`` histogram (time outside the loop) from /metrics.

Run: ``python benchmarks/serve_load.py [--concurrency 200] [--rounds 3] [--out FILE]``.

``--upstreams URLS.json`` (``{"weak": url | {"url": ...}, "strong": ..., "prm": ...}``, e.g. the
file ``tests/generation/servers.py serve`` writes) points the server at REAL model servers instead;
then the answers are only checked for being non-empty solutions, and ``--max-steps`` /
``--max-tokens`` keep each request short.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


#: per-request extras in real-upstream mode (None: stub mode)
REAL: dict | None = None


async def _one(session, url: str, i: int, stream: bool, bad: bool) -> dict:
    q = f"load {i}{' BADSTEP' if bad else ''}" if REAL is None else \
        f"What is ${abs(i) % 97} + {abs(i) % 13}$?"
    body = {"model": "trimpomdp", "stream": stream, "messages": [{"role": "user", "content": q}],
            **(REAL or {})}
    t0 = time.perf_counter()
    async with session.post(url + "/v1/chat/completions", json=body) as r:
        raw = await r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        return {"i": i, "ok": False, "status": r.status, "error": raw[:200].decode(errors="replace")}
    if stream:
        events = [ln[6:] for ln in raw.decode().split("\n") if ln.startswith("data: ")]
        ok = events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                       if c.get("choices"))
        final = next(c for c in chunks if c.get("choices") and c["choices"][0]["finish_reason"])
        trim = final["trim"]
    else:
        doc = json.loads(raw)
        ok = True
        text = doc["choices"][0]["message"]["content"]
        trim = doc["trim"]
    if REAL is None:
        want = "strong" if bad else "weak"
        ok = ok and text.count(f"of {want} (good)") == 3 and text.endswith("\\boxed{5}.")
    else:
        ok = ok and bool(text.strip()) and trim["n_steps"] >= 1
    return {"i": i, "ok": ok, "status": r.status, "seconds": dt,
            "loop_s": trim["timing"]["total_s"], "error": None if ok else text[:200]}


async def _metrics(session, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics") as r:
        text = await r.text()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


async def _run(url: str, n_seq: int, conc: int, rounds: int, deadline_s: float) -> dict:
    import aiohttp

    res: dict = {}
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=deadline_s)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
        for i in range(10 if REAL is None else 2):  # warm-up (connections, first calls)
            await _one(s, url, -1 - i, i % 2 == 1, i % 3 == 0)
        seq = [await _one(s, url, i, False, i % 2 == 1) for i in range(n_seq)]
        lat = [r["seconds"] for r in seq if r["ok"]]
        over = [r["seconds"] - r["loop_s"] for r in seq if r["ok"]]
        res["sequential"] = {"n": n_seq, "ok": len(lat), "p50_ms": 1e3 * _pct(lat, .5),
                             "p99_ms": 1e3 * _pct(lat, .99),
                             "loop_p50_ms": 1e3 * _pct([r["loop_s"] for r in seq if r["ok"]], .5),
                             "overhead_p50_ms": 1e3 * _pct(over, .5),
                             "overhead_p99_ms": 1e3 * _pct(over, .99)}
        m0 = await _metrics(s, url)
        bursts = []
        for k in range(rounds):
            t0 = time.perf_counter()
            tasks = [asyncio.ensure_future(_one(s, url, 10_000 * (k + 1) + i, i % 2 == 0,
                                                i % 4 < 2)) for i in range(conc)]
            done, pending = await asyncio.wait(tasks, timeout=deadline_s)
            wall = time.perf_counter() - t0
            for p in pending:
                p.cancel()
            got = []
            errors = []
            for d in done:
                if d.exception() is not None:
                    errors.append(repr(d.exception())[:200])
                elif not d.result()["ok"]:
                    errors.append(str(d.result()))
                else:
                    got.append(d.result())
            lat = [r["seconds"] for r in got]
            bursts.append({"sent": conc, "ok": len(got), "errors": len(errors),
                           "lost": len(pending), "wall_s": wall,
                           "throughput_rps": len(got) / wall,
                           "p50_ms": 1e3 * _pct(lat, .5) if lat else None,
                           "p99_ms": 1e3 * _pct(lat, .99) if lat else None,
                           "max_ms": 1e3 * max(lat) if lat else None,
                           "first_errors": errors[:3]})
        m1 = await _metrics(s, url)
        res["bursts"] = bursts
        key = "trim_server_overhead_seconds"
        n = m1[f"{key}_count"] - m0[f"{key}_count"]
        res["server_overhead_in_bursts"] = {
            "requests": n, "mean_ms": 1e3 * (m1[f"{key}_sum"] - m0[f"{key}_sum"]) / max(n, 1)}
        res["metrics_after"] = {k: v for k, v in m1.items() if k.startswith(
            ("trim_requests_total", "trim_upstream_errors", "trim_requests_in_flight"))}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sequential", type=int, default=100)
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds per burst")
    ap.add_argument("--upstream-concurrency", type=int, default=32)
    ap.add_argument("--out", default=None, help="default benchmarks/results/serve_load.json "
                    "(serve_load_real.json with --upstreams)")
    ap.add_argument("--upstreams", metavar="URLS.json", help="real model servers instead of stubs")
    ap.add_argument("--max-steps", type=int, default=2, help="per request, with --upstreams")
    ap.add_argument("--max-tokens", type=int, default=16, help="per step, with --upstreams")
    a = ap.parse_args(argv)
    global REAL
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    stub = server = None
    if a.upstreams:
        REAL = {"trim": {"max_steps": a.max_steps, "max_step_tokens": a.max_tokens}}
    a.out = a.out or str(ROOT / "benchmarks" / "results" / (
        "serve_load_real.json" if a.upstreams else "serve_load.json"))
    try:
        if a.upstreams:
            doc = json.loads(Path(a.upstreams).read_text())
            urls = {k: v["url"] if isinstance(v, dict) else v for k, v in doc.items()}
        else:
            stub = subprocess.Popen([sys.executable, str(ROOT / "tests" / "serve" /
                                                         "stub_upstream.py"), "3", "0"],
                                    stdout=subprocess.PIPE, text=True, env=env)
            urls = json.loads(stub.stdout.readline())
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "trimpomdp", "serve", "--weak", urls["weak"],
             "--strong", urls["strong"],
             "--prm", urls["prm"], "--policy", "thr:0.5", "--port", str(port),
             "--upstream-concurrency", str(a.upstream_concurrency),
             "--retries", "0" if not a.upstreams else "2", "--timeout", "600"],
            cwd=ROOT, env=env)
        import urllib.request

        t0 = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() - t0 > 120:
                    raise RuntimeError("trimpomdp serve did not start") from None
                time.sleep(0.2)
        res = asyncio.run(_run(url, a.sequential, a.concurrency, a.rounds, a.deadline))
    finally:
        for p in (server, stub):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    res["server_exit_code"] = server.returncode if server else None
    res["setup"] = {"upstreams": "stub_upstream.py (instant scripted answers, separate process)",
                    "steps_per_request": 3, "upstream_calls_per_request": "6 (weak, prm) + 3 "
                    "strong for BADSTEP requests", "upstream_concurrency": a.upstream_concurrency,
                    "cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()}
    if a.upstreams:
        res["setup"].update(upstreams=f"REAL servers {urls}", steps_per_request=
                            f"<= {a.max_steps}", max_tokens_per_step=a.max_tokens,
                            upstream_calls_per_request="2 per step (weak, prm) + 1 per rewrite")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    s = res["sequential"]
    print("REAL-upstream load test" if a.upstreams else
          "PROTOCOL-LEVEL load test (stub upstreams answer instantly; no model decoding)")
    print(f"sequential x{s['n']}: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms; "
          f"inside the step loop p50 {s['loop_p50_ms']:.1f} ms; "
          f"outside it p50 {s['overhead_p50_ms']:.2f} ms, p99 {s['overhead_p99_ms']:.2f} ms")
    for k, b in enumerate(res["bursts"]):
        print(f"burst {k}: {b['sent']} concurrent -> ok {b['ok']}, errors {b['errors']}, lost "
              f"{b['lost']}, p50 {b['p50_ms']:.0f} ms, p99 {b['p99_ms']:.0f} ms, "
              f"max {b['max_ms']:.0f} ms, {b['throughput_rps']:.0f} req/s")
    o = res["server_overhead_in_bursts"]
    print(f"server time outside the loop (its /metrics), bursts: mean {o['mean_ms']:.2f} ms "
          f"over {o['requests']:.0f} requests; load average {os.getloadavg()}")
    print(f"server exit code after SIGTERM: {res['server_exit_code']}; written {a.out}")
    bad = any(b["errors"] or b["lost"] for b in res["bursts"]) or res["server_exit_code"] != 0
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
