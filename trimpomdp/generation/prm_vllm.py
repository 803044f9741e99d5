"""PRM client for vLLM's ``/pooling`` endpoint with the STEP pooler (Qwen2.5-Math-PRM format).

The server is started with ``--runner pooling --pooler-config '{"pooling_type": "STEP",
"step_tag_id": <id of <extra_0>>}'`` and returns one ``[P(class 0), P(class 1)]`` pair per
marker; the step score is P(class 1).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from trimpomdp.errors import BackendError
from trimpomdp.generation._http import JSONClient, RetryPolicy
from trimpomdp.generation.prompting import prm_messages


def _probability(value: Any, url: str, field: str) -> float:
    """A P(class 1) from the server: a finite number in [0, 1], else BackendError naming it."""
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    p = float(value) if ok else math.nan
    if not (0.0 <= p <= 1.0):  # also false for NaN
        raise BackendError(f"PRM at {url}/pooling: field '{field}': P(class 1) must be in [0, 1] "
                           f"(a number). Got {str(value)[:80]!r} instead (is the server a 2-class "
                           "PRM with the STEP pooler and softmax?)")
    return p


def step_scores_from_pooling(doc: Any, n_steps: int, url: str = "") -> list[float]:
    """P(class 1) per marker from a ``/pooling`` response; leading steps cut away score 1.0.

    Any malformed, non-numeric or NaN probability raises BackendError naming the PRM URL and
    the field (``data[0].data[i][1]``).
    """
    try:
        rows = doc["data"][0]["data"]
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"PRM at {url}/pooling: unexpected response, no field "
                           f"'data[0].data': {str(doc)[:200]}") from None
    if not isinstance(rows, list):
        raise BackendError(f"PRM at {url}/pooling: field 'data[0].data' must be a list of "
                           f"per-marker rows. Got {type(rows).__name__} instead.")
    scores = []
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 2):
            raise BackendError(f"PRM at {url}/pooling: field 'data[0].data[{i}]': row {i} must be "
                               f"[P(class 0), P(class 1)]. Got {str(row)[:80]} instead (is the "
                               "server a 2-class PRM with the STEP pooler?)")
        scores.append(_probability(row[1], url, f"data[0].data[{i}][1]"))
    if len(scores) > n_steps:
        raise BackendError(f"PRM at {url}/pooling: {len(scores)} markers scored for {n_steps} "
                           "steps (is step_tag_id the id of <extra_0>?)")
    return [1.0] * (n_steps - len(scores)) + scores


class VLLMPoolingPRM:
    """A :class:`PRMScorer` backed by a vLLM pooling server.

    Over-long inputs are left-truncated as the release does: the oldest steps are dropped (they
    count as score 1.0) until the server accepts the request.
    """

    def __init__(self, base_url: str, *, model: str | None = None, concurrency: int = 8,
                 retry: RetryPolicy | None = None, api_key: str | None = None) -> None:
        self.model = model
        self.http = JSONClient(base_url, concurrency=concurrency, retry=retry, api_key=api_key)

    async def _model(self) -> str:
        if self.model is None:
            doc = await self.http.get("/v1/models")
            try:
                self.model = str(doc["data"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise BackendError(f"{self.http.base_url}/v1/models lists no model") from None
        return self.model

    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]:
        """One score in [0, 1] per step (P(class 1) at each ``<extra_0>``)."""
        if not steps:
            return []
        model = await self._model()
        for drop in range(len(steps)):
            body = {"model": model, "messages": prm_messages(question, steps[drop:])}
            try:
                doc = await self.http.post("/pooling", body)
            except BackendError as exc:
                if "HTTP 400" in str(exc) and _is_length_error(str(exc)) and drop + 1 < len(steps):
                    continue
                raise
            return [1.0] * drop + step_scores_from_pooling(doc, len(steps) - drop,
                                                           self.http.base_url)
        raise BackendError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.http.aclose()


def _is_length_error(message: str) -> bool:
    m = message.lower()
    return any(k in m for k in ("maximum context length", "max_model_len", "too long",
                                "maximum model length", "exceeds"))
