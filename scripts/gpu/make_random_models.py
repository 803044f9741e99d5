"""Small random-weight models for the GPU device check (nothing can be downloaded there).

    python scripts/gpu/make_random_models.py OUT_DIR [--seed 0]

Writes OUT_DIR/{weak,strong,prm}: a byte-level BPE tokenizer trained here on a small math
corpus (ChatML template, ``<extra_0>`` added), two random ``Qwen2ForCausalLM`` generators (weak:
hidden 256 x 4 layers, strong: hidden 512 x 8 layers) and a random ``Qwen2ForProcessRewardModel``
(hidden 256 x 4 layers, the two-layer score head) as vLLM reads it. The outputs are noise; the
check measures the protocol, the PRM's cache use and throughput, not accuracy.
Needs torch, transformers, tokenizers, safetensors.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
          "{% if not (loop.last and m['role'] == 'assistant' and continue_final_message) %}"
          "<|im_end|>\n{% endif %}{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = [
    ("Solve the following math problem step by step, given in LaTeX format, clearly and "
    "concisely, and present the final answer as \\boxed{X}, where X is the fully simplified "
    "solution."), ("Question: What is $2+3$? Solution: We add the numbers.\n\nThe answer is "
    "\\boxed{5}."), "Let x be the number of apples. Then 3x + 4 = 19, so x = 5.",
    "The area of a circle of radius r is \\pi r^2; the circumference is 2 \\pi r.",
    "0123456789 + - * / = ( ) [ ] { } ^ _ $ \\frac \\sqrt \\cdot \\times \\le \\ge",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ , . ; : ! ? ' \"",
]


def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
    raw.train_from_iterator(CORPUS * 20, trainers.BpeTrainer(
        vocab_size=1024, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", bos_token=None,
                                   additional_special_tokens=["<|im_start|>", "<extra_0>"],
                                   chat_template=CHATML)


def qwen2(tok, hidden: int, layers: int):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=hidden // 64,
                       num_key_value_heads=max(1, hidden // 128), head_dim=64,
                       max_position_embeddings=8192, tie_word_embeddings=False,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


def main() -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2ForCausalLM, Qwen2Model

    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tok = tokenizer()
    torch.manual_seed(args.seed)
    for name, hidden, layers in (("weak", 256, 4), ("strong", 512, 8)):
        d = args.out / name
        model = Qwen2ForCausalLM(qwen2(tok, hidden, layers)).to(torch.bfloat16)
        model.save_pretrained(d)
        tok.save_pretrained(d)
    d = args.out / "prm"
    cfg = qwen2(tok, 256, 4)
    body = Qwen2Model(cfg)
    state = {f"model.{k}": v.contiguous() for k, v in body.state_dict().items()}
    g = torch.Generator().manual_seed(args.seed + 1)
    state["score.0.weight"] = torch.randn(256, 256, generator=g) * 0.05
    state["score.0.bias"] = torch.zeros(256)
    state["score.2.weight"] = torch.randn(2, 256, generator=g) * 0.1
    state["score.2.bias"] = torch.zeros(2)
    d.mkdir(parents=True, exist_ok=True)
    save_file(state, str(d / "model.safetensors"))
    doc = cfg.to_dict()
    doc.update(architectures=["Qwen2ForProcessRewardModel"], model_type="qwen2", num_labels=2,
               torch_dtype="float32")
    (d / "config.json").write_text(json.dumps(doc, indent=1))
    tok.save_pretrained(d)
    print(json.dumps({k: str(args.out / k) for k in ("weak", "strong", "prm")}))


if __name__ == "__main__":
    main()
