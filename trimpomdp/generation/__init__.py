"""Live step-routed generation: backends, PRM scorers, the async step loop and its run log.

Nothing here imports torch or httpx at import time; each backend imports what it needs when it is
built. The registries map names to ``module:Class`` so that ``trimpomdp run`` loads only what it uses.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from trimpomdp.generation.protocols import (
    GenerationBackend,
    PRMScorer,
    Router,
    SamplingParams,
    StepOutput,
)

#: backend name -> "module:Class"
BACKENDS: dict[str, str] = {
    "openai": "trimpomdp.generation.openai_compat:OpenAICompletionsBackend",
    "hf": "trimpomdp.generation.hf_local:HFLocalBackend",
}
#: PRM scorer name -> "module:Class"
PRM_SCORERS: dict[str, str] = {
    "vllm": "trimpomdp.generation.prm_vllm:VLLMPoolingPRM",
    "hf": "trimpomdp.generation.prm_hf:HFLocalPRM",
    "replay": "trimpomdp.generation.prm_replay:ReplayPRM",
    "self": "trimpomdp.generation.prm_self:SelfScorePRM",
}


def load_class(ref: str) -> Any:
    """Import ``"module:Class"`` lazily."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def is_httpx_available() -> bool:
    """True if the HTTP backends can be used (``pip install 'trimpomdp[live]'``)."""
    return importlib.util.find_spec("httpx") is not None


def is_transformers_available() -> bool:
    """True if the local transformers backend and PRM can be used."""
    return (importlib.util.find_spec("transformers") is not None
            and importlib.util.find_spec("torch") is not None)


__all__ = ["BACKENDS", "PRM_SCORERS", "GenerationBackend", "PRMScorer", "Router",
           "SamplingParams", "StepOutput", "is_httpx_available", "is_transformers_available",
           "load_class"]
