"""OpenAI response bodies and stream chunks of ``trimpomdp serve`` (plus the ``trim`` summary)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from trimpomdp.serve.budget import RouterChoice
from trimpomdp.serve.openai_schema import GenerationRequest
from trimpomdp.serve.session import AnswerSession, answer_logprobs, answer_text, finish_reason
from trimpomdp.serve.steps import StepEvent


@dataclass(slots=True)
class Answer:
    """One finished choice: the loop's record and the session that produced it."""

    record: dict[str, Any]
    session: AnswerSession
    max_steps: int

    @property
    def text(self) -> str:
        return answer_text(self.record, self.session.stops, self.session.separator)[0]

    def logprobs(self, endpoint: str) -> dict[str, Any] | None:
        if not self.session.logprobs:
            return None
        text = self.text
        return logprobs_body(endpoint, answer_logprobs(self.record, self.session, text,
                                                       self.session.separator))

    @property
    def finish(self) -> str:
        return finish_reason(self.record, self.session, self.max_steps)


def logprobs_body(endpoint: str, toks: list[tuple[str, float, int]]) -> dict[str, Any]:
    """OpenAI's ``logprobs`` object of a choice (chat: ``content``; completions: lists)."""
    if endpoint == "chat":
        return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8")),
                             "top_logprobs": []} for t, lp, _ in toks], "refusal": None}
    return {"tokens": [t for t, _, _ in toks], "token_logprobs": [lp for _, lp, _ in toks],
            "top_logprobs": None, "text_offset": [o for _, _, o in toks]}


def usage(answers: list[Answer]) -> dict[str, Any]:
    """OpenAI usage (+ TRIM's split). ``prompt_tokens`` is the prompt as the weak model saw it on
    its first call (upstream usage); ``upstream_prompt_tokens`` sums every call's prefill."""
    w = sum(int(a.record["weak_tokens"]) for a in answers)
    s = sum(int(a.record["strong_tokens"]) for a in answers)
    prompt = next((a.session.prompt_tokens for a in answers
                   if a.session.prompt_tokens is not None), 0)
    return {"prompt_tokens": prompt, "completion_tokens": w + s, "total_tokens": prompt + w + s,
            "weak_completion_tokens": w, "strong_completion_tokens": s,
            "discarded_weak_tokens": sum(int(a.record["discarded_weak_tokens"]) for a in answers),
            "upstream_prompt_tokens": sum(a.session.upstream_prompt_tokens for a in answers)}


def _summary(rec: dict[str, Any], trace: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"n_steps": rec["n_steps"], "n_regenerated": rec["n_regenerated"],
                            "end_reason": rec["end_reason"],
                            "timing": {k: round(v, 6) for k, v in rec["timing"].items()}}
    if trace:
        info["trace"] = [{k: v for k, v in s.items() if k != "prefix_scores"}
                         for s in rec["steps"]]
    return info


def trim_info(req: GenerationRequest, answers: list[Answer], choice: RouterChoice,
              task: str = "math") -> dict[str, Any]:
    """The ``trim`` object: which policy answered, and per answer steps, timing (and trace)."""
    info: dict[str, Any] = {"policy": choice.policy, "lambda": choice.lam,
                            "strong_token_share": choice.strong_token_share, "task": task}
    if len(answers) == 1:
        info.update(_summary(answers[0].record, req.trace))
    else:
        info["choices"] = [_summary(a.record, req.trace) for a in answers]
        info["n_steps"] = sum(a.record["n_steps"] for a in answers)
        info["n_regenerated"] = sum(a.record["n_regenerated"] for a in answers)
    if req.ignored:
        info["ignored_fields"] = list(req.ignored)
    return info


def full_response(req: GenerationRequest, rid: str, created: int, answers: list[Answer],
                  choice: RouterChoice, task: str = "math") -> dict[str, Any]:
    choices = []
    for i, a in enumerate(answers):
        if req.endpoint == "chat":
            choices.append({"index": i, "finish_reason": a.finish,
                            "logprobs": a.logprobs("chat"),
                            "message": {"role": "assistant", "content": a.text,
                                        "refusal": None, "tool_calls": None}})
        else:
            choices.append({"index": i, "finish_reason": a.finish,
                            "logprobs": a.logprobs("completions"), "text": a.text})
    obj = "chat.completion" if req.endpoint == "chat" else "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": req.model,
            "system_fingerprint": None, "choices": choices, "usage": usage(answers),
            "trim": trim_info(req, answers, choice, task)}


def chunk(req: GenerationRequest, rid: str, created: int, index: int = 0, *,
          text: str | None = None, role: bool = False, finish: str | None = None
          ) -> dict[str, Any]:
    if req.endpoint == "chat":
        delta: dict[str, Any] = {}
        if role:
            delta = {"role": "assistant", "content": ""}
        elif text is not None:
            delta = {"content": text}
        ch: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None,
                              "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        ch = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": req.model,
            "system_fingerprint": None, "choices": [ch]}


def step_chunk(req: GenerationRequest, rid: str, created: int, ev: StepEvent,
               separator: str = "\n\n") -> dict[str, Any]:
    if ev.kind == "delta":  # a piece of a strong rewrite, as it is decoded
        sep = separator if ev.first and ev.index > 0 else ""
        return chunk(req, rid, created, ev.choice, text=sep + ev.text)
    text = "" if ev.kind == "meta" else ev.text if ev.index == 0 else separator + ev.text
    out = chunk(req, rid, created, ev.choice, text=text)
    if req.logprobs:
        off = 0 if ev.index == 0 else len(separator)
        toks, pos = [], off
        for tok, lp in ev.logprobs or ():
            toks.append((tok, lp, pos))
            pos += len(tok)
        out["choices"][0]["logprobs"] = logprobs_body(req.endpoint, toks)
    out["trim"] = {"step": ev.index, "source": ev.source, "tokens": ev.tokens}
    return out


def sse(obj: Any) -> bytes:
    if isinstance(obj, bytes):
        return obj
    return b"data: " + json.dumps(obj, allow_nan=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
