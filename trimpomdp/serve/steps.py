"""Accepted steps as they happen, from the unchanged live loop (:func:`solve_problem`).

The loop sends the weak model the accepted prefix ("Solution: " + steps, each ending in "\\n\\n")
at every step, so a thin wrapper around the weak backend sees step ``t`` the moment step ``t + 1``
is drafted; a wrapper around the strong backend tells whether that step was rewritten. The last
step comes from the loop's record. Wrappers are per request and never close the shared clients.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trimpomdp.generation.prompting import SOLUTION_PREFIX
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput

STEP_END = "\n\n"


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One accepted step: its index, text, which model wrote it and its decoded tokens."""

    index: int
    text: str
    source: str
    tokens: int


class StepTap:
    """Collects accepted steps into ``queue`` (``None`` is never put: the caller ends the stream)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[StepEvent] = asyncio.Queue()
        self.emitted: list[StepEvent] = []
        self._seen = len(SOLUTION_PREFIX)
        self._draft_tokens = 0
        self._strong: StepOutput | None = None

    def _observe_prefix(self, messages: Sequence[Message]) -> None:
        content = messages[-1]["content"]
        if len(content) <= self._seen:
            return
        delta = content[self._seen:]
        self._seen = len(content)
        for part in delta.split(STEP_END)[:-1]:  # one accepted step per call in practice
            strong, self._strong = self._strong, None
            ev = StepEvent(len(self.emitted), part, "strong" if strong else "weak",
                           strong.tokens if strong else self._draft_tokens)
            self.emitted.append(ev)
            self.queue.put_nowait(ev)

    def finish(self, record: dict[str, Any]) -> list[StepEvent]:
        """Emit the steps the record holds beyond those already seen (the final one)."""
        rest = []
        for rec in record["steps"][len(self.emitted):]:
            tokens = rec.get("strong_tokens") if rec["source"] == "strong" else rec["draft_tokens"]
            ev = StepEvent(len(self.emitted), rec["text"], rec["source"], int(tokens or 0))
            self.emitted.append(ev)
            rest.append(ev)
        return rest


class TappedBackend:
    """A per-request view of a shared backend that reports accepted steps to a :class:`StepTap`."""

    def __init__(self, inner: Any, tap: StepTap, role: str) -> None:
        self.inner = inner
        self.tap = tap
        self.role = role
        self.name = getattr(inner, "name", role)

    async def generate_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                            sampling: SamplingParams, logprobs: bool = False) -> StepOutput:
        if self.role == "weak":
            self.tap._observe_prefix(messages)
        out = await self.inner.generate_step(messages, stop=stop, sampling=sampling,
                                             logprobs=logprobs)
        if self.role == "weak":
            self.tap._draft_tokens = out.tokens
        else:
            self.tap._strong = out
        return out

    async def aclose(self) -> None:
        """The shared client stays open (the server closes it on shutdown)."""
