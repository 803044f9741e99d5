"""Local transformers PRM scorer in the Qwen2.5-Math-PRM format (torch imported lazily).

Loads either a checkpoint with its own modelling code (the real Qwen2.5-Math-PRM,
``trust_remote_code``) or a plain ``Qwen2ForProcessRewardModel`` checkpoint as vLLM reads it
(a Qwen2 body under ``model.*`` and the two-layer head ``score.0`` / ``score.2``).
"""
from __future__ import annotations

import asyncio
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

    def _load(self) -> tuple[Any, Any, Any, int]:
        if self._loaded is not None:
            return self._loaded
        import torch
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.model_path)
        marker = tok.convert_tokens_to_ids(PRM_STEP_MARKER)
        if marker is None or marker == tok.unk_token_id:
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

    async def aclose(self) -> None:
        self._loaded = None
