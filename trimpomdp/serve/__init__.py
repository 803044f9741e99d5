"""``trimpomdp serve``: an OpenAI-compatible endpoint doing step-routed generation.

Clients call ``/v1/chat/completions`` or ``/v1/completions`` as usual; behind them the live loop
drafts each step with the weak server, scores it with the PRM and lets the routing policy hand it
to the strong server. Needs aiohttp (``pip install 'trimpomdp[live]'``); importing this package
does not import it.
"""
from __future__ import annotations

import importlib.util

from trimpomdp.serve.config import LAMBDA_MAX, ServeConfig


def is_aiohttp_available() -> bool:
    """True if the server can run (aiohttp and httpx installed)."""
    return all(importlib.util.find_spec(m) is not None for m in ("aiohttp", "httpx"))


def __getattr__(name: str):
    if name in ("TrimServer", "serve_forever"):
        from trimpomdp.serve import app

        return getattr(app, name)
    raise AttributeError(name)


__all__ = ["LAMBDA_MAX", "ServeConfig", "TrimServer", "is_aiohttp_available", "serve_forever"]
