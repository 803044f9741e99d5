"""One answer's view of the shared upstream clients: what a request asks for, applied around the
unchanged live loop (:func:`trimpomdp.generation.loop.solve_problem`) by wrapping its backends.

Per call of a weak or strong model, :class:`SessionBackend`

- puts the request's system messages and earlier turns in front of the loop's messages, so they
  reach the model through its chat template;
- caps the step at the tokens the whole answer has left (``max_tokens``), and at the request's
  per-step cap;
- derives a per-call seed from the request's ``seed`` (the choice, the role and the call number),
  so steps are not all sampled with one seed and a request is reproducible;
- applies ``stop``: the extra stop strings go upstream, and a step that reaches one (by the
  server's ``stop_reason``, or found in its text, also across the step boundary) is cut there and
  ends the answer;
- counts prompt tokens from the upstream usage, and reports accepted steps to a
  :class:`~trimpomdp.serve.steps.StepTap` when streaming.

Wrappers never close the shared clients.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trimpomdp.generation.prompting import FINAL_MARK, STEP_SEPARATOR
from trimpomdp.generation.protocols import Message, SamplingParams, StepOutput
from trimpomdp.serve.errors import APIError
from trimpomdp.serve.steps import StepTap


def call_seed(seed: int, choice: int, role: str, call: int) -> int:
    """A deterministic 31-bit seed per (request seed, choice, role, call number)."""
    h = hashlib.blake2b(f"{seed}:{choice}:{role}:{call}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "big") & 0x7FFFFFFF


def cut_at_stop(text: str, stops: Sequence[str], before: str = "") -> int | None:
    """Where ``text`` must be cut for the earliest stop string, given the ``before`` text it
    continues (a stop may start there); None if no stop occurs. May be 0."""
    if not stops:
        return None
    tail = before[-(max(len(s) for s in stops) - 1):] if before and max(map(len, stops)) > 1 \
        else ""
    hay = tail + text
    best = None
    for s in stops:
        i = hay.find(s)
        if i != -1 and (best is None or i < best):
            best = i
    if best is None:
        return None
    return max(0, best - len(tail))


def truncate_at_stops(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` cut before its first stop string, and whether one occurred."""
    i = cut_at_stop(text, stops)
    return (text, False) if i is None else (text[:i], True)


@dataclass(slots=True, kw_only=True)
class AnswerSession:
    """The state of one answer (one choice of a request) across its upstream calls."""

    index: int = 0
    conversation: tuple[Message, ...] = ()
    seed: int | None = None
    #: tokens the whole answer may still decode (None: no cap)
    remaining: int | None = None
    step_cap: int | None = None
    stops: tuple[str, ...] = ()
    #: joins the steps of the answer (the task profile's step separator)
    separator: str = STEP_SEPARATOR
    tap: StepTap | None = None
    calls: dict[str, int] = field(default_factory=lambda: {"weak": 0, "strong": 0})
    last: dict[str, StepOutput] = field(default_factory=dict)
    #: prompt tokens of the first weak call (the prompt as the model saw it) and of all calls
    prompt_tokens: int | None = None
    upstream_prompt_tokens: int = 0
    stop_hit: bool = False
    cap_hit: bool = False
    #: ask the upstreams for token log-probabilities (the request's ``logprobs``)
    logprobs: bool = False
    #: stream the strong model's rewrites to the tap as they are decoded
    stream_tokens: bool = False
    #: every upstream call's (role, output), in order
    outputs: list[tuple[str, StepOutput]] = field(default_factory=list)

    def wrap(self, backend: Any, role: str) -> SessionBackend | None:
        return None if backend is None else SessionBackend(backend, self, role)


class SessionBackend:
    """A per-answer view of a shared generation backend (see the module docstring)."""

    def __init__(self, inner: Any, session: AnswerSession, role: str) -> None:
        self.inner = inner
        self.session = session
        self.role = role
        self.name = getattr(inner, "name", role)

    async def generate_step(self, messages: Sequence[Message], *, stop: Sequence[str],
                            sampling: SamplingParams, logprobs: bool = False) -> StepOutput:
        s = self.session
        if self.role == "weak" and s.tap is not None:
            s.tap.observe_prefix(messages)
        call = s.calls[self.role]
        s.calls[self.role] = call + 1
        step_cap = min(sampling.max_tokens, s.step_cap or sampling.max_tokens)
        limit = step_cap if s.remaining is None else min(step_cap, s.remaining)
        if limit <= 0:  # the whole answer's budget is spent: nothing more is decoded
            s.cap_hit = True
            out = StepOutput(text="", tokens=0, stopped_on_stop=False, finish_reason="length",
                             token_logprobs=() if s.logprobs else None)
            return self._done(out)
        changes: dict[str, Any] = {"max_tokens": limit}
        if s.seed is not None:
            changes["seed"] = call_seed(s.seed, s.index, self.role, call)
        msgs = [*s.conversation, *messages]
        stops = tuple(dict.fromkeys([*stop, *s.stops]))
        params = dataclasses.replace(sampling, **changes)
        streamed: list[int] = []
        if s.stream_tokens and self.role == "strong" and s.tap is not None and \
                not s.logprobs and hasattr(self.inner, "stream_step"):
            out = await self.inner.stream_step(msgs, stop=stops, sampling=params,
                                               on_text=self._streamer(messages, streamed))
        else:
            out = await self.inner.generate_step(msgs, stop=stops, sampling=params,
                                                 logprobs=logprobs or s.logprobs)
        if s.logprobs and out.token_logprobs is None:
            raise APIError(400, f"'logprobs' cannot be served: the {self.role} model's server "
                           "returned no token log-probabilities (vLLM does; check the upstream, "
                           "or drop 'logprobs').", param="logprobs")
        if s.remaining is not None:
            s.remaining -= out.tokens
            if out.finish_reason == "length" and limit < step_cap:
                s.cap_hit = True
        if out.prompt_tokens is not None:
            s.upstream_prompt_tokens += out.prompt_tokens
            if self.role == "weak" and s.prompt_tokens is None:
                s.prompt_tokens = out.prompt_tokens
        if s.stops:
            out = self._apply_stops(messages, out)
        if streamed and s.tap is not None and len(out.text) > streamed[0]:
            s.tap.stream_delta(out.text[streamed[0]:])  # what the stop hold-back kept
        return self._done(out)

    def _streamer(self, messages: Sequence[Message], sent: list[int]) -> Any:
        """``on_text`` for a streamed rewrite: passes text on to the tap, holding back enough to
        cut at a stop string that is still being decoded."""
        s = self.session
        hold = max((len(x) for x in s.stops), default=1) - 1
        before = messages[-1]["content"] if messages else ""
        buf: list[str] = []
        sent.append(0)

        async def on_text(piece: str) -> None:
            buf.append(piece)
            text = "".join(buf)
            cut = cut_at_stop(text, s.stops, before) if s.stops else None
            upto = cut if cut is not None else max(sent[0], len(text) - hold)
            if upto > sent[0] and s.tap is not None:
                s.tap.stream_delta(text[sent[0]:upto])
                sent[0] = upto

        return on_text

    def _apply_stops(self, messages: Sequence[Message], out: StepOutput) -> StepOutput:
        s = self.session
        hit = out.stop_reason is not None and out.stop_reason in s.stops
        before = messages[-1]["content"] if messages else ""
        cut = cut_at_stop(out.text, s.stops, before)
        if cut is not None:
            hit = True
            text = out.text[:cut]
        else:
            text = out.text
        if not hit:
            return out
        s.stop_hit = True
        lps = out.token_logprobs
        if lps is not None and len(text) < len(out.text):
            lps = _tokens_within(lps, len(text))
        return dataclasses.replace(out, text=text, stopped_on_stop=False, finish_reason="stop",
                                   token_logprobs=lps)

    def _done(self, out: StepOutput) -> StepOutput:
        s = self.session
        s.last[self.role] = out
        s.outputs.append((self.role, out))
        if s.tap is not None:
            s.tap.observe_output(self.role, out)
        return out

    async def aclose(self) -> None:
        """The shared client stays open (the server closes it on shutdown)."""


def _tokens_within(pairs: Sequence[tuple[str, float]], n_chars: int
                   ) -> tuple[tuple[str, float], ...]:
    """The leading tokens whose text fits in ``n_chars`` characters."""
    out, used = [], 0
    for tok, lp in pairs:
        if used >= n_chars:
            break
        out.append((tok, lp))
        used += len(tok)
    return tuple(out)


def step_outputs(record: dict[str, Any], session: AnswerSession) -> list[StepOutput | None]:
    """The upstream output that wrote each step of the record (the draft, or the rewrite)."""
    outs = session.outputs
    i, found = 0, []
    for rec in record["steps"]:
        while i < len(outs) and not (outs[i][0] == "weak" and outs[i][1].text == rec["draft"]):
            i += 1
        chosen = outs[i][1] if i < len(outs) else None
        i += 1
        if rec["source"] == "strong":
            while i < len(outs) and outs[i][0] != "strong":
                i += 1
            chosen = outs[i][1] if i < len(outs) else None
            i += 1
        found.append(chosen)
    return found


def answer_logprobs(record: dict[str, Any], session: AnswerSession, text: str,
                    separator: str) -> list[tuple[str, float, int]]:
    """(token, logprob, character offset in ``text``) for the answer's tokens; each token's
    log-probability is under the model that wrote its step. Separators are not tokens."""
    out: list[tuple[str, float, int]] = []
    pos, first = 0, True
    for rec, o in zip(record["steps"], step_outputs(record, session)):
        if not rec["text"]:
            continue
        if not first:
            pos += len(separator)
        first = False
        start = pos
        for tok, lp in (o.token_logprobs or ()) if o is not None else ():
            if pos >= len(text):
                break
            out.append((tok, lp, pos))
            pos += len(tok)
        pos = start + len(rec["text"])
    return out


def answer_text(record: dict[str, Any], stops: Sequence[str],
                separator: str = STEP_SEPARATOR) -> tuple[str, bool]:
    """The answer of a loop record: its non-empty steps joined, cut at the first stop string."""
    text = separator.join(s["text"] for s in record["steps"] if s["text"])
    return truncate_at_stops(text, stops)


def finish_reason(record: dict[str, Any], session: AnswerSession, max_steps: int) -> str:
    """OpenAI's ``finish_reason``: ``stop`` when the answer ended (its end rule, EOS, a stop
    string), ``length`` when a limit cut it (the answer's token cap, a step's token limit or the
    step limit)."""
    if session.stop_hit:
        return "stop"
    if session.cap_hit or record["end_reason"] in ("max_steps", "length"):
        return "length"
    steps = record["steps"]
    if not steps:
        return "stop"
    last = steps[-1]
    out = session.last.get(last["source"])
    finish = last.get("strong_finish") if last["source"] == "strong" else last.get("draft_finish")
    if finish == "length":
        return "length"
    if record["end_reason"] == "final_step" and len(steps) >= max_steps and out is not None \
            and out.stopped_on_stop and FINAL_MARK not in last["text"]:
        return "length"  # the step limit made this step the last one
    return "stop"
