"""Accepted steps as they happen, from the unchanged live loop (:func:`solve_problem`).

The loop sends the weak model the accepted prefix ("Solution: " + steps, each ending in "\\n\\n")
at every step, so the per-answer backend wrapper (:mod:`trimpomdp.serve.session`) sees step ``t``
the moment step ``t + 1`` is drafted; the strong model's answer tells whether that step was
rewritten. The last step comes from the loop's record.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trimpomdp.generation.prompting import SOLUTION_PREFIX, STEP_SEPARATOR
from trimpomdp.generation.protocols import Message, StepOutput


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One accepted step of answer ``choice``: its index, text, source model and tokens."""

    index: int
    text: str
    source: str
    tokens: int
    choice: int = 0
    #: (token, logprob) of the step, when the request asked for them
    logprobs: tuple[tuple[str, float], ...] | None = None
    #: "step" (a whole accepted step), "delta" (a piece of a strong rewrite as it is decoded),
    #: "meta" (the end of a streamed step: its source and tokens, no text)
    kind: str = "step"
    #: a delta that starts its step (the separator goes before it)
    first: bool = False


class StepTap:
    """Puts the accepted steps of answer ``choice`` on ``queue`` (shared by the answers of one
    request); the caller ends the stream."""

    def __init__(self, queue: asyncio.Queue[StepEvent] | None = None, choice: int = 0) -> None:
        self.queue: asyncio.Queue[StepEvent] = queue if queue is not None else asyncio.Queue()
        self.choice = choice
        self.emitted: list[StepEvent] = []
        self._n_steps = 0
        self._seen = len(SOLUTION_PREFIX)
        self._draft: StepOutput | None = None
        self._strong: StepOutput | None = None
        self._streaming = False

    def _emit(self, text: str, source: str, tokens: int, out: StepOutput | None
              ) -> StepEvent | None:
        self._n_steps += 1
        streamed, self._streaming = self._streaming, False
        if not text:
            return None  # an empty last step (cut by a stop string): nothing to send
        ev = StepEvent(len(self.emitted), text, source, tokens, self.choice,
                       None if out is None else out.token_logprobs,
                       kind="meta" if streamed else "step")
        self.emitted.append(ev)
        return ev

    def observe_prefix(self, messages: Sequence[Message]) -> None:
        content = messages[-1]["content"]
        if len(content) <= self._seen:
            return
        delta = content[self._seen:]
        self._seen = len(content)
        for part in delta.split(STEP_SEPARATOR)[:-1]:  # one accepted step per call in practice
            strong, self._strong = self._strong, None
            out = strong or self._draft
            ev = self._emit(part, "strong" if strong else "weak", out.tokens if out else 0, out)
            if ev is not None:
                self.queue.put_nowait(ev)

    def stream_delta(self, text: str) -> None:
        """A piece of the current step's strong rewrite, sent before the step is recorded (a
        rewrite is always kept)."""
        first = not self._streaming
        self._streaming = True
        self.queue.put_nowait(StepEvent(len(self.emitted), text, "strong", 0, self.choice,
                                        kind="delta", first=first))

    def observe_output(self, role: str, out: StepOutput) -> None:
        if role == "weak":
            self._draft = out
            self._strong = None
        else:
            self._strong = out

    def finish(self, record: dict[str, Any]) -> list[StepEvent]:
        """The steps the record holds beyond those already seen (the final one)."""
        rest = []
        for rec in record["steps"][self._n_steps:]:
            tokens = rec.get("strong_tokens") if rec["source"] == "strong" else rec["draft_tokens"]
            out = self._strong if rec["source"] == "strong" else self._draft
            ev = self._emit(rec["text"], rec["source"], int(tokens or 0), out)
            if ev is not None:
                rest.append(ev)
        return rest
