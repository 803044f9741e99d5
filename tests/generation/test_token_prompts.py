"""Token-id prompts on the HTTP path, the lossy chat fallback, the per-problem affinity header and
the PRM's system message from the task profile — against a real local HTTP server
(tests/generation/tokenizing_server.py: code-point token ids, so what was sent decodes exactly)."""
from __future__ import annotations

import asyncio
import logging

import pytest

pytest.importorskip("httpx", reason="httpx is needed by the HTTP backends (trimpomdp[live])")

from tokenizing_server import TokenizingServer, render

from trimpomdp.data.problems import Problem
from trimpomdp.errors import InputError
from trimpomdp.generation._http import RetryPolicy, affinity, affinity_value
from trimpomdp.generation.loop import LoopConfig, run_problems
from trimpomdp.generation.openai_compat import OpenAICompletionsBackend, trims_final_message
from trimpomdp.generation.prompting import INSTRUCTION, generation_messages
from trimpomdp.generation.protocols import SamplingParams
from trimpomdp.generation.runlog import RunLog
from trimpomdp.generation.wiring import UpstreamSettings, build_upstreams
from trimpomdp.routing.spec import PolicySpec
from trimpomdp.tasks import load_profile

FAST = RetryPolicy(retries=0, timeout=10.0)
SAMPLING = SamplingParams(max_tokens=16)
STEPS = ["We add 2 and 3."]
MSGS = generation_messages("What is 2+3?", STEPS)


class CodepointTokenizer:
    """A local "tokenizer" with the server's template; ids are code points."""

    def __init__(self, trim: bool = False) -> None:
        self.trim = trim

    def apply_chat_template(self, messages, *, tokenize=False, add_generation_prompt=False,
                            continue_final_message=False, **kw):
        assert not tokenize and not add_generation_prompt
        return render(list(messages), trim=self.trim, continue_final=continue_final_message)

    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False  # the template writes any BOS itself
        return {"input_ids": [ord(c) for c in text]}


def _step(srv_url, **kw):
    async def go():
        b = OpenAICompletionsBackend(srv_url, name="weak", retry=FAST, **kw)
        try:
            out = await b.generate_step(MSGS, stop=["\n\n"], sampling=SAMPLING)
            return out, b.api, b.tokenize, b.template_trims
        finally:
            await b.aclose()
    return asyncio.run(go())


def _decoded(srv):
    (body,) = srv.bodies("/v1/completions")
    assert isinstance(body["prompt"], list) and all(isinstance(t, int) for t in body["prompt"])
    return "".join(chr(t) for t in body["prompt"])


def test_trim_detection():
    assert trims_final_message("<a>Solution: 1", "Solution: 1\n\n")
    assert not trims_final_message("<a>Solution: 1\n\n", "Solution: 1\n\n")
    assert not trims_final_message("<a>x", "x")  # nothing to trim: not evidence


def test_local_tokenizer_sends_token_ids_of_the_rendered_chat():
    with TokenizingServer(tokenize=False) as srv:
        out, api, how, trims = _step(srv.url, tokenizer=CodepointTokenizer())
        sent = _decoded(srv)
    assert (api, how, trims) == ("completions", "local", False)
    assert sent == render(MSGS, trim=False, continue_final=True)
    assert sent.endswith("Solution: We add 2 and 3.\n\n")  # the model continues after "\n\n"
    assert out.text == "Step 1 of weak." and out.stopped_on_stop
    assert not srv.bodies("/tokenize")  # nothing asked of the server


def test_local_trimming_template_keeps_the_separator():
    with TokenizingServer(tokenize=False) as srv:
        _, _, how, trims = _step(srv.url, tokenizer=CodepointTokenizer(trim=True))
        sent = _decoded(srv)
    assert (how, trims) == ("local", True)
    assert sent.endswith("Solution: We add 2 and 3.\n\n")


@pytest.mark.parametrize("trim", [False, True])
def test_server_tokenize_when_the_weights_are_not_here(trim):
    with TokenizingServer(tokenize=True, trim=trim) as srv:
        out, api, how, trims = _step(srv.url)
        sent = _decoded(srv)
        chat_bodies = [b for b in srv.bodies("/tokenize") if "messages" in b]
    assert (api, how, trims) == ("completions", "server", trim)
    # exactly the server's template, and the separator a trimming template drops is appended
    assert sent == render(MSGS, trim=trim, continue_final=True) + ("\n\n" if trim else "")
    assert sent.endswith("We add 2 and 3.\n\n")
    for b in chat_bodies:
        assert b["continue_final_message"] is True and b["add_generation_prompt"] is False
    assert chat_bodies[-1]["messages"] == MSGS
    assert not srv.bodies("/v1/chat/completions")
    assert out.text == "Step 1 of weak."


def test_forced_chat_warns_and_is_refused_for_trimming_templates(caplog):
    with TokenizingServer(tokenize=True, trim=False) as srv, caplog.at_level(logging.WARNING):
        out, api, how, _ = _step(srv.url, api="chat")
        assert srv.bodies("/v1/chat/completions") and not srv.bodies("/v1/completions")
    assert (api, how) == ("chat", None) and out.text == "Step 1 of weak."
    assert any("--api chat" in r.getMessage() and "lossy" in r.getMessage()
               for r in caplog.records)
    with TokenizingServer(tokenize=True, trim=True) as srv:
        with pytest.raises(InputError, match="trims message content"):
            _step(srv.url, api="chat")
        assert not srv.bodies("/v1/chat/completions")  # refused before any generation
    with TokenizingServer(tokenize=False) as srv, \
            pytest.raises(InputError, match="trims message content"):  # a local tokenizer too
        _step(srv.url, api="chat", tokenizer=CodepointTokenizer(trim=True))


def test_auto_without_any_tokenizer_falls_back_to_chat_with_a_warning(caplog):
    with TokenizingServer(tokenize=False) as srv, caplog.at_level(logging.WARNING):
        out, api, how, _ = _step(srv.url)
        assert srv.bodies("/v1/chat/completions")
    assert (api, how) == ("chat", None) and out.text == "Step 1 of weak."
    assert any("no POST /tokenize" in r.getMessage() for r in caplog.records)
    with TokenizingServer(tokenize=False) as srv, \
            pytest.raises(InputError, match="needs a tokenizer"):
        _step(srv.url, api="completions")


# ------------------------------------------------------------------------- affinity header
def test_affinity_values_are_header_safe():
    assert affinity_value("p-01") == "p-01"
    v = affinity_value("problème 1\n")
    assert v.startswith("h-") and v.isascii() and len(v) == 26
    assert affinity_value("problème 1\n") == v != affinity_value("problème 2\n")


@pytest.mark.parametrize("header", ["X-Session-ID", "x-user-id", None])
def test_every_upstream_request_of_a_problem_carries_its_key(tmp_path, header):
    probs = [Problem(problem_id=f"p{i}", question=f"What is {i}+1?", answer=str(i + 1))
             for i in range(3)]

    async def go(w, s, p):
        up = build_upstreams(UpstreamSettings(weak_url=w, strong_url=s, prm=p, retries=0,
                                              timeout=10.0, affinity_header=header))
        try:
            with RunLog(tmp_path / f"{header}.jsonl") as log:
                return await run_problems(probs, weak=up.weak, strong=up.strong, prm=up.prm,
                                          router_factory=PolicySpec.parse("thr:0.95").factory(),
                                          runlog=log, concurrency=3,
                                          config=LoopConfig(max_steps=3, sampling=SAMPLING))
        finally:
            await up.aclose()
    with TokenizingServer(tag="weak") as w, TokenizingServer(tag="strong") as s, \
            TokenizingServer(tag="prm") as p:
        stats = asyncio.run(go(w.url, s.url, p.url))
        reqs = [r for srv in (w, s, p) for r in srv.requests if r[0] != "/v1/models"]
    assert stats.finished == 3
    # the PRM scores 0.9 < 0.95: every step regenerated, so all three roles saw every problem
    assert w.bodies("/v1/completions") and s.bodies("/v1/completions") and p.bodies("/pooling")
    lower = [(path, {k.lower(): v for k, v in h.items()}, body) for path, h, body in reqs]
    if header is None:
        assert all("x-session-id" not in h and "x-user-id" not in h for _, h, _ in lower)
        return
    key = header.lower()
    work = [(path, h, body) for path, h, body in lower if path in ("/v1/completions", "/pooling")]
    assert {h.get(key) for _, h, _ in work} == {"p0", "p1", "p2"}  # on every call
    for path, h, body in work:  # and it is the key of the problem the request is about
        i = int(h[key][1:])
        text = "".join(chr(t) for t in body["prompt"]) if path == "/v1/completions" else \
            body["messages"][1]["content"]
        assert f"What is {i}+1?" in text


def test_no_key_outside_a_problem_and_nested_keys_restore():
    from trimpomdp.generation._http import current_affinity

    assert current_affinity() is None
    with affinity("a"):
        assert current_affinity() == "a"
        with affinity("b"):
            assert current_affinity() == "b"
        assert current_affinity() == "a"
    assert current_affinity() is None


# ------------------------------------------------------------------------- PRM instruction
def test_vllm_prm_takes_its_system_message_from_the_task_profile():
    general = load_profile("general")
    math = load_profile("math")
    assert math.prm_instruction == INSTRUCTION

    async def go(url, profile):
        up = build_upstreams(UpstreamSettings(weak_url=url, prm=url, retries=0, timeout=10.0),
                             profile)
        try:
            assert up.prm.inner.instruction == (profile.prm_instruction if profile else
                                                INSTRUCTION)
            s = up.prm.inner.session("Q?")
            await s.score(["a", "b"])
        finally:
            await up.aclose()
    for profile in (general, math, None):
        with TokenizingServer(tokenize=False) as srv:  # no /tokenize: STEP pooling fallback
            asyncio.run(go(srv.url, profile))
            body = srv.bodies("/pooling")[-1]
        want = profile.prm_instruction if profile else INSTRUCTION
        assert body["messages"][0] == {"role": "system", "content": want}
        assert body["messages"][1] == {"role": "user", "content": "Q?"}


def test_serve_sends_one_key_per_answer_on_all_its_upstream_calls():
    import argparse
    import sys
    from pathlib import Path

    pytest.importorskip("aiohttp", reason="trimpomdp serve needs aiohttp")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
    import httpx
    from serve_harness import ServerThread

    from trimpomdp.cli import serve

    with TokenizingServer(tag="weak") as w, TokenizingServer(tag="strong") as s, \
            TokenizingServer(tag="prm") as p:
        ap = argparse.ArgumentParser()
        serve.add_arguments(ap)
        cfg = serve.config_from_args(ap.parse_args([
            "--weak", w.url, "--strong", s.url, "--prm", p.url, "--policy", "thr:0.95",
            "--port", "0", "--retries", "0", "--affinity-header", "X-Route-Key"]))
        with ServerThread(cfg) as srv:
            for q in ("What is 2+3?", "What is 4+1?"):
                r = httpx.post(srv.url + "/v1/chat/completions", timeout=60, json={
                    "model": "trimpomdp", "messages": [{"role": "user", "content": q}]})
                assert r.status_code == 200, r.text
        calls = [(path, {k.lower(): v for k, v in h.items()}, body)
                 for srv_ in (w, s, p) for path, h, body in srv_.requests
                 if path in ("/v1/completions", "/pooling")]
    keys: dict[str, set[str]] = {}
    for path, h, body in calls:
        text = "".join(chr(t) for t in body["prompt"]) if path == "/v1/completions" else \
            body["messages"][1]["content"]
        q = "2+3" if "2+3" in text else "4+1"
        keys.setdefault(q, set()).add(h.get("x-route-key"))
    assert set(keys) == {"2+3", "4+1"}
    (k1,), (k2,) = keys["2+3"], keys["4+1"]  # one key per answer, on every call it made
    assert k1 and k2 and k1 != k2 and "x-session-id" not in calls[0][1]


def test_tokenizer_server_forces_the_servers_tokenize():
    with TokenizingServer(tokenize=True) as srv:
        _, api, how, _ = _step(srv.url, tokenizer="server")
        sent = _decoded(srv)
    assert (api, how) == ("completions", "server")
    assert sent == render(MSGS, trim=False, continue_final=True)
    with TokenizingServer(tokenize=False) as srv, \
            pytest.raises(InputError, match="needs a tokenizer"):
        _step(srv.url, tokenizer="server", api="completions")
