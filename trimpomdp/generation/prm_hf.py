"""Local transformers PRM scorer in the Qwen2.5-Math-PRM format (torch imported lazily).

Loads either a checkpoint with its own modelling code (the real Qwen2.5-Math-PRM,
``trust_remote_code``) or a plain ``Qwen2ForProcessRewardModel`` checkpoint as vLLM reads it
(a Qwen2 body under ``model.*`` and the two-layer head ``score.0`` / ``score.2``).
"""
from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trimpomdp._io import read_json
from trimpomdp.errors import BackendError, InputError
from trimpomdp.generation.prompting import PRM_STEP_MARKER, prm_messages, render_chat


class HFLocalPRM:
    """A :class:`PRMScorer` running a PRM with transformers on this machine.

    Inputs longer than ``max_length`` tokens are left-truncated; steps whose marker falls in the
    cut part score 1.0 (the release's rule).

    :meth:`session` gives one problem its own KV cache: each call feeds only the tokens after the
    part of the prompt the cache already covers (a new step; after a rejected draft the cache is
    cropped back to the common prefix), so scoring a solution step by step costs about one pass
    over it instead of one pass per prefix. ``prefilled_tokens`` / ``reused_tokens`` count the
    tokens run through the model / served from a session's cache, summed over all calls.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, device: str = "cpu",
                 max_length: int = 4096, trust_remote_code: bool = False) -> None:
        self.model_path = Path(model_path)
        if not (self.model_path / "config.json").is_file():
            raise InputError("not a model folder (config.json missing)", path=self.model_path)
        self.device = device
        self.max_length = int(max_length)
        self.trust_remote_code = trust_remote_code
        self._lock = asyncio.Lock()
        self._loaded: tuple[Any, Any, Any, int] | None = None
        self.prefilled_tokens = 0
        self.reused_tokens = 0

    def _load(self) -> tuple[Any, Any, Any, int]:
        if self._loaded is not None:
            return self._loaded
        import torch
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.model_path)
        marker = tok.convert_tokens_to_ids(PRM_STEP_MARKER)
        if not isinstance(marker, int) or marker == tok.unk_token_id:
            raise InputError(f"the tokenizer has no {PRM_STEP_MARKER} token", path=self.model_path)
        cfg = read_json(self.model_path / "config.json")
        if not isinstance(cfg, dict):
            raise InputError("config.json must be a JSON object", path=self.model_path)
        if "auto_map" in cfg:
            model = AutoModel.from_pretrained(self.model_path, trust_remote_code=True,
                                              torch_dtype=torch.float32).to(self.device).eval()
            self._loaded = (tok, model, None, int(marker))
            return self._loaded
        if "Qwen2ForProcessRewardModel" not in cfg.get("architectures", []):
            raise InputError("expected a Qwen2ForProcessRewardModel checkpoint. Got "
                             f"{cfg.get('architectures')} instead.", path=self.model_path)
        from safetensors.torch import load_file

        body = AutoModel.from_pretrained(self.model_path, torch_dtype=torch.float32)
        state: dict[str, Any] = {}
        for f in sorted(self.model_path.glob("*.safetensors")):
            state.update({k: v for k, v in load_file(str(f)).items() if k.startswith("score.")})
        hidden = body.config.hidden_size
        head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(hidden, 2))
        head.load_state_dict({k[len("score."):]: v for k, v in state.items()})
        self._loaded = (tok, body.to(self.device).eval(), head.to(self.device).eval(), int(marker))
        return self._loaded

    def score_sync(self, question: str, steps: Sequence[str]) -> list[float]:
        """Blocking version of :meth:`score_steps`."""
        import torch

        tok, model, head, marker = self._load()
        text = render_chat(tok, prm_messages(question, steps))
        ids = tok(text, add_special_tokens=False)["input_ids"][-self.max_length:]
        self.prefilled_tokens += len(ids)
        x = torch.tensor([ids], device=self.device)
        with torch.no_grad():
            if head is None:
                out = model(input_ids=x)
                logits = out[0] if isinstance(out, tuple) else getattr(out, "logits", out)
            else:
                logits = head(model(input_ids=x).last_hidden_state)
            probs = torch.softmax(logits.float(), dim=-1)[0]
        at = [i for i, t in enumerate(ids) if t == marker]
        scores = [float(probs[i, 1]) for i in at]
        bad = [k for k, p in enumerate(scores) if not (0.0 <= p <= 1.0)]
        if bad:
            raise BackendError(f"PRM {self.model_path}: the score of step {bad[0]} is "
                               f"{scores[bad[0]]} (not a probability; NaN weights or overflow?)")
        if len(scores) > len(steps):
            raise BackendError(f"PRM {self.model_path}: {len(scores)} markers for {len(steps)} "
                               "steps")
        return [1.0] * (len(steps) - len(scores)) + scores

    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        async with self._lock:
            return await asyncio.to_thread(self.score_sync, question, steps)

    def session(self, question: str) -> HFPRMSession:
        """This problem's incremental scorer (its own KV cache; close it when the problem ends)."""
        return HFPRMSession(self, question)

    def _body_and_head(self) -> tuple[Any, Any] | None:
        """(causal body returning hidden states, head) when the model splits that way."""
        _, model, head, _ = self._load()
        if head is not None:
            return model, head
        body, score = getattr(model, "model", None), getattr(model, "score", None)
        if body is not None and score is not None:  # Qwen2.5-Math-PRM's remote code
            return body, score
        return None

    def prompt_ids(self, question: str, steps: Sequence[str]) -> list[int]:
        """Token ids of the PRM chat for ``steps``, ending at the last step's marker."""
        tok, _, _, marker = self._load()
        ids = tok(render_chat(tok, prm_messages(question, steps)),
                  add_special_tokens=False)["input_ids"]
        last = max((i for i, t in enumerate(ids) if t == marker), default=-1)
        return list(ids[:last + 1])

    async def aclose(self) -> None:
        self._loaded = None


class HFPRMSession:
    """One problem's PRM state: the token ids its KV cache covers and each marker's score.

    The score at a marker depends only on the tokens before it (a causal model), so a call keeps
    the common prefix of the new prompt and the cached ids, crops the cache to it and runs only the
    rest. A prompt over ``max_length`` tokens is scored by the full left-truncated pass instead
    (as :meth:`HFLocalPRM.score_sync`), and the cache is dropped.
    """

    def __init__(self, prm: HFLocalPRM, question: str) -> None:
        self.prm = prm
        self.question = question
        self._ids: list[int] = []
        self._cache: Any = None
        #: position -> P(class 1) of the markers the cache covers
        self._probs: dict[int, float] = {}

    def score_sync(self, steps: Sequence[str]) -> list[float]:
        import torch
        from transformers import DynamicCache

        if not steps:
            return []
        prm = self.prm
        split = prm._body_and_head()
        ids = prm.prompt_ids(self.question, steps)
        if split is None or len(ids) > prm.max_length:
            self._drop()
            return prm.score_sync(self.question, steps)
        body, head = split
        marker = prm._load()[3]
        keep, n = 0, min(len(self._ids), len(ids) - 1)
        while keep < n and self._ids[keep] == ids[keep]:
            keep += 1
        if self._cache is None or keep == 0:
            keep, self._cache = 0, DynamicCache()
        elif keep < len(self._ids):
            try:  # negative = tokens to remove (transformers 4.x and 5.x alike)
                self._cache.crop(-(len(self._ids) - keep))
            except (ValueError, RuntimeError):  # e.g. a sliding-window layer past its window
                keep, self._cache = 0, DynamicCache()
        self._probs = {i: p for i, p in self._probs.items() if i < keep}
        x = torch.tensor([ids[keep:]], device=prm.device)
        pos = torch.arange(keep, len(ids), device=prm.device)
        # transformers 5.x names the argument ``cache`` (``past_key_values`` is deprecated)
        name = "cache" if "cache" in inspect.signature(body.forward).parameters \
            else "past_key_values"
        with torch.no_grad():
            out = body(input_ids=x, position_ids=pos[None], use_cache=True,
                       **{name: self._cache})
            probs = torch.softmax(head(out.last_hidden_state).float(), dim=-1)[0]
        cache = getattr(out, "cache", None)
        self._cache = cache if cache is not None else out.past_key_values
        self._ids = list(ids)
        prm.prefilled_tokens += len(ids) - keep
        prm.reused_tokens += keep
        for j, t in enumerate(ids[keep:]):
            if t == marker:
                self._probs[keep + j] = float(probs[j, 1])
        scores = [self._probs[i] for i, t in enumerate(ids) if t == marker]
        bad = [k for k, p in enumerate(scores) if not (0.0 <= p <= 1.0)]
        if bad:
            raise BackendError(f"PRM {prm.model_path}: the score of step {bad[0]} is "
                               f"{scores[bad[0]]} (not a probability; NaN weights or overflow?)")
        if len(scores) != len(steps):
            raise BackendError(f"PRM {prm.model_path}: {len(scores)} markers for {len(steps)} "
                               "steps")
        return scores

    def _drop(self) -> None:
        self._ids, self._cache, self._probs = [], None, {}

    async def score(self, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        async with self.prm._lock:
            return await asyncio.to_thread(self.score_sync, list(steps))

    async def aclose(self) -> None:
        self._drop()
