"""Closed-loop strong-token-share budget vs the open-loop λ, on stub upstreams whose PRM drifts.

Protocol-level: the weak/strong upstreams are :class:`VarStepModel` (``tests/serve/stub_upstream.py``
with steps of 5–60 tokens, the same length for both models; no model), the PRM is :class:`DriftPRM`: each step's score is a hash of the
question and the step index, uniform in [0.05, 0.95], and **0.1 lower** for the questions
numbered ``drop_at`` and later (``Problem <i>:`` in the question). The bundled TRIM model was not
fitted to these scores, so the simulator's λ is mis-calibrated from the start, and the drop
moves the share again halfway.

Two servers (the real :class:`~trimpomdp.serve.app.TrimServer`, in process, on loopback) answer
the same ``n`` requests, ``concurrency`` at a time:

- **open loop**: each request asks ``trim.strong_token_share = target``: the λ that
  :func:`trimpomdp.tuning.lambda_for_budget` picks for it on the calibrated simulator;
- **closed loop**: the server runs with ``target_share = target`` (``--target-share``) and the
  requests carry no budget; the controller starts from the same open-loop λ.

Share of a request = strong tokens / strong-only tokens, the strong-only tokens estimated as
the answer's own tokens (a rewritten step's strong tokens, a kept step's weak tokens): from the
usage, ``strong / (strong + weak - discarded_weak)`` (docs/serve.md, "Closed-loop budget"). The
figure compares Σ strong / Σ strong-only over the last ``tail`` requests with the target.

Run: ``python benchmarks/closed_loop.py [--n 400] [--out benchmarks/results/closed_loop]``
(writes ``.json``, ``.md`` and ``.png``). Two cores: about 2 minutes.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serve"))

import httpx
from aiohttp import web
from serve_harness import ServerThread, config
from stub_upstream import StubUpstream, _steps_done

_NUM = re.compile(r"Problem (\d+):")


class DriftPRM(StubUpstream):
    """The PRM stub: per-question hashed step scores, ``drop`` lower from question ``drop_at``."""

    def __init__(self, *, drop_at: int, drop: float = 0.1, salt: int = 0) -> None:
        super().__init__("prm")
        self.drop_at = drop_at
        self.drop = drop
        self.salt = salt

    def score(self, question: str, i: int) -> float:
        p = 0.05 + 0.9 * (zlib.crc32(f"{self.salt}|{question}|{i}".encode()) % 10007) / 10006
        m = _NUM.search(question)
        if m is not None and int(m.group(1)) >= self.drop_at:
            p -= self.drop
        return min(1.0, max(0.0, p))

    async def _answer(self, request: web.Request, path: str) -> web.StreamResponse:
        if path != "/pooling":
            return await super()._answer(request, path)
        body = await request.json()
        question = json.dumps(body["messages"][:-1])
        steps = body["messages"][-1]["content"].split("<extra_0>")[:-1]
        rows = [[1.0 - p, p] for p in (self.score(question, i) for i in range(len(steps)))]
        return web.json_response({"data": [{"index": 0, "data": rows}]})


def _number(text: str) -> str:
    m = _NUM.search(text)
    return m.group(1) if m is not None else "-"


class VarStepModel(StubUpstream):
    """A weak or strong model stub whose steps are 5–60 tokens long (one word a token), the
    length a hash of the question's number and the step index, the same for both models (so a
    rewrite costs what the draft did, and strong-only tokens are the answer's tokens)."""

    salt = 0

    async def _answer(self, request: web.Request, path: str) -> web.StreamResponse:
        body = await request.json()
        prompt = body.get("prompt") or (body.get("messages") or [{}])[-1].get("content", "")
        k = _steps_done(prompt)
        num = _number(json.dumps(body))
        n_words = 5 + zlib.crc32(f"{self.salt}|{num}|{k}".encode()) % 56
        words = [f"Step {k} of {self.tag}.", *(["w"] * (n_words - 4))]
        last = k + 1 >= self.n_steps
        if last:
            words.append("\\boxed{5}.")
        out = " ".join(words)
        ntok = len(out.split())
        finish, stop_reason = "stop", None if last else "\n\n"
        cap = body.get("max_tokens")
        if isinstance(cap, int) and cap < ntok:
            out, finish, stop_reason, ntok = " ".join(out.split()[:cap]), "length", None, cap
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "stop_reason": stop_reason}
        if path == "/v1/completions":
            choice["text"] = out
        else:
            choice["message"] = {"role": "assistant", "content": out}
        return web.json_response({"choices": [choice], "usage": {
            "prompt_tokens": 10, "completion_tokens": ntok, "total_tokens": 10 + ntok}})


def request_share(usage: dict[str, Any]) -> tuple[int, int]:
    """(strong tokens, strong-only tokens) of one response's usage."""
    strong = int(usage["strong_completion_tokens"])
    kept_weak = int(usage["weak_completion_tokens"]) - int(usage["discarded_weak_tokens"])
    return strong, strong + kept_weak


def window_share(rows: list[dict[str, Any]]) -> float:
    only = sum(r["strong_only"] for r in rows)
    return sum(r["strong"] for r in rows) / only if only else float("nan")


def drive(url: str, n: int, trim: dict[str, Any] | None, concurrency: int) -> list[dict[str, Any]]:
    """``n`` requests (question ``Problem i: ...``), ``concurrency`` in flight; rows by index."""
    rows: list[dict[str, Any] | None] = [None] * n
    with httpx.Client(base_url=url, timeout=300) as http:
        def one(i: int) -> None:
            body: dict[str, Any] = {"model": "trimpomdp", "messages": [
                {"role": "user", "content": f"Problem {i}: what is {i} + 3?"}]}
            if trim is not None:
                body["trim"] = trim
            r = http.post("/v1/chat/completions", json=body)
            r.raise_for_status()
            out = r.json()
            strong, only = request_share(out["usage"])
            rows[i] = {"i": i, "strong": strong, "strong_only": only,
                       "lambda": out["trim"]["lambda"], "t": time.perf_counter()}

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
    return [r for r in rows if r is not None]


def metrics_state(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics").text
    return {line.split()[0][len("trim_closed_loop_"):]: float(line.split()[1])
            for line in text.splitlines() if line.startswith("trim_closed_loop_")}


def run(n: int = 400, *, target: float = 0.2, window: int = 100, tail: int = 100,
        n_steps: int = 8, concurrency: int = 4, sim_problems: int = 2000,
        drop: float = 0.1, tuned: bool = True, salt: int = 0) -> dict[str, Any]:
    """The runs on fresh servers; the figures (and the per-request rows) as a dict.

    ``tuned`` adds a third run: a fixed λ tuned on this very traffic before the drop (the
    geometric mean of the closed loop's λ over the ``tail`` requests before it), which shows
    what the drift alone does to an open-loop λ that was right. ``salt`` changes the hashes
    (scores and step lengths): another draw of the same traffic.
    """
    drop_at = n // 2
    out: dict[str, Any] = {"n": n, "target": target, "window": window, "tail": tail,
                           "n_steps": n_steps, "concurrency": concurrency, "drop_at": drop_at,
                           "drop": drop, "sim_problems": sim_problems, "salt": salt}
    with VarStepModel("weak", n_steps=n_steps) as w, VarStepModel("strong", n_steps=n_steps) as s, \
            DriftPRM(drop_at=drop_at, drop=drop, salt=salt) as p:
        w.salt = s.salt = salt
        up = {"weak": w, "strong": s, "prm": p}
        for mode in ("open", "closed", "tuned") if tuned else ("open", "closed"):
            kw: dict[str, Any] = {"budget_sim_problems": sim_problems, "timeout": 60.0}
            if mode == "closed":
                kw.update(target_share=target, target_window=window)
            trim: dict[str, Any] | None = {"strong_token_share": target}
            if mode == "closed":
                trim = None
            elif mode == "tuned":
                lams = [r["lambda"] for r in out["closed"]["rows"][drop_at - tail:drop_at]]
                lam_t = float(f"{math.exp(sum(map(math.log, lams)) / len(lams)):.4g}")
                trim = {"lambda": lam_t}
            t0 = time.perf_counter()
            with ServerThread(config(up, **kw)) as srv:
                started = time.perf_counter() - t0
                if mode == "open":  # the λ search, done before the clock (as the closed loop
                    httpx.post(srv.url + "/v1/chat/completions", timeout=300, json={  # did at start)
                        "model": "trimpomdp", "trim": trim,
                        "messages": [{"role": "user", "content": "warm-up"}]}).raise_for_status()
                t1 = time.perf_counter()
                rows = drive(srv.url, n, trim, concurrency)
                state = metrics_state(srv.url) if mode == "closed" else {}
                seconds = time.perf_counter() - t1
            out[mode] = {
                "rows": rows, "start_s": round(started, 2), "run_s": round(seconds, 2),
                "share_last": window_share(rows[-tail:]),
                "share_before_drop": window_share(rows[drop_at - tail:drop_at]),
                "share_all": window_share(rows),
                "lambda_first": rows[0]["lambda"], "lambda_last": rows[-1]["lambda"],
                "metrics": state,
            }
            out[mode]["miss_last"] = out[mode]["share_last"] - target
    return out


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    w = res["window"]
    for mode, color in (("open", "tab:red"), ("tuned", "tab:orange"), ("closed", "tab:blue")):
        if mode not in res:
            continue
        rows = res[mode]["rows"]
        xs = [r["i"] for r in rows]
        roll = [window_share(rows[max(0, k - w + 1):k + 1]) for k in range(len(rows))]
        label = {"open": "open loop (λ of lambda_for_budget)", "closed": "closed loop",
                 "tuned": "fixed λ tuned on requests before the drop"}[mode]
        a1.plot(xs, roll, color=color, label=f"{label}: share over last {w} requests")
        a2.plot(xs, [r["lambda"] for r in rows], color=color, label=label)
    t = res["target"]
    a1.axhline(t, color="k", lw=0.8, ls="--", label=f"target {t:g}")
    a1.axhspan(t - 0.02, t + 0.02, color="k", alpha=0.08)
    for a in (a1, a2):
        a.axvline(res["drop_at"], color="gray", lw=0.8, ls=":")
    a1.set_ylabel("strong / strong-only tokens")
    a1.legend(fontsize=8)
    a2.set_ylabel("λ of the request")
    a2.set_yscale("log")
    a2.set_xlabel(f"request (PRM scores {res['drop']:g} lower from request {res['drop_at']})")
    a2.legend(fontsize=8)
    fig.suptitle("trimpomdp serve: strong-token-share target, open vs closed loop (stub upstreams)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(all_res: list[dict[str, Any]], cmd: str) -> str:
    res = all_res[0]
    t, tail = res["target"], res["tail"]
    lines = [
        "# Closed-loop strong-token-share budget (benchmarks/closed_loop.py)", "",
        f"Command: `{cmd}`", "",
        (f"Stub upstreams (protocol level, no model): {res['n_steps']}-step answers, steps of 5–60 "
        "tokens (the same length for both models); PRM step scores hashed per question, uniform in [0.05, 0.95], "
        f"**{res['drop']:g} lower from request {res['drop_at']} on**. {res['n']} requests, "
        f"{res['concurrency']} in flight; target share {t:g}; closed-loop window {res['window']}; "
        f"simulator problems for `lambda_for_budget`: {res['sim_problems']}."), "",
        ("Share = Σ strong tokens / Σ strong-only tokens (strong-only estimated as the answer's own "
        "tokens: rewritten steps' strong tokens + kept weak drafts), per window of requests."), "",
        f"Salt {res['salt']} (the plotted run):", "",
        (f"| | share, requests {res['drop_at'] - tail}–{res['drop_at'] - 1} (before the drop) | "
        f"share, last {tail} requests | miss vs {t:g} (last {tail}) | λ first → last | wall s |"),
        "|---|---|---|---|---|---|",
    ]
    for mode, name in (("open", "open loop (`trim.strong_token_share`)"),
                       ("tuned", "fixed λ tuned on this traffic before the drop (`trim.lambda`)"),
                       ("closed", "closed loop (`--target-share`)")):
        if mode not in res:
            continue
        m = res[mode]
        lines.append(f"| {name} | {m['share_before_drop']:.4f} | {m['share_last']:.4f} | "
                     f"{m['miss_last']:+.4f} | {m['lambda_first']:.4g} → {m['lambda_last']:.4g} "
                     f"| {m['run_s']:.1f} |")
    st = res["closed"]["metrics"]
    if st:
        lines += ["", "Closed-loop state on `/metrics` at the end: " + ", ".join(
            f"`trim_closed_loop_{k}` {v:g}" for k, v in st.items()), ""]
    lines += ["", (f"Every salt (another draw of scores and step lengths): share over the last {tail} "
              f"requests, miss vs {t:g}"), "",
              ("| salt | open loop | fixed λ tuned before the drop | closed loop | closed within "
              "±0.02, open loop outside |"), "|---|---|---|---|---|"]
    for r in all_res:
        ok = abs(r["closed"]["miss_last"]) <= 0.02 < abs(r["open"]["miss_last"])
        cells = [f"{r[m]['share_last']:.4f} ({r[m]['miss_last']:+.4f})" if m in r else "—"
                 for m in ("open", "tuned", "closed")]
        lines.append(f"| {r['salt']} | " + " | ".join(cells) + f" | {'yes' if ok else 'no'} |")
    lines += ["", "![share and λ](closed_loop.png)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--target", type=float, default=0.2)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--sim-problems", type=int, default=2000)
    ap.add_argument("--salts", default="0", help="comma-separated draws (hash salts)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "closed_loop"))
    args = ap.parse_args()
    all_res = [run(args.n, target=args.target, window=args.window, tail=min(100, args.n // 4),
                   concurrency=args.concurrency, sim_problems=args.sim_problems, salt=int(x))
               for x in args.salts.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(all_res, separators=(",", ":")))
    plot(all_res[0], out.with_suffix(".png"))
    res = all_res
    cmd = "python benchmarks/closed_loop.py " + " ".join(sys.argv[1:])
    out.with_suffix(".md").write_text(report(res, cmd.strip()))
    print(report(res, cmd.strip()))


if __name__ == "__main__":
    main()
