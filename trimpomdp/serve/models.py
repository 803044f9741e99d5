"""Model names: the served name, and budgets addressable by name for clients that cannot send
the ``trim`` field (``<name>-lambda-0.25``, ``<name>-share-0.2``)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from trimpomdp.serve.config import LAMBDA_MAX
from trimpomdp.serve.errors import APIError

_BUDGET = re.compile(r"^(?P<base>.+)-(?P<kind>lambda|share)-(?P<value>[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """The per-request routing budget (at most one of λ and the strong-token share)."""

    lam: float | None = None
    strong_token_share: float | None = None


def budget_from_model(model: str, served: str) -> Budget | None:
    """``served`` → None; ``served-lambda-X`` / ``served-share-X`` → that budget; else a 404."""
    if model == served:
        return None
    m = _BUDGET.match(model)
    if m is None or m.group("base") != served:
        raise APIError(404, f"The model '{model}' does not exist; this server serves '{served}' "
                       f"(or '{served}-lambda-L' with 0 <= L <= {LAMBDA_MAX:g}, '{served}-share-S' "
                       "with 0 <= S <= 1).", param="model", code="model_not_found")
    v = float(m.group("value"))
    if m.group("kind") == "lambda":
        if not (math.isfinite(v) and 0.0 <= v <= LAMBDA_MAX):
            raise APIError(404, f"The model '{model}' does not exist: λ must be in [0, "
                           f"{LAMBDA_MAX:g}].", param="model", code="model_not_found")
        return Budget(lam=v)
    if not (0.0 <= v <= 1.0):
        raise APIError(404, f"The model '{model}' does not exist: the strong-token share must be "
                       "in [0, 1].", param="model", code="model_not_found")
    return Budget(strong_token_share=v)


def model_card(model_id: str, created: int, root: str) -> dict[str, Any]:
    """One entry of ``/v1/models`` (OpenAI's shape; ``root`` is vLLM's field)."""
    return {"id": model_id, "object": "model", "created": created, "owned_by": "trimpomdp",
            "root": root, "parent": None}
