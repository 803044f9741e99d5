"""Interfaces of the live loop: generation backends, PRM scorers and step routers.

Small structural Protocols so that any server client, local model or recorded replay plugs in.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from trimpomdp.errors import InputError

#: a chat message: {"role": ..., "content": ...}
Message = Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingParams:
    """Decoding settings of one step (the release's: T = 0.7, top-p 0.8, top-k 20, 2,048 tokens)."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    max_tokens: int = 2048
    seed: int | None = None
    #: OpenAI's repetition penalties, passed to servers that take them (0: off)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    def __post_init__(self) -> None:
        if not (self.temperature >= 0.0 and math.isfinite(self.temperature)):
            raise InputError(f"The 'temperature' parameter of SamplingParams must be a float >= 0. "
                             f"Got {self.temperature!r} instead.")
        if not (0.0 < self.top_p <= 1.0):
            raise InputError(f"The 'top_p' parameter of SamplingParams must be in (0, 1]. Got "
                             f"{self.top_p!r} instead.")
        if self.top_k < -1 or self.top_k == 0:
            raise InputError(f"The 'top_k' parameter of SamplingParams must be -1 (off) or >= 1. "
                             f"Got {self.top_k!r} instead.")
        if self.max_tokens < 1:
            raise InputError(f"The 'max_tokens' parameter of SamplingParams must be >= 1. Got "
                             f"{self.max_tokens!r} instead.")
        for name in ("frequency_penalty", "presence_penalty"):
            v = getattr(self, name)
            if not (-2.0 <= v <= 2.0):
                raise InputError(f"The '{name}' parameter of SamplingParams must be in [-2, 2]. "
                                 f"Got {v!r} instead.")


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutput:
    """One generated step: its text, decoded-token count and why generation stopped."""

    text: str
    tokens: int
    #: True if generation ended on the stop string ("\n\n"); False for EOS or the length limit
    stopped_on_stop: bool
    finish_reason: str = "stop"
    #: per-token log-probabilities when the backend was asked for them
    logprobs: tuple[float, ...] | None = None
    seconds: float = 0.0
    #: the stop string that ended generation, when the server says (vLLM's ``stop_reason``)
    stop_reason: str | None = None
    #: prompt tokens the server prefilled for this call (its ``usage.prompt_tokens``), if reported
    prompt_tokens: int | None = None
    #: (token text, log-probability) per decoded token, when asked for and the server gives them
    token_logprobs: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            raise InputError(f"StepOutput.tokens must be >= 0. Got {self.tokens!r} instead.")


@runtime_checkable
class GenerationBackend(Protocol):
    """A model that continues a chat's final assistant message by one step."""

    name: str

    async def generate_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                            sampling: SamplingParams, logprobs: bool = False) -> StepOutput: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PRMScorer(Protocol):
    """Scores every step of a partial solution: one value in [0, 1] per step."""

    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PRMSession(Protocol):
    """One problem's PRM scoring state (``IncrementalPRMScorer.session(question)``).

    ``score(steps)`` returns one score per step, like ``PRMScorer.score_steps``; between calls the
    steps grow by one (a draft) or end in a different last step (a rejected draft replaced), and
    the session computes only what the previous calls did not: for a causal PRM the score of step
    ``i`` depends on the question and ``steps[:i + 1]`` only.
    """

    async def score(self, steps: Sequence[str]) -> list[float]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class IncrementalPRMScorer(PRMScorer, Protocol):
    """A :class:`PRMScorer` that can also open a per-problem :class:`PRMSession`."""

    def session(self, question: str) -> PRMSession: ...


class RouteDecision(Protocol):
    """What a router returns: ``action`` (a RouteAction) plus optional belief/q/reason."""

    @property
    def action(self) -> Any: ...


@runtime_checkable
class Router(Protocol):
    """Per-problem step router (``trimpomdp.routing.router.StepRouter`` has this shape)."""

    def reset(self, info: Any = None) -> Any: ...

    def decide(self, score: float, tokens: int, step: int, final: bool = False) -> Any: ...
