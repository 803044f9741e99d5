"""Task profiles: what a task asks of the models, in one small documented value (and TOML file).

A profile fixes the generator's prompt (system message, user template, the assistant prefix it
continues), the step separator, the final-step rule, answer extraction and grading, the step
horizon and chat-template switches such as a thinking mode. Built-ins:

- ``math`` — the TRIM release's (DESIGN §1): the math instruction, ``"Solution: "``, steps split
  at a blank line, a step holding ``\\boxed{`` ends the solution, math-equivalence grading,
  30 steps;
- ``general`` — any question: no instruction, no prefix, the model's end of sequence ends the
  answer, no grader;
- ``thinking`` — a thinking model (Qwen3-style ``enable_thinking``): long chains of thought,
  128 steps, the end of sequence ends the answer, no grader.

A TOML profile (``--task FILE.toml``) may start from a built-in (``base = "general"``) and set any
field below; unknown keys are errors naming the file and key::

    base = "general"
    name = "support-bot"
    system = "You are a support agent."
    user_template = "{question}"
    final_rule = "regex:^Answer:"
    max_steps = 60
    [chat_template_kwargs]
    enable_thinking = false
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trimpomdp.errors import InputError
from trimpomdp.evaluation.grading import last_boxed

MATH_INSTRUCTION = ("Solve the following math problem step by step, given in LaTeX format, clearly "
                    "and concisely, and present the final answer as \\boxed{X}, where X is the "
                    "fully simplified solution.")
FINAL_RULES = ("boxed", "eos")  # or "regex:PATTERN"
EXTRACTIONS = ("boxed", "none")  # or "regex:PATTERN" (group 1, else the whole match)
GRADERS = ("math", "exact", "none")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskProfile:
    """One task's prompts and rules (see the module docstring for the built-ins)."""

    name: str
    #: system message put before the conversation ("" for none)
    system: str = ""
    #: the generator's user message; ``{question}`` is replaced by the question (other braces
    #: are literal)
    user_template: str = "{question}"
    #: text the assistant message starts with, before the first step
    solution_prefix: str = ""
    step_separator: str = "\n\n"
    #: when a step ends the answer: "boxed" (holds \\boxed{), "eos" (the model stopped by
    #: itself, not at the separator), or "regex:PATTERN" (the step matches); a step that ends
    #: without reaching the separator always ends the answer
    final_rule: str = "eos"
    answer_extraction: str = "none"
    grader: str = "none"
    #: the step horizon (the routing policy's model must cover it)
    max_steps: int = 30
    #: the PRM's system message (default: the release's math instruction, the Qwen2.5-Math PRM's
    #: training format); used where the PRM client takes it (see docs/serve.md)
    prm_instruction: str = MATH_INSTRUCTION
    #: passed to the chat template (e.g. {"enable_thinking": true})
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError("a task profile needs a non-empty 'name'.", field="name")
        if "{question}" not in self.user_template:
            raise InputError(f"'user_template' must contain {{question}}. Got "
                             f"{self.user_template!r} instead.", field="user_template")
        if not self.step_separator:
            raise InputError("'step_separator' must be a non-empty string.",
                             field="step_separator")
        _rule("final_rule", self.final_rule, FINAL_RULES)
        _rule("answer_extraction", self.answer_extraction, EXTRACTIONS)
        if self.grader not in GRADERS:
            raise InputError(f"'grader' must be one of {', '.join(GRADERS)}. Got "
                             f"{self.grader!r} instead.", field="grader")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or \
                not (1 <= self.max_steps <= 4096):
            raise InputError(f"'max_steps' must be an int in [1, 4096]. Got {self.max_steps!r} "
                             "instead.", field="max_steps")
        if not isinstance(self.chat_template_kwargs, Mapping):
            raise InputError("'chat_template_kwargs' must be a table.",
                             field="chat_template_kwargs")

    # ------------------------------------------------------------------ rules
    def user_message(self, question: str) -> str:
        """The user message for ``question`` (only ``{question}`` is substituted)."""
        return self.user_template.replace("{question}", question)

    def is_final(self, text: str, stopped_on_stop: bool) -> bool:
        """Whether a step ends the answer under this profile's rule."""
        if not stopped_on_stop:
            return True
        if self.final_rule == "boxed":
            return "\\boxed{" in text
        if self.final_rule.startswith("regex:"):
            return re.search(self.final_rule[6:], text, re.MULTILINE) is not None
        return False

    def extract_answer(self, solution: str) -> str | None:
        if self.answer_extraction == "boxed":
            return last_boxed(solution)  # the one \\boxed{} parser
        if self.answer_extraction.startswith("regex:"):
            m = None
            for m in re.finditer(self.answer_extraction[6:], solution, re.MULTILINE):
                pass
            if m is None:
                return None
            return m.group(1) if m.groups() else m.group(0)
        return None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["chat_template_kwargs"] = dict(self.chat_template_kwargs)
        return d


def _rule(name: str, value: Any, fixed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or not (value in fixed or value.startswith("regex:")):
        raise InputError(f"'{name}' must be one of {', '.join(fixed)} or 'regex:PATTERN'. Got "
                         f"{value!r} instead.", field=name)
    if value.startswith("regex:"):
        try:
            re.compile(value[6:])
        except re.error as exc:
            raise InputError(f"'{name}' holds an invalid regular expression ({exc}).",
                             field=name) from None


BUILTIN: dict[str, TaskProfile] = {
    "math": TaskProfile(
        name="math", user_template=MATH_INSTRUCTION + "\nQuestion: {question}",
        solution_prefix="Solution: ", final_rule="boxed", answer_extraction="boxed",
        grader="math", max_steps=30, prm_instruction=MATH_INSTRUCTION),
    "general": TaskProfile(name="general", final_rule="eos", max_steps=30),
    "thinking": TaskProfile(name="thinking", final_rule="eos", max_steps=128,
                            chat_template_kwargs={"enable_thinking": True}),
}


def load_profile(ref: str | TaskProfile | None) -> TaskProfile:
    """A built-in by name (``math``, ``general``, ``thinking``) or a TOML file (see above)."""
    if ref is None:
        return BUILTIN["math"]
    if isinstance(ref, TaskProfile):
        return ref
    if ref in BUILTIN:
        return BUILTIN[ref]
    path = Path(ref)
    if path.suffix != ".toml" and not path.exists():
        raise InputError(f"task must be one of {', '.join(BUILTIN)} or a profile .toml file. Got "
                         f"{ref!r} instead.", field="task")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("task profile not found", path=path, field="task") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the task profile ({exc})", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", path=path) from None
    base_name = doc.pop("base", "general")
    if base_name not in BUILTIN:
        raise InputError(f"must be one of {', '.join(BUILTIN)}. Got {base_name!r} instead.",
                         path=path, field="base")
    base = BUILTIN[base_name]
    fields = {f.name: f for f in dataclasses.fields(TaskProfile)}
    changes: dict[str, Any] = {"name": path.stem}
    for key, value in doc.items():
        if key not in fields:
            raise InputError(f"unknown key; the keys are base, {', '.join(fields)}.", path=path,
                             field=key)
        want = int if key == "max_steps" else dict if key == "chat_template_kwargs" else str
        if want is int and (isinstance(value, bool) or not isinstance(value, int)) or \
                want is not int and not isinstance(value, want):
            raise InputError(f"must be {'an integer' if want is int else 'a table' if want is dict else 'a string'}. "
                             f"Got {value!r} instead.", path=path, field=key)
        changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except InputError as exc:
        raise InputError(exc.reason, path=path, field=exc.field) from None
