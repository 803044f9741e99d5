"""PRM client for vLLM's ``/pooling`` endpoint (Qwen2.5-Math-PRM format): score = P(class 1).

Two ways a server scores (chosen once per client, ``mode="auto"``):

* ``"last"`` — linear cost. The request's prompt is the token ids of the PRM chat cut right after
  the new step's ``<extra_0>``, pooled at its last token (task ``classify``). For a causal PRM this
  is the STEP score of that marker, and a ``classify`` request reads vLLM's prefix cache, so only
  the new step's tokens are computed. Needs a server with the plugin of
  :mod:`trimpomdp.generation.vllm_prm_plugin` (vLLM 0.32's PRM class has no ``classify`` pooler),
  ``--pooler-config '{"pooling_type": "STEP", "step_tag_id": ID, "task": "classify"}'`` and
  ``--enable-prefix-caching``; token ids come from the server's ``/tokenize`` (its own template).
* ``"step"`` — the stock server (``--pooler-config '{"pooling_type": "STEP", "step_tag_id":
  ID}'``): one ``[P(class 0), P(class 1)]`` pair per marker of the whole chat. vLLM skips
  prefix-cache *reads* for every token-wise pooling task (``PoolingParams
  ._merge_default_parameters`` sets ``skip_reading_prefix_cache`` for ``token_classify``; no
  request field reaches it), so each call recomputes the whole prefix.

Over-long inputs go in one request with ``truncate_prompt_tokens: -1, truncation_side: "left"``
(keep the last ``max_model_len`` tokens); markers cut away score 1.0 (the release's left
truncation). A server that still answers a length error (one without that field) falls back to
dropping leading steps, one request each.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from trimpomdp.errors import BackendError, InputError
from trimpomdp.generation._http import AFFINITY_HEADER, JSONClient, RetryPolicy
from trimpomdp.generation.prm_incremental import ScoreMemo
from trimpomdp.generation.prompting import INSTRUCTION, PRM_STEP_MARKER, prm_messages

_MODES = ("auto", "last", "step")
#: keep the last max_model_len tokens of an over-long prompt (vLLM: -1 = the model's limit)
TRUNCATE = {"truncate_prompt_tokens": -1, "truncation_side": "left"}


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
    """A :class:`PRMScorer` (and ``IncrementalPRMScorer``) backed by a vLLM pooling server.

    ``mode``: ``"auto"`` (probe once: last-token pooling if the server serves it, else STEP),
    ``"last"`` or ``"step"`` (forced). ``cache_salt=True`` gives each session its own prefix-cache
    namespace (vLLM ``cache_salt``), for measuring one problem's cost without the others' blocks;
    a string salts every session with it (problems share blocks with each other only).
    ``instruction`` is the PRM chat's system message (a task profile's ``prm_instruction``;
    default: the release's math instruction). ``requests`` counts the ``/pooling`` calls made.
    """

    def __init__(self, base_url: str, *, model: str | None = None, concurrency: int = 8,
                 retry: RetryPolicy | None = None, api_key: str | None = None,
                 mode: str = "auto", cache_salt: bool | str = False,
                 instruction: str = INSTRUCTION,
                 affinity_header: str | None = AFFINITY_HEADER) -> None:
        if mode not in _MODES:
            raise InputError(f"The 'mode' parameter of VLLMPoolingPRM must be one of {_MODES}. "
                             f"Got {mode!r} instead.")
        self.model = model
        if not isinstance(instruction, str):
            raise InputError(f"The 'instruction' parameter of VLLMPoolingPRM must be a string. "
                             f"Got {type(instruction).__name__} instead.")
        self.instruction = instruction
        self.http = JSONClient(base_url, concurrency=concurrency, retry=retry, api_key=api_key,
                               affinity_header=affinity_header)
        self.requested_mode = mode
        self.mode: str | None = None if mode == "auto" else mode
        self.cache_salt = cache_salt
        self.marker_id: int | None = None
        self.requests = 0
        self.probe_note = ""
        self._probe_lock = asyncio.Lock()
        self._salts = 0

    async def _model(self) -> str:
        if self.model is None:
            doc = await self.http.get("/v1/models")
            try:
                self.model = str(doc["data"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise BackendError(f"{self.http.base_url}/v1/models lists no model") from None
        return self.model

    # -- how this server scores --------------------------------------------------------------
    async def resolve_mode(self) -> str:
        """``"last"`` or ``"step"``: probed once (``/tokenize`` + a one-token classify request)."""
        if self.mode is not None and (self.mode == "step" or self.marker_id is not None):
            return self.mode
        async with self._probe_lock:
            if self.mode is not None and (self.mode == "step" or self.marker_id is not None):
                return self.mode
            model = await self._model()
            note = ""
            try:
                doc = await self.http.post("/tokenize", {"model": model, "prompt": PRM_STEP_MARKER,
                                                         "add_special_tokens": False})
                toks = doc.get("tokens") if isinstance(doc, dict) else None
                if not (isinstance(toks, list) and len(toks) == 1 and isinstance(toks[0], int)):
                    raise ValueError(f"{PRM_STEP_MARKER} is not one token ({str(doc)[:80]})")
                self.marker_id = int(toks[0])
                out = await self._post({"model": model, "input": [self.marker_id],
                                        "task": "classify", "add_special_tokens": False})
                _last_score(out, self.http.base_url)
            except BackendError as exc:
                if self.requested_mode == "last" or not _is_client_error(str(exc)):
                    raise
                note = str(exc)
            except ValueError as exc:
                if self.requested_mode == "last":
                    raise BackendError(f"PRM at {self.http.base_url}: last-token pooling is not "
                                       f"available ({exc})") from None
                note = str(exc)
            self.mode = "step" if note else "last"
            self.probe_note = note
            return self.mode

    async def _post(self, body: dict[str, Any]) -> Any:
        self.requests += 1
        return await self.http.post("/pooling", body)

    # -- whole-prefix scoring (the PRMScorer protocol) ---------------------------------------
    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]:
        """One score in [0, 1] per step (P(class 1) at each ``<extra_0>``)."""
        if not steps:
            return []
        if await self.resolve_mode() == "last":
            return await _LastTokenSession(self, question, salt=None).score(steps)
        return await self._score_step_pooling(question, steps)

    async def _score_step_pooling(self, question: str, steps: Sequence[str]) -> list[float]:
        model = await self._model()
        for drop in range(len(steps)):
            body = {"model": model, "messages": prm_messages(question, steps[drop:],
                                                               instruction=self.instruction),
                    **TRUNCATE}
            try:
                doc = await self._post(body)
            except BackendError as exc:
                # a server that does not take truncate_prompt_tokens: drop leading steps instead
                if "HTTP 400" in str(exc) and _is_length_error(str(exc)) and drop + 1 < len(steps):
                    continue
                raise
            return [1.0] * drop + step_scores_from_pooling(doc, len(steps) - drop,
                                                           self.http.base_url)
        raise BackendError("unreachable")  # pragma: no cover

    # -- incremental scoring -----------------------------------------------------------------
    def session(self, question: str) -> _VLLMSession:
        """This problem's scorer: last-token requests served from the prefix cache, or STEP."""
        self._salts += 1
        salt = self.cache_salt if isinstance(self.cache_salt, str) else \
            f"trimpomdp-{id(self):x}-{self._salts}" if self.cache_salt else None
        return _VLLMSession(self, question, salt)

    async def prompt_ids(self, question: str, steps: Sequence[str]) -> list[int]:
        """The server's token ids of the PRM chat for ``steps`` (its own chat template)."""
        doc = await self.http.post("/tokenize", {
            "model": await self._model(),
            "messages": prm_messages(question, steps, instruction=self.instruction),
            "add_generation_prompt": False, "add_special_tokens": False})
        toks = doc.get("tokens") if isinstance(doc, dict) else None
        if not isinstance(toks, list):
            raise BackendError(f"PRM at {self.http.base_url}/tokenize: no field 'tokens': "
                               f"{str(doc)[:200]}")
        return [int(t) for t in toks]

    async def aclose(self) -> None:
        await self.http.aclose()


class _LastTokenSession:
    """Scores unseen steps one request each, every prompt ending at that step's marker."""

    def __init__(self, prm: VLLMPoolingPRM, question: str, salt: str | None) -> None:
        self.prm = prm
        self.question = question
        self.salt = salt
        self.memo = ScoreMemo()

    async def score(self, steps: Sequence[str]) -> list[float]:
        steps = list(steps)
        k = self.memo.known(steps)
        if k == len(steps):
            return self.memo.scores[:k]
        prm = self.prm
        ids = await prm.prompt_ids(self.question, steps)
        at = [i for i, t in enumerate(ids) if t == prm.marker_id]
        if len(at) != len(steps):
            raise BackendError(f"PRM at {prm.http.base_url}: {len(at)} markers in the prompt for "
                               f"{len(steps)} steps (does the question hold {PRM_STEP_MARKER}?)")
        scores = self.memo.scores[:k]
        model = await prm._model()
        for j in range(k, len(steps)):  # in order: each request's prefix is the last one's cache
            body: dict[str, Any] = {"model": model, "input": ids[:at[j] + 1], "task": "classify",
                                    "add_special_tokens": False, **TRUNCATE}
            if self.salt is not None:
                body["cache_salt"] = self.salt
            scores.append(_last_score(await prm._post(body), prm.http.base_url))
        self.memo.update(steps, scores)
        return list(scores)

    async def aclose(self) -> None:
        self.memo.clear()


class _VLLMSession:
    """A problem's session on a vLLM PRM: the mode is resolved on the first call."""

    def __init__(self, prm: VLLMPoolingPRM, question: str, salt: str | None) -> None:
        self.prm = prm
        self.question = question
        self.inner = _LastTokenSession(prm, question, salt)

    async def score(self, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        if await self.prm.resolve_mode() == "last":
            return await self.inner.score(steps)
        return await self.prm._score_step_pooling(self.question, steps)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _last_score(doc: Any, url: str) -> float:
    """P(class 1) from a ``classify`` ``/pooling`` response (``data[0].data = [p0, p1]``)."""
    try:
        row = doc["data"][0]["data"]
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"PRM at {url}/pooling: unexpected response, no field "
                           f"'data[0].data': {str(doc)[:200]}") from None
    if not (isinstance(row, list) and len(row) == 2):
        raise ValueError(f"PRM at {url}/pooling: field 'data[0].data' must be [P(class 0), "
                         f"P(class 1)] for a classify request. Got {str(row)[:80]} instead")
    return _probability(row[1], url, "data[0].data[1]")


def _is_client_error(message: str) -> bool:
    """A 4xx answer to the probe: the server cannot do last-token pooling (not a fault)."""
    return any(f"HTTP {c}" in message for c in (400, 404, 405, 422, 501))


def _is_length_error(message: str) -> bool:
    m = message.lower()
    return any(k in m for k in ("maximum context length", "max_model_len", "too long",
                                "maximum model length", "exceeds"))
