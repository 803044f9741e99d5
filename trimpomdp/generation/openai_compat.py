"""Async client for OpenAI-compatible ``/v1/completions`` servers (vLLM, llama.cpp server).

Prompts travel as **token ids**: the chat (the release's ``continue_final_message``) is rendered
with the model's own chat template and tokenized once, so the server decodes after exactly the
tokens the client sent. The tokenizer is a local folder (given, or the server's model folder when
it is on this machine), or else the server's own ``POST /tokenize`` with the chat messages (vLLM:
its template, applied exactly); a template that trims message content (Llama-3 style ``| trim``)
drops the trailing ``"\n\n"`` of the continued message, which is then appended as tokens.

Server-side chat rendering (``/v1/chat/completions`` with ``continue_final_message``) is the
lossy fallback: used when forced (``api="chat"``, with a warning; refused for templates that trim
content, whose step separator it would lose) or, with a warning, under ``api="auto"`` when neither
a local tokenizer nor ``/tokenize`` is available (a non-vLLM server).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from trimpomdp.errors import BackendError, InputError
from trimpomdp.generation._http import AFFINITY_HEADER, JSONClient, RetryPolicy, affinity_headers
from trimpomdp.generation.prompting import render_continuation
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput

_APIS = ("auto", "completions", "chat")
#: ``tokenizer=`` value that tokenizes with the server's ``/tokenize`` even when a local
#: tokenizer could be found (``--weak-tokenizer server``)
SERVER_TOKENIZER = "server"
_LOG = logging.getLogger("trimpomdp")
#: a continued assistant message ending in the step separator: a template that trims message
#: content renders it without the trailing "\n\n"
_PROBE: list[Message] = [{"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Solution: 1\n\n"}]


def trims_final_message(rendered: str, final: str) -> bool:
    """Whether a rendering of a continued message lost its trailing whitespace (``| trim``)."""
    stripped = final.rstrip()
    return stripped != final and not rendered.endswith(final) and rendered.endswith(stripped)


def _is_client_error(exc: BackendError) -> bool:
    return "was rejected with HTTP 4" in str(exc)


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

    ``api='auto'``/``'completions'``: token-id prompts to ``/v1/completions``, tokenized with the
    given tokenizer, the server's model folder (vLLM's ``/v1/models`` ``root``) when it exists on
    this machine, or the server's ``/tokenize``; ``'auto'`` falls back to the chat endpoint (with
    a warning) when none of them is available (``tokenizer="server"``: always the server's
    ``/tokenize``). ``'chat'``: the server renders (lossy, warned).
    :attr:`tokenize` says which (``"local"``, ``"server"`` or None for chat).
    """

    def __init__(self, base_url: str, *, name: str = "model", model: str | None = None,
                 tokenizer: Any = None, api: str = "auto", concurrency: int = 8,
                 retry: RetryPolicy | None = None, api_key: str | None = None,
                 chat_template_kwargs: dict[str, Any] | None = None,
                 affinity_header: str | None = AFFINITY_HEADER) -> None:
        if api not in _APIS:
            raise InputError(f"The 'api' parameter of OpenAICompletionsBackend must be one of "
                             f"{_APIS}. Got {api!r} instead.")
        self.name = name
        self.model = model
        self.api = api
        #: passed to the chat template (e.g. {"enable_thinking": False}); vLLM's extension
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._tokenizer = tokenizer
        self.http = JSONClient(base_url, concurrency=concurrency, retry=retry, api_key=api_key,
                               affinity_header=affinity_header)
        self._api_key = api_key
        #: how prompts become token ids: "local" (a tokenizer here), "server" (its /tokenize),
        #: None (server-side chat rendering); set by setup()
        self.tokenize: str | None = None
        #: whether the model's chat template trims message content (None: not known)
        self.template_trims: bool | None = None
        self._suffix_ids: dict[str, list[int]] = {}
        self._retry = retry or RetryPolicy()
        self._stream_client: Any = None
        self._setup_lock = asyncio.Lock()
        self._ready = False

    @property
    def base_url(self) -> str:
        return self.http.base_url

    async def setup(self) -> None:
        """Resolve the served model name and how prompts become token ids (once)."""
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
            server_side = self._tokenizer == SERVER_TOKENIZER
            if server_side:
                self._tokenizer = None
            elif isinstance(self._tokenizer, (str, os.PathLike)):
                self._tokenizer = load_tokenizer(self._tokenizer)
            if self._tokenizer is None and self.api != "chat" and root and Path(root).is_dir() \
                    and not server_side:
                self._tokenizer = load_tokenizer(root)
            if self.api == "chat":
                await self._check_chat_rendering()
            elif self._tokenizer is not None:
                self.tokenize, self.api = "local", "completions"
                self.template_trims = self._local_trims()
            else:
                await self._probe_server_tokenize()
            self._ready = True

    def _local_trims(self) -> bool | None:
        try:
            text = self._tokenizer.apply_chat_template(
                list(_PROBE), tokenize=False, add_generation_prompt=False,
                continue_final_message=True, **self.chat_template_kwargs)
        except Exception:  # noqa: BLE001 - a template that cannot continue: unknown
            return None
        return trims_final_message(str(text), _PROBE[-1]["content"])

    async def _server_chat_ids(self, messages: Sequence[Message]) -> list[int]:
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages],
                                "add_generation_prompt": False, "continue_final_message": True,
                                "add_special_tokens": False}
        if self.chat_template_kwargs:
            body["chat_template_kwargs"] = self.chat_template_kwargs
        return _token_list(await self.http.post("/tokenize", body), self.base_url)

    async def _server_trims(self) -> bool:
        ids = await self._server_chat_ids(_PROBE)
        doc = await self.http.post("/detokenize", {"model": self.model, "tokens": ids})
        text = doc.get("prompt") if isinstance(doc, dict) else None
        if not isinstance(text, str):
            raise BackendError(f"{self.base_url}/detokenize: no field 'prompt': {str(doc)[:200]}")
        return trims_final_message(text, _PROBE[-1]["content"])

    async def _probe_server_tokenize(self) -> None:
        """No local tokenizer: token ids from the server's ``/tokenize``, if it has one."""
        try:
            self.template_trims = await self._server_trims()
        except BackendError as exc:
            if not _is_client_error(exc):
                raise
            if self.api == "completions":
                raise InputError(f"api='completions' needs a tokenizer for {self.name}: the "
                                 f"server's model folder is not on this machine and "
                                 f"{self.base_url} has no POST /tokenize ({exc}). Pass "
                                 f"--{self.name}-tokenizer DIR.", field="api") from None
            _LOG.warning("%s at %s: no local tokenizer and no POST /tokenize (%s); the server "
                         "renders each prompt from the chat messages (lossy: the template may "
                         "alter the continued message). Pass --%s-tokenizer DIR for exact "
                         "token-id prompts.", self.name, self.base_url, exc, self.name)
            self.api = "chat"
            return
        self.tokenize, self.api = "server", "completions"

    async def _check_chat_rendering(self) -> None:
        """``api='chat'``: refuse a template that trims content, else warn (lossy)."""
        trims = self._local_trims() if self._tokenizer is not None else None
        if trims is None:
            try:
                trims = await self._server_trims()
            except BackendError as exc:
                if not _is_client_error(exc):
                    raise
        self.template_trims = trims
        if trims:
            raise InputError(f"api='chat' cannot be used with {self.name} at {self.base_url}: "
                             "its chat template trims message content (Llama-3 style `| trim`), "
                             "so server-side rendering drops the step separator \"\\n\\n\" "
                             "before each continued step. Use --api auto (token-id prompts).",
                             field="api")
        _LOG.warning("%s at %s: --api chat: the server renders each prompt from the chat "
                     "messages (lossy%s); --api auto sends exact token-id prompts.", self.name,
                     self.base_url, "" if trims is False else
                     "; whether the template keeps the step separator could not be checked")

    async def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The continued chat as the token ids sent to ``/v1/completions`` (after setup)."""
        if self.tokenize == "local":
            enc = self._tokenizer(self.render(messages), add_special_tokens=False)
            return [int(t) for t in enc["input_ids"]]
        if self.tokenize != "server":
            raise BackendError(f"{self.name}: no tokenizer (api={self.api!r})")
        ids = await self._server_chat_ids(messages)
        final = messages[-1]["content"]
        tail = final[len(final.rstrip()):]
        if tail and self.template_trims:  # the template dropped it: append it as tokens
            if tail not in self._suffix_ids:
                doc = await self.http.post("/tokenize", {"model": self.model, "prompt": tail,
                                                         "add_special_tokens": False})
                self._suffix_ids[tail] = _token_list(doc, self.base_url)
            ids += self._suffix_ids[tail]
        return ids

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
            body["prompt"] = await self.prompt_ids(messages)
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

    async def _request_body(self, messages: Sequence[Message], stop: Sequence[str],
                            sampling: SamplingParams) -> tuple[str, dict[str, Any]]:
        body = self._sampling_body(stop, sampling)
        if self.api == "completions":
            body["prompt"] = await self.prompt_ids(messages)
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
        path, body = await self._request_body(messages, stop, sampling)
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
                async with self._stream_client.stream(
                        "POST", path, json=body,
                        headers=affinity_headers(self.http.affinity_header)) as resp:
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
        if self.tokenize != "local":
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


def _token_list(doc: Any, url: str) -> list[int]:
    toks = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(toks, list) or not all(isinstance(t, int) and not isinstance(t, bool)
                                             for t in toks):
        raise BackendError(f"{url}/tokenize: no list of token ids in field 'tokens': "
                           f"{str(doc)[:200]}")
    return list(toks)


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
