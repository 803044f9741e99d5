"""vLLM plugin: a Qwen2 process reward model that also pools the *last* token ("classify").

Why: vLLM 0.32 serves ``Qwen2ForProcessRewardModel`` with a token-wise pooler only (STEP/ALL,
tasks ``token_classify``/``token_embed``), and ``PoolingParams._merge_default_parameters`` sets
``skip_reading_prefix_cache = True`` for every token-wise task (the pooler needs the hidden state of
every prompt token, and cached tokens have none). ``skip_reading_prefix_cache`` is internal: no
field of the ``/pooling`` request reaches it, so a STEP-pooled PRM recomputes the whole prefix on
every call, even with ``--enable-prefix-caching``. Sequence-level tasks (``classify``) read the
prefix cache. For a causal PRM the score at a step marker depends only on the tokens up to it, so
``classify`` with LAST pooling on a prompt that *ends at the new marker* gives that marker's
STEP score and is served from the prefix cache: only the new step's tokens are computed.

This module adds exactly that: the same weights and head, a ``DispatchPooler`` with
``token_classify`` -> the stock STEP/ALL pooler and ``classify`` -> LAST pooling + the same
softmax. It registers itself under the stock architecture name (``Qwen2ForProcessRewardModel``),
so a server or engine that loads the plugin serves both tasks; the ``/pooling`` endpoint of
vLLM 0.32 serves one task per server, chosen by ``--pooler-config '{"task": ...}'`` (default with
the plugin: ``classify``; ``token_classify`` keeps the stock STEP behaviour).

It is loaded by vLLM's general-plugin mechanism (entry point group ``vllm.general_plugins``):
:func:`write_plugin_dir` writes this file and a ``dist-info`` with the entry point into a folder;
put that folder on ``PYTHONPATH`` of the vLLM process (every vLLM process loads general plugins).
This file imports nothing from trimpomdp (the vLLM virtualenv does not have it), and vLLM/torch
only inside functions.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: the module name the plugin has inside the vLLM process
PLUGIN_MODULE = "trimpomdp_vllm_prm"
#: the entry point's name (``VLLM_PLUGINS`` may list it)
PLUGIN_NAME = "trimpomdp_prm_last_pool"
ARCHITECTURE = "Qwen2ForProcessRewardModel"

_CLASS: Any = None


def model_class() -> Any:
    """The PRM class with STEP (``token_classify``) and LAST (``classify``) pooling."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from vllm.model_executor.layers.pooler import DispatchPooler
    from vllm.model_executor.layers.pooler.seqwise.methods import LastPool
    from vllm.model_executor.layers.pooler.seqwise.poolers import pooler_for_classify
    from vllm.model_executor.layers.pooler.tokwise import pooler_for_token_classify
    from vllm.model_executor.models.interfaces_base import default_pooling_type
    from vllm.model_executor.models.qwen2_rm import Qwen2ForProcessRewardModel

    @default_pooling_type(seq_pooling_type="LAST", tok_pooling_type="STEP")
    class Qwen2ProcessRewardModelLastPool(Qwen2ForProcessRewardModel):  # type: ignore[misc]
        """``Qwen2ForProcessRewardModel`` + ``classify`` = softmax of the last token's logits."""

        def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
            super().__init__(vllm_config=vllm_config, prefix=prefix)
            pc = vllm_config.model_config.pooler_config
            # forward() already applies the score head: the pooled "hidden states" are the two
            # class logits of each token, so both poolers need no classifier, only the softmax
            self.pooler = DispatchPooler({
                "token_classify": pooler_for_token_classify(pc),
                "classify": pooler_for_classify(pc, pooling=LastPool()),
            })

    _CLASS = Qwen2ProcessRewardModelLastPool
    return _CLASS


def register() -> None:
    """vLLM general-plugin entry point: serve ``Qwen2ForProcessRewardModel`` with both poolers."""
    if os.environ.get("TRIMPOMDP_VLLM_PRM_PLUGIN", "1") == "0":
        return
    from vllm import ModelRegistry

    ModelRegistry.register_model(ARCHITECTURE, model_class())


def write_plugin_dir(dest: str | os.PathLike[str]) -> Path:
    """Write this plugin as an installable-by-path package into ``dest``; returns ``dest``.

    ``PYTHONPATH=dest`` makes vLLM find it (``importlib.metadata`` entry points of the
    ``dist-info`` folder). Safe to call again: the files are rewritten.
    """
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{PLUGIN_MODULE}.py").write_text(Path(__file__).read_text(encoding="utf-8"),
                                             encoding="utf-8")
    info = out / f"{PLUGIN_MODULE}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN_MODULE}\n"
                                   "Version: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        f"[vllm.general_plugins]\n{PLUGIN_NAME} = {PLUGIN_MODULE}:register\n", encoding="utf-8")
    (info / "top_level.txt").write_text(PLUGIN_MODULE + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":  # python vllm_prm_plugin.py DIR  -> writes the plugin folder
    import sys

    print(write_plugin_dir(sys.argv[1] if len(sys.argv) > 1 else "vllm-plugin"))
