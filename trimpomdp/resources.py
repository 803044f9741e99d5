"""The one resolver for bundled default files (``models/`` and ``data/`` of the project).

Looks in the source checkout first (editable installs), then where a wheel installs them
(``<sys.prefix>/share/trimpomdp``), so a fresh install works without ``../shared``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from trimpomdp.errors import InputError

_PKG = Path(__file__).resolve().parent
_ROOTS = (_PKG.parent, Path(sys.prefix) / "share" / "trimpomdp")

DEFAULT_MODEL = "qwen2.5-1.5b_to_7b_math-train.json"


def resource_path(kind: str, name: str) -> Path:
    """Path of bundled file ``name`` under ``kind`` ('models' or 'data'); InputError if absent."""
    for root in _ROOTS:
        p = root / kind / name
        if p.exists():
            return p
    raise InputError(f"bundled {kind} file '{name}' not found under {[str(r / kind) for r in _ROOTS]}"
                     "; reinstall trimpomdp or pass an explicit path")


def default_model_path() -> Path:
    """Path of the default fitted TRIM model (Qwen2.5-1.5B -> 7B, release parameters)."""
    return resource_path("models", DEFAULT_MODEL)


def shared_data_dir() -> Path | None:
    """The shared research data folder (``$TRIMPOMDP_SHARED_DATA`` or ``../shared/data``), if present."""
    env = os.environ.get("TRIMPOMDP_SHARED_DATA")
    cands = [Path(env)] if env else []
    cands += [_PKG.parent.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in cands:
        if c.is_dir():
            return c
    return None
