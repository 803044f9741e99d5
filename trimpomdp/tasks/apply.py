"""A task profile applied around the unchanged live loop, by wrapping its backends and run log.

The loop writes the release's messages (the math instruction, ``"Solution: "``, steps joined by a
blank line); :class:`ProfileBackend` rewrites them into the profile's (system message, user
template, prefix, separator) before they reach the model, sends the profile's separator as the
stop string, and marks a step final under the profile's rule. :class:`RegradingLog` re-extracts
and re-grades each finished record with the profile before it is written. The ``math`` profile is
the release's and needs neither.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from trimpomdp.evaluation.grading import is_equivalent
from trimpomdp.generation.prompting import INSTRUCTION, SOLUTION_PREFIX, STEP_SEPARATOR
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput
from trimpomdp.tasks.profile import TaskProfile

_QUESTION = INSTRUCTION + "\nQuestion: "


def is_release(profile: TaskProfile) -> bool:
    """True for the release's math profile (no rewriting needed)."""
    return profile.name == "math" and profile.user_template.startswith(INSTRUCTION) and \
        profile.solution_prefix == SOLUTION_PREFIX and profile.step_separator == STEP_SEPARATOR \
        and profile.final_rule == "boxed" and not profile.system


def rewrite(profile: TaskProfile, messages: Sequence[Message]) -> list[dict[str, str]]:
    """The loop's [..., user, assistant] messages in the profile's format."""
    msgs = [dict(m) for m in messages]
    if len(msgs) >= 2 and msgs[-1]["role"] == "assistant" and msgs[-2]["role"] == "user":
        user, asst = msgs[-2]["content"], msgs[-1]["content"]
        question = user.removeprefix(_QUESTION)
        body = asst.removeprefix(SOLUTION_PREFIX)
        steps = body.split(STEP_SEPARATOR)[:-1] if body else []
        msgs[-2]["content"] = profile.user_message(question)
        msgs[-1]["content"] = profile.solution_prefix + "".join(
            s + profile.step_separator for s in steps)
    if profile.system:
        if msgs and msgs[0]["role"] == "system":
            msgs[0]["content"] = profile.system + "\n\n" + msgs[0]["content"]
        else:
            msgs.insert(0, {"role": "system", "content": profile.system})
    return msgs


class ProfileBackend:
    """A generation backend speaking the profile's format (shared; holds no per-call state)."""

    def __init__(self, inner: Any, profile: TaskProfile) -> None:
        self.inner = inner
        self.profile = profile
        self.name = getattr(inner, "name", "model")

    async def generate_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                            sampling: SamplingParams, logprobs: bool = False) -> StepOutput:
        p = self.profile
        stops = [p.step_separator if s == STEP_SEPARATOR else s for s in stop]
        out = await self.inner.generate_step(rewrite(p, messages), stop=stops, sampling=sampling,
                                             logprobs=logprobs)
        if out.stopped_on_stop and p.is_final(out.text, True):
            out = dataclasses.replace(out, stopped_on_stop=False)  # the profile's end rule
        return out

    async def stream_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                          sampling: SamplingParams, on_text: Any) -> StepOutput:
        p = self.profile
        stops = [p.step_separator if s == STEP_SEPARATOR else s for s in stop]
        out = await self.inner.stream_step(rewrite(p, messages), stop=stops, sampling=sampling,
                                           on_text=on_text)
        if out.stopped_on_stop and p.is_final(out.text, True):
            out = dataclasses.replace(out, stopped_on_stop=False)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def aclose(self) -> None:
        await self.inner.aclose()


def regrade(profile: TaskProfile, record: dict[str, Any]) -> dict[str, Any]:
    """A finished record with the profile's answer extraction and grader (and separator)."""
    if record.get("status") != "ok" or is_release(profile):
        return record
    rec = dict(record)
    solution = profile.step_separator.join(s["text"] for s in rec.get("steps", []))
    rec["solution"] = solution
    answer = profile.extract_answer(solution)
    rec["answer"] = answer
    gold = rec.get("gold")
    if profile.grader == "none" or gold in (None, ""):
        rec["correct"] = None
    elif answer is None:
        rec["correct"] = False
    elif profile.grader == "exact":
        rec["correct"] = answer.strip() == str(gold).strip()
    else:
        rec["correct"] = is_equivalent(answer, str(gold))
    rec["task"] = profile.name
    return rec


class RegradingLog:
    """A run log view that regrades each record with the profile before appending it."""

    def __init__(self, log: Any, profile: TaskProfile) -> None:
        self.log = log
        self.profile = profile

    @property
    def finished_ids(self) -> Any:
        return self.log.finished_ids

    def append(self, record: dict[str, Any]) -> None:
        self.log.append(regrade(self.profile, record))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)
