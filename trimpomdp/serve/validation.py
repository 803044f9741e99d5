"""Strict parsing of OpenAI-style request bodies into a :class:`GenerationRequest`.

Every problem becomes an :class:`APIError` with an HTTP status and an OpenAI-shaped error body
(``{"error": {"message", "type", "param", "code"}}``); unknown fields are rejected, never ignored.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from trimpomdp.serve.config import LAMBDA_MAX

#: fields accepted per endpoint (besides the endpoint's input: "messages" or "prompt")
_COMMON = frozenset({"model", "stream", "stream_options", "max_tokens", "temperature", "top_p",
                     "top_k", "seed", "n", "stop", "user", "trim"})
CHAT_FIELDS = _COMMON | {"messages", "max_completion_tokens"}
COMPLETION_FIELDS = _COMMON | {"prompt"}
TRIM_FIELDS = ("lambda", "strong_token_share", "trace", "max_steps")
#: upper bound of max_tokens (a per-step limit here)
MAX_STEP_TOKENS = 32768


class APIError(Exception):
    """An error answered as JSON: ``status`` plus OpenAI's error object."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 type: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def bad(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param=param)


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """The per-request routing budget (at most one of λ and the strong-token share)."""

    lam: float | None = None
    strong_token_share: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """A validated request: the question, sampling overrides, budget and output options."""

    endpoint: str  # "chat" | "completions"
    model: str
    question: str
    stream: bool = False
    include_usage: bool = False
    max_step_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    user: str | None = None
    budget: Budget | None = None
    trace: bool = False
    max_steps: int | None = None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (NaN/Infinity and non-objects rejected)."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise bad("The request body must be UTF-8 encoded JSON.") from None
    except ValueError as exc:
        raise bad(f"The request body is not valid JSON ({exc}).") from None
    if not isinstance(doc, dict):
        raise bad(f"The request body must be a JSON object. Got {type(doc).__name__} instead.")
    return doc


def _num(body: dict[str, Any], key: str, lo: float, hi: float, *, lo_open: bool = False,
         param: str | None = None) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    p = param or key
    rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
            not (lo < v <= hi if lo_open else lo <= v <= hi):
        raise bad(f"'{p}' must be a number in {rng}. Got {v!r} instead.", p)
    return float(v)


def _int(body: dict[str, Any], key: str, lo: int, hi: int, *, param: str | None = None
         ) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    p = param or key
    if isinstance(v, bool) or not isinstance(v, int) or not (lo <= v <= hi):
        raise bad(f"'{p}' must be an integer in [{lo}, {hi}]. Got {v!r} instead.", p)
    return v


def _bool(body: dict[str, Any], key: str, param: str | None = None) -> bool:
    v = body.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise bad(f"'{param or key}' must be a boolean. Got {v!r} instead.", param or key)
    return v


def _unknown(body: dict[str, Any], allowed: frozenset[str] | tuple[str, ...], where: str) -> None:
    extra = sorted(k for k in body if k not in allowed)
    if extra:
        p = extra[0] if where == "" else f"{where}.{extra[0]}"
        raise bad(f"Unknown field '{p}'. Accepted fields{' of ' + where if where else ''}: "
                  f"{', '.join(sorted(allowed))}.", p)


def _text_content(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text"
                    and isinstance(part.get("text"), str)):
                raise bad(f"'messages[{i}].content[{j}]' must be a text part "
                          "({\"type\": \"text\", \"text\": ...}).", f"messages[{i}].content")
            parts.append(part["text"])
        return "".join(parts)
    raise bad(f"'messages[{i}].content' must be a string or a list of text parts. Got "
              f"{type(content).__name__} instead.", f"messages[{i}].content")


def _question_from_messages(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list of {\"role\", \"content\"} objects.",
                  "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"'messages[{i}]' must be an object with a string 'role'.", f"messages[{i}]")
        _unknown(m, frozenset({"role", "content", "name"}), f"messages[{i}]")
    if len(messages) != 1 or messages[0]["role"] != "user":
        roles = [m["role"] for m in messages]
        raise bad("Step-routed generation takes exactly one user message (the question); the "
                  "instruction and the solution format are fixed by the routing policy. Got roles "
                  f"{roles} instead.", "messages")
    return _text_content(messages[0].get("content"), 0)


def _question_from_prompt(prompt: Any) -> str:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad("'prompt' must be a string (or a list holding one string). Got "
                  f"{type(prompt).__name__ if not isinstance(prompt, list) else 'a list of ' + str(len(prompt))} "
                  "instead.", "prompt")
    return prompt


def parse_budget(trim: Any) -> tuple[Budget | None, bool, int | None]:
    """The ``trim`` extension object → (budget, trace, max_steps)."""
    if trim is None:
        return None, False, None
    if not isinstance(trim, dict):
        raise bad(f"'trim' must be an object with fields {', '.join(TRIM_FIELDS)}. Got "
                  f"{type(trim).__name__} instead.", "trim")
    _unknown(trim, TRIM_FIELDS, "trim")
    lam = _num(trim, "lambda", 0.0, LAMBDA_MAX, param="trim.lambda")
    share = _num(trim, "strong_token_share", 0.0, 1.0, param="trim.strong_token_share")
    if lam is not None and share is not None:
        raise bad("Give at most one of 'trim.lambda' and 'trim.strong_token_share'.", "trim")
    trace = _bool(trim, "trace", "trim.trace")
    max_steps = _int(trim, "max_steps", 1, 30, param="trim.max_steps")
    budget = None if lam is None and share is None else Budget(lam=lam, strong_token_share=share)
    return budget, trace, max_steps


def parse_request(body: dict[str, Any], endpoint: str) -> GenerationRequest:
    """Validate an already-decoded body for ``endpoint`` ("chat" or "completions")."""
    allowed = CHAT_FIELDS if endpoint == "chat" else COMPLETION_FIELDS
    _unknown(body, allowed, "")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' is required and must be a string.", "model")
    if endpoint == "chat":
        if "messages" not in body:
            raise bad("'messages' is required.", "messages")
        question = _question_from_messages(body["messages"])
    else:
        if "prompt" not in body:
            raise bad("'prompt' is required.", "prompt")
        question = _question_from_prompt(body["prompt"])
    if not question.strip():
        raise bad("The question (user message or prompt) is empty.",
                  "messages" if endpoint == "chat" else "prompt")
    stream = _bool(body, "stream")
    include_usage = False
    opts = body.get("stream_options")
    if opts is not None:
        if not stream:
            raise bad("'stream_options' is only allowed with 'stream': true.", "stream_options")
        if not isinstance(opts, dict):
            raise bad("'stream_options' must be an object.", "stream_options")
        _unknown(opts, frozenset({"include_usage"}), "stream_options")
        include_usage = _bool(opts, "include_usage", "stream_options.include_usage")
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise bad("Give at most one of 'max_tokens' and 'max_completion_tokens'.", "max_tokens")
    max_tok = _int(body, "max_tokens", 1, MAX_STEP_TOKENS)
    if max_tok is None:
        max_tok = _int(body, "max_completion_tokens", 1, MAX_STEP_TOKENS)
    if body.get("n") not in (None, 1):
        raise bad(f"'n' must be 1 (one step-routed solution per request). Got {body['n']!r} "
                  "instead.", "n")
    if body.get("stop") is not None:
        raise bad("'stop' is not supported: steps always end at a blank line and the solution at "
                  "\\boxed{...} (or the step limit).", "stop")
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k == 0 or top_k < -1):
        raise bad(f"'top_k' must be -1 (off) or an integer >= 1. Got {top_k!r} instead.", "top_k")
    seed = _int(body, "seed", -(2 ** 63), 2 ** 63 - 1)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad("'user' must be a string.", "user")
    budget, trace, max_steps = parse_budget(body.get("trim"))
    return GenerationRequest(
        endpoint=endpoint, model=model, question=question, stream=stream,
        include_usage=include_usage, max_step_tokens=max_tok,
        temperature=_num(body, "temperature", 0.0, 2.0), top_p=_num(body, "top_p", 0.0, 1.0,
                                                                    lo_open=True),
        top_k=top_k, seed=seed, user=user, budget=budget, trace=trace, max_steps=max_steps)
