"""Async client for OpenAI-compatible ``/v1/completions`` servers (vLLM, llama.cpp server).

The prompt is rendered on the client with the model's own chat template (the release's
``continue_final_message``), so the server sees exactly the text the release sends. Without a local
tokenizer the client falls back to ``/v1/chat/completions`` with ``continue_final_message`` (a vLLM
extension), which renders the same prompt on the server.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from trimpomdp.errors import BackendError, InputError
from trimpomdp.generation._http import JSONClient, RetryPolicy
from trimpomdp.generation.prompting import render_continuation
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput

_APIS = ("auto", "completions", "chat")


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """Load a Hugging Face tokenizer from a local folder (transformers imported lazily)."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendError("client-side prompt rendering needs transformers (pip install "
                           "'trimpomdp[live]'), or pass api='chat'") from exc
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load a tokenizer from {path} ({exc})") from None


class OpenAICompletionsBackend:
    """One model behind an OpenAI-compatible server, as a :class:`GenerationBackend`.

    ``api='auto'`` renders prompts locally when a tokenizer is given or the server's model path
    (vLLM's ``/v1/models`` ``root``) exists on this machine, else uses the chat endpoint.
    """

    def __init__(self, base_url: str, *, name: str = "model", model: str | None = None,
                 tokenizer: Any = None, api: str = "auto", concurrency: int = 8,
                 retry: RetryPolicy | None = None, api_key: str | None = None,
                 chat_template_kwargs: dict[str, Any] | None = None) -> None:
        if api not in _APIS:
            raise InputError(f"The 'api' parameter of OpenAICompletionsBackend must be one of "
                             f"{_APIS}. Got {api!r} instead.")
        self.name = name
        self.model = model
        self.api = api
        #: passed to the chat template (e.g. {"enable_thinking": False}); vLLM's extension
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._tokenizer = tokenizer
        self.http = JSONClient(base_url, concurrency=concurrency, retry=retry, api_key=api_key)
        self._api_key = api_key
        self._retry = retry or RetryPolicy()
        self._stream_client: Any = None
        self._setup_lock = asyncio.Lock()
        self._ready = False

    @property
    def base_url(self) -> str:
        return self.http.base_url

    async def setup(self) -> None:
        """Resolve the served model name and how prompts are rendered (once)."""
        async with self._setup_lock:
            if self._ready:
                return
            root = None
            if self.model is None or (self.api != "chat" and self._tokenizer is None):
                doc = await self.http.get("/v1/models")
                data = doc.get("data") if isinstance(doc, dict) else None
                if not data:
                    raise BackendError(f"{self.base_url}/v1/models lists no model")
                entry = data[0] if self.model is None else next(
                    (d for d in data if d.get("id") == self.model), data[0])
                self.model = self.model or str(entry["id"])
                root = entry.get("root")
            if isinstance(self._tokenizer, (str, os.PathLike)):
                self._tokenizer = load_tokenizer(self._tokenizer)
            if self._tokenizer is None and self.api != "chat":
                if root and Path(root).is_dir():
                    self._tokenizer = load_tokenizer(root)
                elif self.api == "completions":
                    raise InputError(f"api='completions' needs a tokenizer for {self.name} (the "
                                     f"server's model path {root!r} is not on this machine)")
            if self.api == "auto":
                self.api = "completions" if self._tokenizer is not None else "chat"
            self._ready = True

    def render(self, messages: Sequence[Message]) -> str:
        """The exact prompt text sent to ``/v1/completions``."""
        return render_continuation(self._tokenizer, messages, **self.chat_template_kwargs)

    def _sampling_body(self, stop: Sequence[str], sampling: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": sampling.max_tokens,
                                "stop": list(stop), "temperature": sampling.temperature,
                                "top_p": sampling.top_p}
        if sampling.top_k > 0:
            body["top_k"] = sampling.top_k
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.frequency_penalty:
            body["frequency_penalty"] = sampling.frequency_penalty
        if sampling.presence_penalty:
            body["presence_penalty"] = sampling.presence_penalty
        return body

    async def generate_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                            sampling: SamplingParams, logprobs: bool = False) -> StepOutput:
        """Continue the final assistant message until a stop string, EOS or the token limit."""
        await self.setup()
        t0 = time.perf_counter()
        body = self._sampling_body(stop, sampling)
        if self.api == "completions":
            body["prompt"] = self.render(messages)
            body["add_special_tokens"] = False  # the template already wrote BOS etc. (vLLM)
            if logprobs:
                body["logprobs"] = 0
            doc = await self.http.post("/v1/completions", body)
            choice = _first_choice(doc, self.base_url)
            text = choice.get("text")
            lp_doc = choice.get("logprobs") or {}
            lps = lp_doc.get("token_logprobs") if logprobs else None
            toks = lp_doc.get("tokens") if logprobs else None
            pairs = _pairs(toks, lps)
        else:
            body.update(messages=[dict(m) for m in messages], add_generation_prompt=False,
                        continue_final_message=True)
            if self.chat_template_kwargs:
                body["chat_template_kwargs"] = self.chat_template_kwargs
            if logprobs:
                body["logprobs"] = True
            doc = await self.http.post("/v1/chat/completions", body)
            choice = _first_choice(doc, self.base_url)
            text = (choice.get("message") or {}).get("content")
            content = (choice.get("logprobs") or {}).get("content") if logprobs else None
            lps = [c.get("logprob") for c in content] if content else None
            pairs = _pairs([c.get("token") for c in content], lps) if content else None
        if not isinstance(text, str):
            raise BackendError(f"{self.base_url}: the response's choice has no text: "
                               f"{str(choice)[:200]}")
        finish = str(choice.get("finish_reason") or "stop")
        stopped = finish == "stop" and (choice.get("stop_reason") in stop
                                        if "stop_reason" in choice else True)
        usage = doc.get("usage") or {}
        if not isinstance(usage, dict):
            raise BackendError(f"{self.base_url}: the response's usage is not an object")
        tokens = usage.get("completion_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise BackendError(f"{self.base_url}: the response has no usage.completion_tokens; "
                               "cannot count decoded tokens")
        if tokens < 0:
            raise BackendError(f"{self.base_url}: usage.completion_tokens is negative ({tokens})")
        prompt_tokens = usage.get("prompt_tokens")
        stop_reason = choice.get("stop_reason")
        return StepOutput(text=text, tokens=tokens, stopped_on_stop=stopped, finish_reason=finish,
                          logprobs=None if lps is None else tuple(float(x) for x in lps if x is not None),
                          seconds=time.perf_counter() - t0,
                          stop_reason=stop_reason if isinstance(stop_reason, str) else None,
                          prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int)
                          and not isinstance(prompt_tokens, bool) and prompt_tokens >= 0 else None,
                          token_logprobs=pairs)

    def _request_body(self, messages: Sequence[Message], stop: Sequence[str],
                      sampling: SamplingParams) -> tuple[str, dict[str, Any]]:
        body = self._sampling_body(stop, sampling)
        if self.api == "completions":
            body["prompt"] = self.render(messages)
            body["add_special_tokens"] = False
            return "/v1/completions", body
        body.update(messages=[dict(m) for m in messages], add_generation_prompt=False,
                    continue_final_message=True)
        if self.chat_template_kwargs:
            body["chat_template_kwargs"] = self.chat_template_kwargs
        return "/v1/chat/completions", body

    async def stream_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                          sampling: SamplingParams,
                          on_text: Callable[[str], Awaitable[None]]) -> StepOutput:
        """Like :meth:`generate_step`, but streamed from the server: ``on_text`` gets each piece
        of text as it is decoded. Not retried (text may already have been passed on)."""
        import httpx

        await self.setup()
        t0 = time.perf_counter()
        path, body = self._request_body(messages, stop, sampling)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        url = self.base_url + path
        if self._stream_client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
            self._stream_client = httpx.AsyncClient(
                base_url=self.base_url, headers=headers,
                timeout=httpx.Timeout(self._retry.timeout, connect=min(10.0, self._retry.timeout)))
        parts: list[str] = []
        finish, stop_reason, usage, has_reason = "stop", None, None, False
        async with self.http.semaphore:
            try:
                async with self._stream_client.stream("POST", path, json=body) as resp:
                    if resp.status_code >= 400:
                        detail = " ".join((await resp.aread()).decode("utf-8", "replace").split())
                        raise BackendError(f"POST {url} was rejected with HTTP "
                                           f"{resp.status_code}: {detail[:300]}")
                    async for line in resp.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        try:
                            doc = json.loads(data)
                        except ValueError:
                            raise BackendError(f"{url}: a stream event is not JSON: "
                                               f"{data[:200]}") from None
                        if not isinstance(doc, dict):
                            raise BackendError(f"{url}: a stream event is not an object")
                        usage = doc.get("usage") or usage
                        for ch in doc.get("choices") or []:
                            piece = ch.get("text") if path == "/v1/completions" else \
                                (ch.get("delta") or {}).get("content")
                            if isinstance(piece, str) and piece:
                                parts.append(piece)
                                await on_text(piece)
                            if ch.get("finish_reason"):
                                finish = str(ch["finish_reason"])
                                stop_reason = ch.get("stop_reason")
                                has_reason = "stop_reason" in ch
            except httpx.TimeoutException as exc:
                raise BackendError(f"POST {url} timed out after {self._retry.timeout:g} s "
                                   f"({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise BackendError(f"POST {url} failed: connection failed "
                                   f"({type(exc).__name__}: {exc or 'no detail'})") from None
        tokens = (usage or {}).get("completion_tokens") if isinstance(usage, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise BackendError(f"{url}: the stream has no usage.completion_tokens (send "
                               "stream_options.include_usage); cannot count decoded tokens")
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        stopped = finish == "stop" and (stop_reason in stop if has_reason else True)
        return StepOutput(text="".join(parts), tokens=tokens, stopped_on_stop=stopped,
                          finish_reason=finish, seconds=time.perf_counter() - t0,
                          stop_reason=stop_reason if isinstance(stop_reason, str) else None,
                          prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int)
                          and not isinstance(prompt_tokens, bool) and prompt_tokens >= 0
                          else None)

    async def continuation_logprobs(self, messages: Sequence[Message],
                                    continuation: str) -> list[tuple[int, float]]:
        """Log-probability of each token of ``continuation`` after ``messages`` (prompt echo).

        Returns ``(character offset in continuation, logprob)`` per token; needs the completions API.
        """
        await self.setup()
        if self.api != "completions":
            raise BackendError(f"{self.name}: scoring text needs /v1/completions with a local "
                               "tokenizer (pass tokenizer=...)")
        prompt = self.render(messages)
        body = {"model": self.model, "prompt": prompt + continuation, "max_tokens": 1,
                "echo": True, "logprobs": 0, "temperature": 0.0, "add_special_tokens": False}
        doc = await self.http.post("/v1/completions", body)
        lp = _first_choice(doc, self.base_url).get("logprobs") or {}
        offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
        if not offsets or not values:
            raise BackendError(f"{self.base_url}: echo with logprobs is not supported by this server")
        start, end = len(prompt), len(prompt) + len(continuation)
        return [(int(o) - start, float(v)) for o, v in zip(offsets, values)
                if v is not None and start <= o < end]

    async def aclose(self) -> None:
        if self._stream_client is not None:
            await self._stream_client.aclose()
        await self.http.aclose()


def _first_choice(doc: Any, url: str) -> dict[str, Any]:
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise BackendError(f"{url}: the response has no choices: {str(doc)[:200]}")
    return choices[0]


def _pairs(tokens: Any, values: Any) -> tuple[tuple[str, float], ...] | None:
    """(token, logprob) pairs when both lists are well-formed, else None."""
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        return None
    out = []
    for t, v in zip(tokens, values):
        if not isinstance(t, str) or isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        out.append((t, float(v)))
    return tuple(out)
