"""Local transformers generation backend with KV-cache reuse across model switches.

Each backend keeps its model's KV cache and the token ids it covers. A new step's prompt is
compared with those ids: the common prefix is kept, the cache is cropped to it (a rejected draft
is cut away) and only the new tokens are prefilled (the other model's step extends the cache).
torch and transformers are imported when the model is first used; ``gguf_file=`` loads a GGUF.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trimpomdp.errors import InputError
from trimpomdp.generation.prompting import render_continuation
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput


class HFLocalBackend:
    """A :class:`GenerationBackend` running a causal LM in this process (CPU or one GPU)."""

    def __init__(self, model_path: str | os.PathLike[str], *, gguf_file: str | None = None,
                 name: str = "model", device: str = "cpu", dtype: str = "float32",
                 reuse_cache: bool = True) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_dir():
            raise InputError("model folder not found", path=self.model_path)
        if gguf_file is not None and not (self.model_path / gguf_file).exists():
            raise InputError(f"GGUF file {gguf_file!r} not found in the model folder",
                             path=self.model_path)
        self.gguf_file = gguf_file
        self.name = name
        self.device = device
        self.dtype = dtype
        self.reuse_cache = reuse_cache
        self._lock = asyncio.Lock()
        self._tok: Any = None
        self._model: Any = None
        self._cache: Any = None
        self._cached_ids: list[int] = []
        #: prompt tokens served from the cache / prefilled, summed over calls
        self.reused_tokens = 0
        self.prefilled_tokens = 0

    # -- loading ---------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kw: dict[str, Any] = {}
        if self.gguf_file is not None:
            kw["gguf_file"] = self.gguf_file
        self._tok = AutoTokenizer.from_pretrained(self.model_path, **kw)
        self._model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=getattr(torch, self.dtype), **kw
        ).to(self.device).eval()  # type: ignore[arg-type]
        eos = self._model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self._eos = {int(e) for e in eos if e is not None} | (
            {self._tok.eos_token_id} if self._tok.eos_token_id is not None else set())

    @property
    def tokenizer(self) -> Any:
        self._load()
        return self._tok

    # -- generation ------------------------------------------------------------------------
    def _prefill(self, ids: list[int]) -> Any:
        """Logits after ``ids``, reusing the cached common prefix."""
        import torch
        from transformers import DynamicCache

        keep = 0
        if self.reuse_cache and self._cache is not None:
            n = min(len(self._cached_ids), len(ids) - 1)
            while keep < n and self._cached_ids[keep] == ids[keep]:
                keep += 1
        if keep and keep < len(self._cached_ids):
            try:  # negative = tokens to remove (transformers 4.x and 5.x alike)
                self._cache.crop(-(len(self._cached_ids) - keep))
            except (ValueError, RuntimeError):  # e.g. a sliding-window layer past its window
                keep = 0
        if keep == 0:
            self._cache = DynamicCache()
        self.reused_tokens += keep
        self.prefilled_tokens += len(ids) - keep
        x = torch.tensor([ids[keep:]], device=self.device)
        pos = torch.arange(keep, len(ids), device=self.device)
        out = self._model(input_ids=x, past_key_values=self._cache, use_cache=True,
                          cache_position=pos)
        self._cache = out.past_key_values
        self._cached_ids = list(ids)
        return out.logits[0, -1]

    def _step(self, token: int) -> Any:
        import torch

        pos = torch.tensor([len(self._cached_ids)], device=self.device)
        out = self._model(input_ids=torch.tensor([[token]], device=self.device),
                          past_key_values=self._cache, use_cache=True, cache_position=pos)
        self._cache = out.past_key_values
        self._cached_ids.append(token)
        return out.logits[0, -1]

    def generate_sync(self, prompt: str, *, stop: Sequence[str], sampling: SamplingParams,
                      logprobs: bool = False) -> StepOutput:
        """Blocking generation of one step from a rendered prompt."""
        import torch

        self._load()
        t0 = time.perf_counter()
        ids = self._tok(prompt, add_special_tokens=False)["input_ids"]
        gen = torch.Generator().manual_seed(sampling.seed if sampling.seed is not None else 0)
        out_ids: list[int] = []
        lps: list[float] = []
        finish, stopped, text = "length", False, ""
        with torch.no_grad():
            logits = self._prefill(ids)
            while len(out_ids) < sampling.max_tokens:
                tok, lp = _sample(logits.float(), sampling, gen)
                out_ids.append(tok)
                lps.append(lp)
                if tok in self._eos:
                    finish = "stop"
                    text = self._tok.decode(out_ids[:-1], skip_special_tokens=True)
                    break
                text = self._tok.decode(out_ids, skip_special_tokens=True)
                hit = min((text.find(s) for s in stop if s in text), default=-1)
                if hit >= 0:
                    text, finish, stopped = text[:hit], "stop", True
                    break
                if len(out_ids) < sampling.max_tokens:
                    logits = self._step(tok)
        return StepOutput(text=text, tokens=len(out_ids), stopped_on_stop=stopped,
                          finish_reason=finish, logprobs=tuple(lps) if logprobs else None,
                          seconds=time.perf_counter() - t0)

    async def generate_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                            sampling: SamplingParams, logprobs: bool = False) -> StepOutput:
        async with self._lock:
            prompt = await asyncio.to_thread(lambda: render_continuation(self.tokenizer, messages))
            return await asyncio.to_thread(self.generate_sync, prompt, stop=stop,
                                           sampling=sampling, logprobs=logprobs)

    async def continuation_logprobs(self, messages: Sequence[Message],
                                    continuation: str) -> list[tuple[int, float]]:
        """(character offset in ``continuation``, logprob) of each of its tokens."""
        async with self._lock:
            return await asyncio.to_thread(self._continuation_sync, messages, continuation)

    def _continuation_sync(self, messages: Sequence[Message], continuation: str
                           ) -> list[tuple[int, float]]:
        import torch

        prompt = render_continuation(self.tokenizer, messages)
        enc = self._tok(prompt + continuation, add_special_tokens=False,
                        return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        with torch.no_grad():
            logits = self._model(input_ids=torch.tensor([ids], device=self.device)).logits[0]
        logp = torch.log_softmax(logits.float(), dim=-1)
        start = len(prompt)
        return [(offs[i][0] - start, float(logp[i - 1, ids[i]])) for i in range(1, len(ids))
                if offs[i][0] >= start]

    async def aclose(self) -> None:
        self._cache, self._cached_ids = None, []


def _sample(logits: Any, sampling: SamplingParams, gen: Any) -> tuple[int, float]:
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    if sampling.temperature == 0.0:
        tok = int(torch.argmax(logits))
        return tok, float(logp[tok])
    z = logits / sampling.temperature
    if sampling.top_k > 0:
        kth = torch.topk(z, min(sampling.top_k, z.numel())).values[-1]
        z = torch.where(z < kth, torch.full_like(z, float("-inf")), z)
    probs = torch.softmax(z, dim=-1)
    if sampling.top_p < 1.0:
        sp, si = torch.sort(probs, descending=True)
        cut = torch.cumsum(sp, 0) - sp > sampling.top_p
        sp[cut] = 0.0
        probs = torch.zeros_like(probs).scatter(0, si, sp)
        probs = probs / probs.sum()
    tok = int(torch.multinomial(probs, 1, generator=gen))
    return tok, float(logp[tok])
