"""The live loop against REAL vLLM CPU servers: SmolLM2-135M (weak), Gemma-3-270M (strong) and a
tiny random Qwen2 PRM on ``/pooling``. Marked ``server``; ``.ci/live.sh`` prepares and runs them.
"""
from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.server

httpx = pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends")

from servers import live_servers

from trimpomdp.data.problems import Problem
from trimpomdp.generation._http import RetryPolicy
from trimpomdp.generation.live import LiveRunConfig, run_live
from trimpomdp.generation.openai_compat import OpenAICompletionsBackend
from trimpomdp.generation.prm_self import SelfScorePRM
from trimpomdp.generation.prm_vllm import VLLMPoolingPRM
from trimpomdp.generation.prompting import generation_messages, prm_messages
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.generation.runlog import read_runlog

RETRY = RetryPolicy(retries=2, timeout=300.0)
GREEDY = SamplingParams(temperature=0.0, max_tokens=24)
QUESTION = "What is $2+3$?"


@pytest.fixture(scope="session")
def live():
    with live_servers(max_model_len=1024) as (servers, paths):
        urls = {k: srv.url for k, srv in servers.items()}
        asyncio.run(_warm_up(urls))
        yield {"urls": urls, "models": paths, "servers": servers}


async def _warm_up(urls):
    for name in ("weak", "strong"):
        b = OpenAICompletionsBackend(urls[name], name=name, retry=RETRY)
        await b.generate_step(generation_messages(QUESTION, []), stop=["\n\n"],
                              sampling=SamplingParams(max_tokens=4))
        await b.aclose()


def _run(coro):
    return asyncio.run(coro)


def test_real_step_counts_decoded_tokens_and_stops(live):
    async def go():
        b = OpenAICompletionsBackend(live["urls"]["weak"], name="weak", retry=RETRY)
        try:
            out = await b.generate_step(generation_messages(QUESTION, []), stop=["\n\n"],
                                        sampling=GREEDY)
            return out, b.api
        finally:
            await b.aclose()
    out, api = _run(go())
    assert api == "completions"  # the server's model folder is local: rendered on the client
    assert 1 <= out.tokens <= GREEDY.max_tokens and "\n\n" not in out.text
    assert out.stopped_on_stop or out.finish_reason == "length" or out.tokens < 24
    if out.finish_reason == "length":
        assert out.tokens == GREEDY.max_tokens and not out.stopped_on_stop


@pytest.mark.parametrize("name", ["weak", "strong"])
def test_client_rendering_matches_server_chat_rendering(live, name):
    """Greedy steps from /v1/completions (client template) and /v1/chat/completions
    (server template, continue_final_message) agree: the same prompt reached the model."""
    msgs = generation_messages(QUESTION, ["We add the two numbers."])

    async def go(api):
        b = OpenAICompletionsBackend(live["urls"][name], name=name, api=api, retry=RETRY)
        try:
            return await b.generate_step(msgs, stop=["\n\n"], sampling=GREEDY)
        finally:
            await b.aclose()
    a, c = _run(go("completions")), _run(go("chat"))
    assert (a.text, a.tokens) == (c.text, c.tokens)


@pytest.mark.parametrize("name", ["weak", "strong"])
def test_token_id_prompts_from_the_servers_tokenize_equal_local_ones(live, name):
    """Without the weights here (``tokenizer="server"``), the prompt ids come from the server's
    ``/tokenize`` with the chat messages: the same ids as the local template + tokenizer, and the
    same greedy step."""
    msgs = generation_messages(QUESTION, ["We add the two numbers."])

    async def go(tok):
        b = OpenAICompletionsBackend(live["urls"][name], name=name, retry=RETRY, tokenizer=tok)
        try:
            out = await b.generate_step(msgs, stop=["\n\n"], sampling=GREEDY)
            return out, await b.prompt_ids(msgs), b.tokenize, b.template_trims
        finally:
            await b.aclose()
    local, local_ids, how_l, trims_l = _run(go(None))
    remote, remote_ids, how_r, trims_r = _run(go("server"))
    assert (how_l, how_r) == ("local", "server") and trims_l is trims_r is False
    assert remote_ids == local_ids
    assert (remote.text, remote.tokens, remote.stopped_on_stop) == (
        local.text, local.tokens, local.stopped_on_stop)
    assert remote.prompt_tokens == local.prompt_tokens == len(local_ids)


def test_real_prm_pooling_matches_local_transformers_scorer(live):
    pytest.importorskip("torch", reason="the reference scorer runs the PRM with transformers")
    from trimpomdp.generation.prm_hf import HFLocalPRM

    steps = ["We add 2 and 3.", "This gives 5.", "The answer is $\\boxed{5}$."]

    async def go():
        prm = VLLMPoolingPRM(live["urls"]["prm"], retry=RETRY)
        try:
            return await prm.score_steps(QUESTION, steps)
        finally:
            await prm.aclose()
    served = _run(go())
    local = HFLocalPRM(live["models"]["prm"]).score_sync(QUESTION, steps)
    assert len(served) == 3 and all(0.0 < s < 1.0 for s in served)
    assert served == pytest.approx(local, abs=2e-3)


def test_real_self_scoring_from_logprobs(live):
    async def go():
        b = OpenAICompletionsBackend(live["urls"]["strong"], name="strong", retry=RETRY)
        try:
            return await SelfScorePRM(b).score_steps(QUESTION, ["2 + 3 = 5.", "zebra cloud kettle"])
        finally:
            await b.aclose()
    sensible, nonsense = _run(go())
    assert 0.0 < nonsense < sensible <= 1.0


def test_real_end_to_end_run_and_resume(live, tmp_path):
    urls = live["urls"]
    probs = [Problem(problem_id=f"t{i}", question=q, answer=a) for i, (q, a) in enumerate(
        [("What is $2+3$?", "5"), ("What is $7 \\times 6$?", "42"), ("Compute $10-4$.", "6")])]
    cfg = LiveRunConfig(weak_url=urls["weak"], strong_url=urls["strong"], prm=urls["prm"],
                        policy="thr:0.55", dataset="inline", concurrency=3, max_steps=4,
                        max_step_tokens=32, seed=0)
    first = _run(run_live(probs[:2], cfg, tmp_path))
    assert first["ok"] == 2
    summary = _run(run_live(probs, cfg, tmp_path))
    assert summary["last_invocation"]["skipped"] == 2 and summary["ok"] == 3
    recs = read_runlog(tmp_path)
    assert sorted(r["problem_id"] for r in recs) == ["t0", "t1", "t2"]
    for r in recs:
        steps = r["steps"]
        assert 1 <= r["n_steps"] == len(steps) <= 4
        assert r["strong_tokens"] == sum(s.get("strong_tokens", 0) for s in steps)
        assert r["weak_tokens"] >= sum(s["draft_tokens"] for s in steps)
        assert r["discarded_weak_tokens"] >= sum(s["draft_tokens"] for s in steps
                                                 if s["source"] == "strong")
        for s in steps:
            assert 0.0 <= s["score"] <= 1.0
            assert s["action"] == ("regenerate" if s["score"] < 0.55 else "continue")


# ---------------------------------------------------------------- linear-cost PRM scoring (#16)
#: real multi-step text (PRM800K-style), long enough to span several 32-token cache blocks
LONG_STEPS = [
    ("Let's call the price of a pencil p and the price of a jumbo eraser e. Then we can write "
    "two equations."),
    "The first equation is 3p + e = 124, and the second equation is 5p + e = 182.",
    "Subtracting the first equation from the second one gives 2p = 58, so p = 29.",
    ("We can check this by substituting p = 29 into the first equation: 3 * 29 + e = 124, so "
    "e = 37."),
    "So the price of a pencil is $\\boxed{29}$ cents.",
]
PENCILS = ("Three pencils and a jumbo eraser cost $\\$1.24$. Five pencils and a jumbo eraser cost "
           "$\\$1.82$. No prices include tax. In cents, what is the cost of a pencil?")


@pytest.fixture(scope="session")
def prm_last(live):
    """A second PRM server: the trimpomdp plugin, ``classify`` (last-token) pooling, prefix
    caching with 32-token blocks (the CPU minimum)."""
    from servers import prm_server

    srv = prm_server(live["servers"]["prm"].python, live["models"]["prm"], last_pool=True,
                     max_model_len=1024).start()
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


def _computed(url):
    """(prompt tokens computed, served from the prefix cache) from the server's /metrics."""
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    got = {"local_compute": 0.0, "local_cache_hit": 0.0}
    for line in text.splitlines():
        if line.startswith("vllm:prompt_tokens_by_source_total{"):
            for k in got:
                if f'source="{k}"' in line:
                    got[k] += float(line.rsplit(" ", 1)[1])
    return got["local_compute"], got["local_cache_hit"]


def test_last_token_pooling_equals_step_pooling_and_is_served_from_the_prefix_cache(live,
                                                                                    prm_last):
    step_url, last_url = live["urls"]["prm"], prm_last.url

    async def go():
        stock = VLLMPoolingPRM(step_url, retry=RETRY)
        new = VLLMPoolingPRM(last_url, retry=RETRY, cache_salt=True)
        try:
            modes = (await stock.resolve_mode(), await new.resolve_mode())
            single = (await stock.http.post("/tokenize", {
                "messages": prm_messages(PENCILS, LONG_STEPS),
                "add_generation_prompt": False}))["count"]
            ref = await stock.score_steps(PENCILS, LONG_STEPS)
            o0 = _computed(step_url)
            old = [await stock.score_steps(PENCILS, LONG_STEPS[:k + 1])
                   for k in range(len(LONG_STEPS))]
            o1 = _computed(step_url)
            s = new.session(PENCILS)
            n0 = _computed(last_url)
            inc = [await s.score(LONG_STEPS[:k + 1]) for k in range(len(LONG_STEPS))]
            n1 = _computed(last_url)
            ids = await new.prompt_ids(PENCILS, LONG_STEPS)
            cuts = [i + 1 for i, t in enumerate(ids) if t == new.marker_id]
            return modes, single, ref, old, inc, (o1[0] - o0[0], o1[1] - o0[1]), \
                (n1[0] - n0[0], n1[1] - n0[1]), new.requests, cuts
        finally:
            await stock.aclose()
            await new.aclose()
    modes, single, ref, old, inc, (old_c, old_hit), (new_c, new_hit), reqs, cuts = _run(go())
    assert modes == ("step", "last")  # the stock server cannot: STEP fallback
    for k in range(len(LONG_STEPS)):  # the last-token score of each marker == STEP pooling's
        assert inc[k] == pytest.approx(ref[:k + 1], abs=1e-3)
        assert old[k] == pytest.approx(ref[:k + 1], abs=1e-5)
    assert old_hit == 0 and old_c >= 2.5 * single  # STEP pooling never reads the cache
    # each request computes its new step plus the previous prompt's tail past its last full
    # 32-token block (only full blocks are cached): at most one pass + 31 tokens per step
    tails = sum(c % 32 for c in cuts[:-1])
    assert new_hit > 0 and new_c <= cuts[-1] + tails + 1, (new_c, cuts)
    assert new_c <= single + 32 * (len(LONG_STEPS) - 1) and 2.5 * new_c < old_c
    assert reqs == 1 + len(LONG_STEPS)  # the probe + one request per new step


def test_over_long_prm_input_is_one_truncated_request(live, prm_last):
    steps = [f"Step {i}: " + "we keep adding the numbers one by one " * 6 for i in range(30)]

    async def go(url):
        prm = VLLMPoolingPRM(url, retry=RETRY)
        try:
            await prm.resolve_mode()
            r0 = prm.requests
            scores = await prm.score_steps(QUESTION, steps)
            return scores, prm.requests - r0
        finally:
            await prm.aclose()
    step_scores, n_step = _run(go(live["urls"]["prm"]))
    assert n_step == 1 and len(step_scores) == 30  # > 1024 tokens: one request, left-truncated
    assert step_scores[0] == 1.0 and 0.0 < step_scores[-1] < 1.0  # cut markers score 1.0
    last_scores, n_last = _run(go(prm_last.url))
    assert n_last == 30 and all(0.0 < s < 1.0 for s in last_scores)

    async def step_on_window():  # STEP pooling of the same 1024 tokens ending at the last marker
        new, stock = VLLMPoolingPRM(prm_last.url, retry=RETRY), VLLMPoolingPRM(
            live["urls"]["prm"], retry=RETRY)
        try:
            await new.resolve_mode()
            ids = await new.prompt_ids(QUESTION, steps)
            end = max(i for i, t in enumerate(ids) if t == new.marker_id)
            doc = await stock.http.post("/pooling", {"input": ids[:end + 1][-1024:],
                                                     "add_special_tokens": False})
            return doc["data"][0]["data"][-1][1]
        finally:
            await new.aclose()
            await stock.aclose()
    assert last_scores[-1] == pytest.approx(_run(step_on_window()), abs=1e-3)


def test_real_end_to_end_run_with_last_token_prm(live, prm_last, tmp_path):
    urls = live["urls"]
    probs = [Problem(problem_id="t0", question="What is $2+3$?", answer="5")]
    cfg = LiveRunConfig(weak_url=urls["weak"], strong_url=urls["strong"], prm=prm_last.url,
                        policy="thr:0.55", dataset="inline", concurrency=1, max_steps=3,
                        max_step_tokens=24, seed=0)
    summary = _run(run_live(probs, cfg, tmp_path))
    assert summary["ok"] == 1
    (rec,) = read_runlog(tmp_path)
    for s in rec["steps"]:
        assert 0.0 < s["score"] < 1.0
        assert s["action"] == ("regenerate" if s["score"] < 0.55 else "continue")


# ---------------------------------------------------------------- in-process vLLM engine (#16)
@pytest.fixture(scope="session")
def engine_result(live, tmp_path_factory):
    """Run tests/generation/engine_check.py in the vLLM interpreter (the engines live there)."""
    import json
    import os
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    py = live["servers"]["prm"].python
    need = subprocess.run([py, "-c", "import scipy, sklearn, tqdm"], capture_output=True,
                          check=False)
    if need.returncode:
        pytest.skip("the vLLM interpreter lacks trimpomdp's core dependencies (scipy, "
                    "scikit-learn, tqdm); .ci/live.sh installs them")
    out = tmp_path_factory.mktemp("engine")
    env = dict(os.environ, PYTHONPATH=str(here.parents[1]), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1",
               VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
               VLLM_CPU_OMP_THREADS_BIND=os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
               TRIMPOMDP_VLLM_PLUGIN_DIR=str(out / "plugin"))
    r = subprocess.run([py, str(here / "engine_check.py"), str(live["models"]["weak"].parent),
                        str(out)], env=env, capture_output=True, text=True, timeout=1800,
                       check=False)
    if r.returncode:
        pytest.fail(f"engine_check.py exited with {r.returncode}:\n{r.stdout[-3000:]}\n"
                    f"{r.stderr[-3000:]}")
    return json.loads((out / "result.json").read_text()), out


@pytest.mark.parametrize("name", ["weak", "strong"])
def test_in_process_engine_generates_like_the_http_server(live, engine_result, name):
    res, _ = engine_result
    greedy = SamplingParams(temperature=0.0, max_tokens=24)

    async def go(steps):
        b = OpenAICompletionsBackend(live["urls"][name], name=name, retry=RETRY)
        try:
            return await b.generate_step(generation_messages(QUESTION, steps), stop=["\n\n"],
                                         sampling=greedy)
        finally:
            await b.aclose()
    for key, steps in ((name, ["We add the two numbers."]), (name + "_first", [])):
        http = _run(go(steps))
        assert (res[key]["text"], res[key]["tokens"], res[key]["stopped"],
                res[key]["finish"]) == (http.text, http.tokens, http.stopped_on_stop,
                                        http.finish_reason)


def test_in_process_engine_prm_is_last_token_and_matches_step_and_transformers(live,
                                                                              engine_result):
    pytest.importorskip("torch", reason="the reference scorer runs the PRM with transformers")
    from trimpomdp.generation.prm_hf import HFLocalPRM

    res, _ = engine_result
    steps = ["We add 2 and 3.", "This gives 5.", "The answer is $\\boxed{5}$."]
    assert res["prm_mode"] == "last"  # the plugin registered in-process: classify served
    assert res["prm_last"] == pytest.approx(res["prm_step"], abs=1e-3)
    local = HFLocalPRM(live["models"]["prm"]).score_sync(QUESTION, steps)
    assert res["prm_last"] == pytest.approx(local, abs=2e-3)
    t = res["prm_session_tokens"]  # 3 prefixes: the later ones start from the cached blocks
    assert t["cached"] > 0 and t["prompt"] - t["cached"] <= t["single"] + 2 * 32


def test_in_process_engine_end_to_end_run_and_resume(engine_result):
    res, out = engine_result
    first, second = res["runs"]
    assert (first["finished"], first["failed"]) == (2, 0)
    assert (second["skipped"], second["finished"], second["failed"]) == (2, 1, 0)
    recs = read_runlog(out / "run")
    assert sorted(r["problem_id"] for r in recs) == ["t0", "t1", "t2"]
    for r in recs:
        steps = r["steps"]
        assert 1 <= r["n_steps"] == len(steps) <= 4
        assert r["strong_tokens"] == sum(s.get("strong_tokens", 0) for s in steps)
        assert r["weak_tokens"] >= sum(s["draft_tokens"] for s in steps)
        for s in steps:
            assert 0.0 <= s["score"] <= 1.0
            assert s["action"] == ("regenerate" if s["score"] < 0.55 else "continue")
    assert res["weak_counts"]["cached"] > 0  # the engine's prefix cache serves the next steps


def test_cli_run_with_the_in_process_backend(tmp_path):
    """``trimpomdp run --backend vllm-inprocess`` on the real CPU models, in the vLLM
    interpreter: the same checks as the HTTP end-to-end run, and the run resumes."""
    import json
    import subprocess

    from servers import CPU_ENGINE_ARGS, inprocess_env, vllm_python_and_models

    py, models = vllm_python_and_models()
    need = subprocess.run([py, "-c", "import scipy, sklearn, tqdm"], capture_output=True,
                          check=False)
    if need.returncode:
        pytest.skip("the vLLM interpreter lacks trimpomdp's core dependencies (scipy, "
                    "scikit-learn, tqdm); .ci/live.sh installs them")
    probs = tmp_path / "probs.jsonl"
    probs.write_text("".join(json.dumps({"problem_id": f"t{i}", "question": q, "answer": a})
                             + "\n" for i, (q, a) in enumerate(
        [("What is $2+3$?", "5"), ("What is $7 \\times 6$?", "42"), ("Compute $10-4$.", "6")])))
    out = tmp_path / "run"

    def cli(limit):
        cmd = [py, "-m", "trimpomdp", "run", "--backend", "vllm-inprocess",
               "--weak", str(models["weak"]), "--strong", str(models["strong"]),
               "--prm", str(models["prm"]), "--policy", "thr:0.55", "--dataset", str(probs),
               "--out", str(out), "--limit", str(limit), "--concurrency", "3",
               "--max-steps", "4", "--max-step-tokens", "32", "--seed", "0",
               "--engine-args", json.dumps(CPU_ENGINE_ARGS), "--no-progress"]
        r = subprocess.run(cmd, env=inprocess_env(tmp_path / "plugin"), capture_output=True,
                           text=True, timeout=1800, check=False)
        assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
        summary = json.loads(r.stdout)  # only the summary: vLLM's log lines go to stderr
        assert summary == json.loads((out / "summary.json").read_text())
        return summary
    first = cli(2)
    assert (first["ok"], first["failed"]) == (2, 0)
    second = cli(3)
    assert second["last_invocation"]["skipped"] == 2 and second["ok"] == 3
    recs = read_runlog(out)
    assert sorted(r["problem_id"] for r in recs) == ["t0", "t1", "t2"]
    assert json.loads((out / "run.json").read_text())["backend"] == "vllm-inprocess"
    for r in recs:
        steps = r["steps"]
        assert r["status"] == "ok" and 1 <= r["n_steps"] == len(steps) <= 4
        assert r["strong_tokens"] == sum(s.get("strong_tokens", 0) for s in steps)
        assert r["weak_tokens"] >= sum(s["draft_tokens"] for s in steps)
        for s in steps:
            assert 0.0 < s["score"] < 1.0
            assert s["action"] == ("regenerate" if s["score"] < 0.55 else "continue")
