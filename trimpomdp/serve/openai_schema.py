"""OpenAI Chat Completions / Completions request bodies → a validated :class:`GenerationRequest`.

Fields fall into three groups, in the spirit of vLLM's server:

- **honoured**: ``messages`` (any system/developer/user/assistant list: the last user turn is the
  question, the rest reaches the models through their chat templates), ``prompt``, ``stream``,
  ``stream_options.include_usage``, ``max_tokens`` / ``max_completion_tokens`` (a cap on the whole
  answer), ``n``, ``stop``, ``seed``, ``temperature``, ``top_p``, ``top_k``,
  ``frequency_penalty``, ``presence_penalty``, ``logprobs`` (each token's log-probability under
  the model that wrote it), and the ``trim`` extension;
- **ignored with a logged warning**: what only matters to a hosted platform (``user``, ``store``,
  ``metadata``, ``service_tier``, ...), standard fields at their no-op values (``logprobs: false``,
  ``tools: []``, ``logit_bias: {}``, ``response_format: {"type": "text"}``, ...), and any field
  this server does not know (as vLLM does);
- **refused with a 400 naming the field**: what cannot be served (alternative tokens, tools,
  structured output, audio, token-id prompts, ``echo``, ``suffix``, ...) and values out of range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trimpomdp.serve.config import LAMBDA_MAX
from trimpomdp.serve.errors import APIError, bad
from trimpomdp.serve.models import Budget

TRIM_FIELDS = ("lambda", "strong_token_share", "trace", "max_steps", "max_step_tokens",
               "stream_tokens")
#: largest whole-answer token cap accepted (the loop stops far earlier in practice)
MAX_ANSWER_TOKENS = 1 << 24
MAX_STOP = 16
ROLES = ("system", "developer", "user", "assistant")

#: platform-only fields: accepted, logged and ignored whatever their value
PLATFORM_FIELDS = frozenset({
    "user", "store", "metadata", "service_tier", "parallel_tool_calls", "prompt_cache_key",
    "safety_identifier", "reasoning_effort", "verbosity", "web_search_options", "prediction",
    "stream_options.continuous_usage_stats"})


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """A validated request: question and conversation, sampling, limits, budget, output options."""

    endpoint: str  # "chat" | "completions"
    model: str
    question: str
    #: system/developer messages and earlier turns, in order (chat only)
    conversation: tuple[dict[str, str], ...] = ()
    stream: bool = False
    include_usage: bool = False
    #: cap on the whole answer's decoded tokens (max_tokens / max_completion_tokens)
    max_tokens: int | None = None
    #: per-step cap (trim.max_step_tokens)
    max_step_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    n: int = 1
    stop: tuple[str, ...] = ()
    #: return each answer token's log-probability (under the model that wrote it)
    logprobs: bool = False
    budget: Budget | None = None
    trace: bool = False
    max_steps: int | None = None
    #: stream a strong rewrite token by token as it is decoded (trim.stream_tokens)
    stream_tokens: bool = False
    #: fields accepted but ignored (logged once per request)
    ignored: tuple[str, ...] = ()


# ------------------------------------------------------------------------- scalar readers
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


def _unsupported(field: str, why: str) -> APIError:
    return bad(f"'{field}' is not supported by step-routed generation: {why}", field)


# ------------------------------------------------------------------------- messages
def _text_content(content: Any, where: str, *, allow_null: bool = False) -> str:
    if content is None and allow_null:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if isinstance(part, str):
                parts.append(part)
                continue
            if not (isinstance(part, dict) and part.get("type") in ("text", "input_text")
                    and isinstance(part.get("text"), str)):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise bad(f"'{where}[{j}]' must be a text part ({{\"type\": \"text\", \"text\": "
                          f"...}}); this server routes text only. Got {kind!r} instead.", where)
            parts.append(part["text"])
        return "".join(parts)
    raise bad(f"'{where}' must be a string or a list of text parts. Got "
              f"{type(content).__name__} instead.", where)


def parse_messages(messages: Any) -> tuple[str, tuple[dict[str, str], ...]]:
    """(question, conversation): the last message must be the user's; the rest is context."""
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list of {\"role\", \"content\"} objects.",
                  "messages")
    conv: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"'{where}' must be an object with a string 'role'.", where)
        role = m["role"]
        if role in ("tool", "function") or m.get("tool_calls") or m.get("function_call"):
            raise bad(f"'{where}': tool calls and tool results cannot be served (this server "
                      "has no tools).", where)
        if role not in ROLES:
            raise bad(f"'{where}.role' must be one of {', '.join(ROLES)}. Got {role!r} instead.",
                      f"{where}.role")
        text = _text_content(m.get("content"), f"{where}.content",
                             allow_null=role == "assistant")
        conv.append({"role": "system" if role == "developer" else role, "content": text})
    last = conv.pop()
    if last["role"] != "user":
        raise bad("The last message must be the user's question (the server writes the "
                  f"assistant's answer). Got role {messages[-1]['role']!r} instead.",
                  f"messages[{len(messages) - 1}].role")
    return last["content"], tuple(conv)


def _question_from_prompt(prompt: Any) -> str:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(x, int) for x in prompt):
        raise _unsupported("prompt", "token-id prompts cannot be routed between two models with "
                           "different tokenizers; send text.")
    if isinstance(prompt, list) and len(prompt) > 1:
        raise bad(f"'prompt' must be one string (a batch of {len(prompt)} prompts is not "
                  "supported; send one request per prompt, or use 'n').", "prompt")
    if not isinstance(prompt, str):
        raise bad("'prompt' must be a string (or a list holding one string). Got "
                  f"{type(prompt).__name__} instead.", "prompt")
    return prompt


# ------------------------------------------------------------------------- trim extension
def parse_trim(trim: Any) -> dict[str, Any]:
    """The ``trim`` extension object (strict: unknown keys are 400, typos matter here)."""
    if trim is None:
        return {}
    if not isinstance(trim, dict):
        raise bad(f"'trim' must be an object with fields {', '.join(TRIM_FIELDS)}. Got "
                  f"{type(trim).__name__} instead.", "trim")
    extra = sorted(k for k in trim if k not in TRIM_FIELDS)
    if extra:
        raise bad(f"Unknown field 'trim.{extra[0]}'. Accepted fields of trim: "
                  f"{', '.join(TRIM_FIELDS)}.", f"trim.{extra[0]}")
    lam = _num(trim, "lambda", 0.0, LAMBDA_MAX, param="trim.lambda")
    share = _num(trim, "strong_token_share", 0.0, 1.0, param="trim.strong_token_share")
    if lam is not None and share is not None:
        raise bad("Give at most one of 'trim.lambda' and 'trim.strong_token_share'.", "trim")
    return {"budget": None if lam is None and share is None else
            Budget(lam=lam, strong_token_share=share),
            "trace": _bool(trim, "trace", "trim.trace"),
            "max_steps": _int(trim, "max_steps", 1, 10_000, param="trim.max_steps"),
            "max_step_tokens": _int(trim, "max_step_tokens", 1, 1 << 20,
                                    param="trim.max_step_tokens"),
            "stream_tokens": _bool(trim, "stream_tokens", "trim.stream_tokens")}


# ------------------------------------------------------------------------- the body
def _stop(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad("'stop' must be a string or a list of strings.", "stop")
    if len(stops) > MAX_STOP:
        raise bad(f"'stop' may hold at most {MAX_STOP} strings. Got {len(stops)} instead.", "stop")
    return tuple(dict.fromkeys(s for s in stops if s))


def _noop_or_refuse(body: dict[str, Any], ignored: list[str]) -> None:
    """Standard fields that are fine at their no-op value and cannot be served otherwise."""
    def noop(key: str, ok: Any, why: str) -> None:
        if key not in body:
            return
        v = body[key]
        if v is None or ok(v):
            ignored.append(key)
            return
        raise _unsupported(key, why)

    noop("logit_bias", lambda v: v == {}, "token ids differ between the weak and the strong "
         "model's tokenizers.")
    noop("tools", lambda v: v == [], "this server has no tool calling.")
    noop("functions", lambda v: v == [], "this server has no tool calling.")
    noop("tool_choice", lambda v: v in ("none", "auto"), "this server has no tool calling.")
    noop("function_call", lambda v: v in ("none", "auto"), "this server has no tool calling.")
    noop("response_format", lambda v: isinstance(v, dict) and v.get("type") == "text",
         "structured output (json_object, json_schema) is not enforced across routed steps.")
    noop("modalities", lambda v: v == ["text"], "only text output is produced.")
    noop("audio", lambda v: False, "only text output is produced.")
    noop("echo", lambda v: v is False, "the prompt is not echoed.")
    noop("suffix", lambda v: v == "", "insertion (suffix) is not supported.")
    noop("best_of", lambda v: v == body.get("n", 1) or v == 1,
         "best_of other than n is not supported.")


def _logprobs(body: dict[str, Any], endpoint: str, ignored: list[str]) -> bool:
    """Whether token log-probabilities are asked for (each token's under the model that wrote
    it); alternatives (top_logprobs > 0, completions logprobs > 0) cannot be served."""
    v = body.get("logprobs")
    top = body.get("top_logprobs")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or top < 0:
            raise bad(f"'top_logprobs' must be an integer >= 0. Got {top!r} instead.",
                      "top_logprobs")
        if top > 0:
            raise _unsupported("top_logprobs", "alternative tokens are not returned (the answer "
                               "mixes two models' distributions); use top_logprobs 0.")
    if v is None or v is False:
        if "logprobs" in body:
            ignored.append("logprobs")
        return False
    if endpoint == "chat":
        if v is not True:
            raise bad(f"'logprobs' must be a boolean. Got {v!r} instead.", "logprobs")
        return True
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise bad(f"'logprobs' must be an integer >= 0. Got {v!r} instead.", "logprobs")
    if v > 0:
        raise _unsupported("logprobs", "alternative tokens are not returned (the answer mixes "
                           "two models' distributions); use logprobs 0 for the sampled tokens.")
    return True


def parse_request(body: dict[str, Any], endpoint: str, *, max_n: int = 8) -> GenerationRequest:
    """Validate an already-decoded body for ``endpoint`` ("chat" or "completions")."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' is required and must be a string.", "model")
    conversation: tuple[dict[str, str], ...] = ()
    if endpoint == "chat":
        if "messages" not in body:
            raise bad("'messages' is required.", "messages")
        question, conversation = parse_messages(body["messages"])
        known = {"messages", "max_completion_tokens"}
        if "prompt" in body:
            raise bad("'prompt' belongs to /v1/completions; /v1/chat/completions takes "
                      "'messages'.", "prompt")
    else:
        if "prompt" not in body:
            raise bad("'prompt' is required.", "prompt")
        if "messages" in body:
            raise bad("'messages' belongs to /v1/chat/completions; /v1/completions takes "
                      "'prompt'.", "messages")
        question = _question_from_prompt(body["prompt"])
        known = {"prompt"}
    if not question.strip():
        raise bad("The question (the last user message or the prompt) is empty.",
                  "messages" if endpoint == "chat" else "prompt")
    ignored: list[str] = []
    stream = _bool(body, "stream")
    include_usage = False
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, dict):
            raise bad("'stream_options' must be an object.", "stream_options")
        include_usage = _bool(opts, "include_usage", "stream_options.include_usage")
        ignored += [f"stream_options.{k}" for k in opts if k != "include_usage"]
        if not stream:
            ignored.append("stream_options")  # OpenAI answers 400; vLLM ignores it. So do we.
            include_usage = False
    mt, mct = body.get("max_tokens"), body.get("max_completion_tokens")
    if mt is not None and mct is not None and mt != mct:
        raise bad("Give at most one of 'max_tokens' and 'max_completion_tokens'.", "max_tokens")
    max_tokens = _int(body, "max_completion_tokens", 1, MAX_ANSWER_TOKENS) if mct is not None \
        else _int(body, "max_tokens", 1, MAX_ANSWER_TOKENS)
    n = _int(body, "n", 1, max_n)
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k == 0 or top_k < -1):
        raise bad(f"'top_k' must be -1 (off) or an integer >= 1. Got {top_k!r} instead.", "top_k")
    seed = _int(body, "seed", -(2 ** 63), 2 ** 64 - 1)
    logprobs = _logprobs(body, endpoint, ignored)
    _noop_or_refuse(body, ignored)
    trim = parse_trim(body.get("trim"))
    handled = {"model", "stream", "stream_options", "max_tokens", "temperature", "top_p",
               "top_k", "seed", "n", "stop", "trim", "frequency_penalty", "presence_penalty",
               "logprobs", "top_logprobs", "logit_bias", "tools", "functions", "tool_choice",
               "function_call", "response_format", "modalities", "audio", "echo", "suffix",
               "best_of"} | known
    ignored += sorted(k for k in body if k not in handled)  # platform-only and unknown fields
    return GenerationRequest(
        endpoint=endpoint, model=model, question=question, conversation=conversation,
        stream=stream, include_usage=include_usage, max_tokens=max_tokens,
        max_step_tokens=trim.get("max_step_tokens"),
        temperature=_num(body, "temperature", 0.0, 2.0),
        top_p=_num(body, "top_p", 0.0, 1.0, lo_open=True), top_k=top_k, seed=seed,
        frequency_penalty=_num(body, "frequency_penalty", -2.0, 2.0) or 0.0,
        presence_penalty=_num(body, "presence_penalty", -2.0, 2.0) or 0.0,
        n=n or 1, stop=_stop(body.get("stop")), logprobs=logprobs, budget=trim.get("budget"),
        trace=trim.get("trace", False), max_steps=trim.get("max_steps"),
        stream_tokens=stream and trim.get("stream_tokens", False),
        ignored=tuple(dict.fromkeys(ignored)))
