"""The model flags ``run`` and ``serve`` share (one home: the same names, defaults and help)."""
from __future__ import annotations

import argparse
from typing import Any

from trimpomdp.generation._http import AFFINITY_HEADER
from trimpomdp.generation.wiring import API_CHOICES, BACKENDS


def add_model_arguments(p: argparse.ArgumentParser | Any) -> None:
    """--weak/--strong/--prm, --backend, --engine-args, --api, tokenizers, --affinity-header
    (``p``: a parser or an argument group)."""
    p.add_argument("--weak", metavar="URL|DIR", help="weak model server (OpenAI API), or its "
                   "model folder with --backend vllm-inprocess; required")
    p.add_argument("--strong", metavar="URL|DIR", help="strong model server (OpenAI API), or "
                   "its model folder with --backend vllm-inprocess")
    p.add_argument("--prm", metavar="URL|DIR|self", help="vLLM /pooling PRM server URL (a model "
                   "folder with --backend vllm-inprocess), or 'self' to score steps by the "
                   "strong model's log-probabilities")
    p.add_argument("--backend", choices=BACKENDS, default="http",
                   help="http: the models are servers; vllm-inprocess: --weak/--strong/--prm are "
                   "local model folders run by vLLM in this process (token ids, no HTTP)")
    p.add_argument("--engine-args", default=None, metavar="JSON",
                   help="vllm-inprocess: vLLM engine arguments as a JSON object, for every "
                   "engine, with optional \"weak\"/\"strong\"/\"prm\" objects for one, e.g. "
                   "'{\"max_model_len\": 4096, \"prm\": {\"gpu_memory_utilization\": 0.2}}'")
    p.add_argument("--api", choices=API_CHOICES, default="auto",
                   help="completions: token-id prompts (a local tokenizer or the server's "
                   "/tokenize); chat: the server renders them (lossy; refused for templates that "
                   "trim content); auto: completions when a tokenizer or /tokenize is there")
    p.add_argument("--weak-tokenizer", metavar="DIR|server",
                   help="weak model's tokenizer folder, or 'server' for the server's POST "
                   "/tokenize (default: the server's model folder when it is on this machine, "
                   "else /tokenize; prompts are sent as token ids)")
    p.add_argument("--strong-tokenizer", metavar="DIR|server",
                   help="strong model's tokenizer (as --weak-tokenizer)")
    p.add_argument("--affinity-header", default=AFFINITY_HEADER, metavar="NAME",
                   help="header carrying each problem's id on all its upstream requests, for "
                   "session-aware routers in front of replicas ('' for none)")
