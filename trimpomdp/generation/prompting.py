"""The release's prompts: the weak/strong chat (continued "Solution:" message) and the PRM chat.

DESIGN §1: the generator sees the instruction and question as the user message and continues the
assistant message ``"Solution: " + "\\n\\n".join(steps) + "\\n\\n"``; the PRM sees the instruction as
system message, the question as user message and the steps, each followed by ``<extra_0>``.
"""
from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

from trimpomdp.generation.protocols import Message

INSTRUCTION = ("Solve the following math problem step by step, given in LaTeX format, clearly and "
               "concisely, and present the final answer as \\boxed{X}, where X is the fully "
               "simplified solution.")
STEP_SEPARATOR = "\n\n"
SOLUTION_PREFIX = "Solution: "
PRM_STEP_MARKER = "<extra_0>"
FINAL_MARK = "\\boxed{"


def assistant_prefix(steps: Sequence[str]) -> str:
    """The assistant message the generator continues: "Solution: " then the steps, "\\n\\n"-ended."""
    return SOLUTION_PREFIX + "".join(s + STEP_SEPARATOR for s in steps)


def generation_messages(question: str, steps: Sequence[str]) -> list[dict[str, str]]:
    """User message (instruction + question) and the partial assistant message to continue."""
    return [{"role": "user", "content": f"{INSTRUCTION}\nQuestion: {question}"},
            {"role": "assistant", "content": assistant_prefix(steps)}]


def prm_messages(question: str, steps: Sequence[str], *,
                 instruction: str = INSTRUCTION) -> list[dict[str, str]]:
    """Qwen2.5-Math-PRM chat: system instruction, user question, steps each followed by a marker.

    ``instruction`` is a task profile's ``prm_instruction`` (default: the release's).
    """
    body = "".join(s.replace(PRM_STEP_MARKER, "") + PRM_STEP_MARKER for s in steps)
    return [{"role": "system", "content": instruction},
            {"role": "user", "content": question},
            {"role": "assistant", "content": body}]


def render_continuation(tokenizer: Any, messages: Sequence[Message],
                        **template_kwargs: Any) -> str:
    """Render ``messages`` with the tokenizer's chat template, leaving the last message open.

    Uses ``continue_final_message`` and then restores any trailing whitespace of the final message
    that a template may strip, so the model continues exactly after ``"\\n\\n"``.
    ``template_kwargs`` (e.g. ``enable_thinking``) go to the template.
    """
    text = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=False, continue_final_message=True,
                                         **template_kwargs)
    final = messages[-1]["content"]
    stripped = final.rstrip()
    if not text.endswith(final) and text.endswith(stripped):
        text += final[len(stripped):]
    return text


def render_chat(tokenizer: Any, messages: Sequence[Message]) -> str:
    """Render a complete chat (the PRM's input) with the tokenizer's template."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=False)


def is_final_step(text: str, stopped_on_stop: bool) -> bool:
    """A step ends the solution if it holds ``\\boxed{`` or generation did not stop on "\\n\\n"."""
    return FINAL_MARK in text or not stopped_on_stop


_PUNCT = set(string.punctuation) | set(string.whitespace)


def is_punctuation_only(text: str) -> bool:
    """True for steps the release drops (nothing but punctuation and whitespace)."""
    return all(ch in _PUNCT for ch in text)
