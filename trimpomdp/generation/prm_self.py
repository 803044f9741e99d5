"""Self-scoring: step scores from a model's own log-probabilities (no PRM needed).

The score of a step is the geometric-mean token probability, exp(mean log p), of its tokens given
the prompt and the steps before it, read from one prompt-echo request.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from trimpomdp.errors import BackendError
from trimpomdp.generation.prompting import STEP_SEPARATOR, generation_messages


class SelfScorePRM:
    """A :class:`PRMScorer` from a backend with ``continuation_logprobs`` (the OpenAI client)."""

    def __init__(self, backend: object) -> None:
        if not hasattr(backend, "continuation_logprobs"):
            raise BackendError(f"{type(backend).__name__} cannot return prompt log-probabilities; "
                               "self-scoring needs OpenAICompletionsBackend or HFLocalBackend")
        self.backend = backend

    async def score_steps(self, question: str, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        text = STEP_SEPARATOR.join(steps)
        spans, pos = [], 0
        for s in steps:
            spans.append((pos, pos + len(s)))
            pos += len(s) + len(STEP_SEPARATOR)
        lps = await self.backend.continuation_logprobs(generation_messages(question, []), text)
        sums, counts = [0.0] * len(steps), [0] * len(steps)
        i = 0
        for off, lp in lps:
            if isinstance(lp, bool) or not isinstance(lp, int | float) or not lp <= 0.0:
                where = getattr(getattr(self.backend, "http", None), "base_url", None) or \
                    type(self.backend).__name__
                raise BackendError(f"self-scoring PRM at {where}: a token "
                                   f"log-probability must be a number <= 0. Got {lp!r} instead.")
            while i + 1 < len(spans) and off >= spans[i + 1][0]:
                i += 1
            sums[i] += lp
            counts[i] += 1
        return [math.exp(sums[k] / counts[k]) if counts[k] else 1.0 for k in range(len(steps))]

    async def aclose(self) -> None:
        """The backend is owned by the caller."""
