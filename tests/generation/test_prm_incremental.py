"""Per-problem PRM sessions: the loop scores each new step once; the transformers PRM keeps a
problem's KV cache and feeds only the new tokens, with the same scores as a full pass."""
from __future__ import annotations

import asyncio
import json

import pytest

from trimpomdp.data.problems import Problem
from trimpomdp.errors import BackendError
from trimpomdp.generation.loop import LoopConfig, solve_problem
from trimpomdp.generation.prm_incremental import (
    CheckedSession,
    RescoreSession,
    ScoreMemo,
    open_session,
)
from trimpomdp.generation.protocols import (
    IncrementalPRMScorer,
    PRMScorer,
    PRMSession,
    SamplingParams,
    StepOutput,
)


class ScriptedWeak:
    name = "weak"

    def __init__(self, steps):
        self.steps = list(steps)
        self.calls = 0

    async def generate_step(self, messages, *, stop, sampling, logprobs=False):
        text = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        return StepOutput(text=text, tokens=len(text.split()), stopped_on_stop="boxed" not in text)

    async def aclose(self):
        return None


class LengthPRM:
    """Plain PRMScorer: score = 1 / (1 + words) per step; records every call."""

    def __init__(self):
        self.calls: list[list[str]] = []

    async def score_steps(self, question, steps):
        self.calls.append(list(steps))
        return [1.0 / (1 + len(s.split())) for s in steps]

    async def aclose(self):
        return None


class IncrementalLengthPRM(LengthPRM):
    """Same scores through a session that scores only the unseen steps."""

    def __init__(self):
        super().__init__()
        self.scored: list[str] = []
        self.closed = 0

    def session(self, question):
        prm = self

        class S:
            memo = ScoreMemo()

            async def score(self, steps):
                k = self.memo.known(steps)
                new = [1.0 / (1 + len(s.split())) for s in steps[k:]]
                prm.scored.extend(steps[k:])
                self.memo.update(steps, self.memo.scores[:k] + new)
                return list(self.memo.scores)

            async def aclose(self):
                prm.closed += 1
        return S()


def test_protocols_are_structural():
    assert isinstance(LengthPRM(), PRMScorer) and not isinstance(LengthPRM(),
                                                                 IncrementalPRMScorer)
    assert isinstance(IncrementalLengthPRM(), IncrementalPRMScorer)
    assert isinstance(RescoreSession(LengthPRM(), "q"), PRMSession)


def test_score_memo_knows_the_common_prefix():
    m = ScoreMemo()
    assert m.known(["a"]) == 0
    m.update(["a", "b"], [0.1, 0.2])
    assert m.known(["a", "b", "c"]) == 2 and m.known(["a", "x"]) == 1 and m.known([]) == 0


def test_loop_uses_one_session_per_problem_and_scores_each_step_once():
    steps = ["We add 2 and 3.", "That is 5.", "So \\boxed{5}."]
    inc, plain = IncrementalLengthPRM(), LengthPRM()
    p = Problem(problem_id="p", question="2+3?", answer="5")
    cfg = LoopConfig(max_steps=5, sampling=SamplingParams(temperature=0.0, max_tokens=8))
    a = asyncio.run(solve_problem(p, ScriptedWeak(steps), None, inc, None, cfg))
    b = asyncio.run(solve_problem(p, ScriptedWeak(steps), None, plain, None, cfg))
    assert inc.calls == [] and inc.scored == steps and inc.closed == 1
    assert [len(c) for c in plain.calls] == [1, 2, 3]  # the old protocol: whole prefix each time
    assert [s["score"] for s in a["steps"]] == [s["score"] for s in b["steps"]]
    assert [s["prefix_scores"] for s in a["steps"]] == [s["prefix_scores"] for s in b["steps"]]


def test_checked_session_names_the_prm_on_bad_answers():
    class Bad:
        def __init__(self, out):
            self.out = out

        async def score(self, steps):
            if isinstance(self.out, Exception):
                raise self.out
            return self.out

        async def aclose(self):
            return None
    for out, msg in [([0.5], "1 scores for 2"), ([0.5, float("nan")], "step score of nan"),
                     (["x", 1], "non-numeric"), (KeyError("boom"), "unusable answer")]:
        with pytest.raises(BackendError, match=msg) as e:
            asyncio.run(CheckedSession(Bad(out), "at http://prm").score(["a", "b"]))
        assert "http://prm" in str(e.value)


def test_open_session_falls_back_to_full_rescoring():
    prm = LengthPRM()
    s = open_session(prm, "q")
    assert isinstance(s, CheckedSession) and isinstance(s.inner, RescoreSession)
    assert asyncio.run(s.score(["a b", "c"])) == [1 / 3, 1 / 2]
    assert prm.calls == [["a b", "c"]] and asyncio.run(s.score([])) == []


# ---------------------------------------------------------------------------- vLLM /pooling client
class _FakePRMServer:
    """A /pooling server that tokenizes one character per token (``<extra_0>`` = id 99) and
    scores a marker by a hash of the ids up to it, for STEP (whole chat) and classify (last
    token) requests alike; ``last=False`` answers classify like a stock vLLM 0.32 PRM server."""

    def __init__(self, last: bool) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.last, self.bodies = last, []
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                return None

            def _send(self, code, doc):
                raw = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self._send(200, {"data": [{"id": "prm"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                srv.bodies.append((self.path, body))
                if self.path == "/tokenize":
                    ids = [99] if body.get("prompt") == "<extra_0>" else srv.ids(body["messages"])
                    return self._send(200, {"tokens": ids, "count": len(ids)})
                if body.get("task") == "classify":
                    if not srv.last:
                        return self._send(400, {"error": {"message": "Try switching the model's "
                                                          "pooling_task via --pooler-config"}})
                    p = srv.p(body["input"])
                    return self._send(200, {"data": [{"index": 0, "data": [1 - p, p]}]})
                ids = srv.ids(body["messages"])
                rows = [[1 - srv.p(ids[:i + 1]), srv.p(ids[:i + 1])]
                        for i, t in enumerate(ids) if t == 99]
                return self._send(200, {"data": [{"index": 0, "data": rows}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def ids(messages):
        head = "".join(m["content"] for m in messages[:-1])
        out = [100 + ord(c) % 50 for c in head]
        for part in messages[-1]["content"].split("<extra_0>")[:-1]:
            out += [100 + ord(c) % 50 for c in part] + [99]
        return out + [7, 8]  # the template's closing tokens

    @staticmethod
    def p(ids):
        import zlib

        return 0.05 + 0.9 * (zlib.crc32(json.dumps(ids).encode()) % 1000) / 999

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_vllm_client_scores_each_new_step_with_one_last_token_request():
    pytest.importorskip("httpx", reason="the vLLM client uses httpx")
    from trimpomdp.generation.prm_vllm import VLLMPoolingPRM

    srv = _FakePRMServer(last=True)
    steps = ["We add.", "So 5.", "Hence \\boxed{5}."]

    async def go():
        prm = VLLMPoolingPRM(srv.url, cache_salt=True)
        step = VLLMPoolingPRM(srv.url, mode="step")
        try:
            s = prm.session("2+3?")
            got = [await s.score(steps[:1]), await s.score([steps[0], "a draft"]),
                   await s.score(steps[:2]), await s.score(steps)]
            ref = [await step.score_steps("2+3?", c) for c in
                   (steps[:1], [steps[0], "a draft"], steps[:2], steps)]
            return prm.mode, got, ref
        finally:
            await prm.aclose()
            await step.aclose()
    try:
        mode, got, ref = asyncio.run(go())
    finally:
        srv.close()
    assert mode == "last"
    assert got == ref  # the last-token score of each marker == STEP pooling's
    last = [b for path, b in srv.bodies if path == "/pooling" and b.get("task") == "classify"]
    # the probe + 4 new steps (step 0 once, the draft, step 1, step 2): nothing re-scored
    assert len(last) == 5 and all(b["input"][-1] == 99 for b in last)
    assert all(b["truncate_prompt_tokens"] == -1 and b["truncation_side"] == "left"
               for b in last[1:])
    salts = {b.get("cache_salt") for b in last[1:]}
    assert len(salts) == 1 and None not in salts
    assert last[4]["input"][:len(last[3]["input"])] == last[3]["input"]  # a cached prefix


def test_vllm_client_falls_back_to_step_pooling_on_a_stock_server():
    pytest.importorskip("httpx", reason="the vLLM client uses httpx")
    from trimpomdp.generation.prm_vllm import VLLMPoolingPRM

    srv = _FakePRMServer(last=False)

    async def go():
        prm = VLLMPoolingPRM(srv.url)
        try:
            s = open_session(prm, "2+3?")
            return await s.score(["We add.", "So 5."]), prm.mode, prm.probe_note
        finally:
            await prm.aclose()
    try:
        scores, mode, note = asyncio.run(go())
    finally:
        srv.close()
    assert mode == "step" and "pooling_task" in note and len(scores) == 2
    step = [b for path, b in srv.bodies if path == "/pooling" and "messages" in b]
    assert len(step) == 1 and step[0]["truncate_prompt_tokens"] == -1


# ---------------------------------------------------------------------------- transformers PRM
torch = pytest.importorskip("torch", reason="the local PRM runs on torch")
pytest.importorskip("transformers", reason="the local PRM uses transformers")
pytest.importorskip("tokenizers", reason="the test tokenizer is built with tokenizers")

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
            "{% if not loop.last %}<|end|>{% endif %}{% endfor %}")
CORPUS = [("Solve the following math problem step by step. Question: What is 2+3? Solution: "
           "We add the numbers.\n\nThe answer is \\boxed{5}."), "0123456789+-*/=()$\\{} abcdefghij"]


@pytest.fixture(scope="module")
def tiny_prm(tmp_path_factory):
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2Model

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(CORPUS * 5, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>", "<extra_0>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>", chat_template=TEMPLATE)
    d = tmp_path_factory.mktemp("prm")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    torch.manual_seed(0)
    body = Qwen2Model(cfg)
    head = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    state = {f"model.{k}": v for k, v in body.state_dict().items()}
    state.update({f"score.{k}": v * 4 for k, v in head.state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, str(d / "model.safetensors"))
    doc = cfg.to_dict()
    doc["architectures"] = ["Qwen2ForProcessRewardModel"]
    (d / "config.json").write_text(json.dumps(doc))
    tok.save_pretrained(d)
    return d


def test_hf_session_feeds_only_new_tokens_and_matches_full_passes(tiny_prm):
    from trimpomdp.generation.prm_hf import HFLocalPRM

    q = "What is 2+3?"
    steps = ["We add the numbers.", "2+3 = 5.", "So (5).", "The answer is \\boxed{5}."]
    full, inc = HFLocalPRM(tiny_prm), HFLocalPRM(tiny_prm)
    s = inc.session(q)
    calls = [steps[:1], steps[:2], [*steps[:2], "a rejected draft 0123"], steps[:3], steps]
    for c in calls:
        got = asyncio.run(s.score(c))
        want = full.score_sync(q, c)
        assert got == pytest.approx(want, abs=1e-5) and len(got) == len(c)
    # tokens through the model: the final prompt once + the rejected draft (+ nothing else)
    final = len(inc.prompt_ids(q, steps))
    draft = len(inc.prompt_ids(q, [*steps[:2], "a rejected draft 0123"])) - len(
        inc.prompt_ids(q, steps[:2]))
    assert inc.prefilled_tokens == final + draft
    assert full.prefilled_tokens > 3 * final  # the old protocol: every prefix again
    asyncio.run(s.aclose())
    assert s._cache is None


def test_hf_session_over_long_prompt_uses_the_truncated_full_pass(tiny_prm):
    from trimpomdp.generation.prm_hf import HFLocalPRM

    q, steps = "What is 2+3?", ["We add the numbers.", "The answer is \\boxed{5}."]
    n = len(HFLocalPRM(tiny_prm).prompt_ids(q, steps))
    short = HFLocalPRM(tiny_prm, max_length=n - 2)
    got = asyncio.run(short.session(q).score(steps))
    assert got == pytest.approx(short.score_sync(q, steps), abs=1e-6)
