"""Per-problem PRM scoring sessions: each new step is scored without recomputing its prefix.

The loop used to send the question and *all* steps to the PRM for every new draft, so the PRM's
work grew quadratically with the number of steps. A causal PRM's score at a step marker depends
only on the tokens before it, so the scores of the steps a previous call has seen are known and
only the new step needs computing. :func:`open_session` gives the loop one
:class:`~trimpomdp.generation.protocols.PRMSession` per problem:

* scorers with a ``session(question)`` method (``VLLMPoolingPRM``: last-token pooling served from
  vLLM's prefix cache; ``HFLocalPRM``: the problem's own KV cache) compute only the new tokens;
* any other :class:`~trimpomdp.generation.protocols.PRMScorer` (replay, self-scoring, a plain
  client) gets :class:`RescoreSession`, which calls ``score_steps`` on the whole prefix as before.

Every session's answer is checked (:class:`CheckedSession`): one finite probability per step,
else a BackendError naming the PRM.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from trimpomdp.errors import BackendError
from trimpomdp.generation.protocols import PRMScorer, PRMSession


def check_step_scores(scores: Any, n_steps: int, where: str) -> list[float]:
    """A PRM's answer as ``n_steps`` probabilities; anything else is a BackendError naming it."""
    try:
        vals = [float(s) for s in scores]
    except (TypeError, ValueError):
        raise BackendError(f"the PRM {where} returned non-numeric step scores: "
                           f"{str(scores)[:120]}") from None
    if len(vals) != n_steps:
        raise BackendError(f"the PRM {where} returned {len(vals)} scores for {n_steps} steps")
    for i, v in enumerate(vals):
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise BackendError(f"the PRM {where} returned a step score of {v!r} for step {i}; "
                               "a probability in [0, 1] was expected")
    return vals


class ScoreMemo:
    """Scores already known for a problem, by step position.

    A causal PRM's score of step ``i`` is a function of ``steps[:i + 1]``: after a call on
    ``steps``, any later call whose first ``k`` steps are the same knows those ``k`` scores.
    """

    __slots__ = ("scores", "steps")

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.scores: list[float] = []

    def known(self, steps: Sequence[str]) -> int:
        """How many leading scores of ``steps`` are known."""
        k, n = 0, min(len(steps), len(self.steps))
        while k < n and steps[k] == self.steps[k]:
            k += 1
        return k

    def update(self, steps: Sequence[str], scores: Sequence[float]) -> None:
        self.steps = list(steps)
        self.scores = [float(s) for s in scores]

    def clear(self) -> None:
        self.steps, self.scores = [], []


class RescoreSession:
    """The fallback session: every call re-scores the whole prefix with ``score_steps``."""

    def __init__(self, prm: PRMScorer, question: str) -> None:
        self.prm = prm
        self.question = question

    async def score(self, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        return list(await self.prm.score_steps(self.question, list(steps)))

    async def aclose(self) -> None:
        return None


class CheckedSession:
    """A session whose answers are checked: one finite score in [0, 1] per step."""

    def __init__(self, inner: PRMSession, where: str) -> None:
        self.inner = inner
        self.where = where

    async def score(self, steps: Sequence[str]) -> list[float]:
        try:
            scores = await self.inner.score(steps)
        except (asyncio.CancelledError, BackendError):
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure names the PRM
            raise BackendError(f"the PRM {self.where} sent an unusable answer "
                               f"({type(exc).__name__}: {exc})") from None
        return check_step_scores(scores, len(steps), self.where)

    async def aclose(self) -> None:
        await self.inner.aclose()


def open_session(prm: Any, question: str) -> PRMSession:
    """This problem's scoring session: incremental where ``prm`` can, full re-scoring otherwise.

    ``prm`` may be a wrapper (``wiring.GuardedPRM`` forwards unknown attributes to its inner
    scorer); its ``where`` names the PRM in error messages.
    """
    where = str(getattr(prm, "where", None) or type(prm).__name__)
    factory = getattr(prm, "session", None)
    if callable(factory):
        return CheckedSession(factory(question), where)
    return CheckedSession(RescoreSession(prm, question), where)


__all__ = ["CheckedSession", "RescoreSession", "ScoreMemo", "check_step_scores", "open_session"]
