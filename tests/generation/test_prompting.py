"""The release's prompt formats, final-step rule, answer extraction and grading."""
from __future__ import annotations

import pytest

from trimpomdp.errors import BackendError, InputError
from trimpomdp.evaluation.grading import is_equivalent as grade
from trimpomdp.evaluation.grading import last_boxed as extract_boxed
from trimpomdp.generation.prm_vllm import step_scores_from_pooling
from trimpomdp.generation.prompting import (
    INSTRUCTION,
    generation_messages,
    is_final_step,
    is_punctuation_only,
    prm_messages,
    render_continuation,
)
from trimpomdp.generation.protocols import SamplingParams


def test_generation_messages_continue_solution_prefix():
    m = generation_messages("Find x.", ["Step A", "Step B"])
    assert m[0] == {"role": "user", "content": INSTRUCTION + "\nQuestion: Find x."}
    assert m[1] == {"role": "assistant", "content": "Solution: Step A\n\nStep B\n\n"}
    assert generation_messages("Find x.", [])[1]["content"] == "Solution: "


def test_prm_messages_mark_each_step_and_strip_stray_markers():
    m = prm_messages("Find x.", ["a", "b<extra_0>c"])
    assert [x["role"] for x in m] == ["system", "user", "assistant"]
    assert m[0]["content"] == INSTRUCTION and m[2]["content"] == "a<extra_0>bc<extra_0>"


def test_final_step_rule():
    assert is_final_step("so \\boxed{3}", True)
    assert is_final_step("ran out of tokens", False)
    assert not is_final_step("Next we add.", True)
    assert is_punctuation_only(" .,;\n") and not is_punctuation_only("x.")


class _TrimmingTemplate:
    """A template that strips message content, as some chat templates do."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt,
                            continue_final_message):
        assert continue_final_message and not tokenize and not add_generation_prompt
        return "".join(f"<{m['role']}>{m['content'].strip()}" for m in messages)


def test_render_continuation_restores_the_trailing_blank_line():
    text = render_continuation(_TrimmingTemplate(), generation_messages("q", ["s1"]))
    assert text.endswith("<assistant>Solution: s1\n\n")


@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{1} then \\boxed{2", "1"),  # unbalanced last box: fall back to the earlier one
    ("no answer", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_grade_uses_mathematical_equivalence():
    pytest.importorskip("math_verify", reason="math-verify grades answers (trimpomdp[live])")
    assert grade("\\frac{1}{2}", "0.5") is True
    assert grade("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{2} \\right)")
    assert grade("3", "4") is False and grade(None, "4") is False


def test_pooling_response_parsing():
    doc = {"data": [{"data": [[0.2, 0.8], [0.7, 0.3]]}]}
    assert step_scores_from_pooling(doc, 2) == pytest.approx([0.8, 0.3])
    assert step_scores_from_pooling(doc, 3) == pytest.approx([1.0, 0.8, 0.3])
    with pytest.raises(BackendError, match="2 markers scored for 1 steps"):
        step_scores_from_pooling(doc, 1)
    with pytest.raises(BackendError, match=r"row 0 must be \[P\(class 0\), P\(class 1\)\]"):
        step_scores_from_pooling({"data": [{"data": [[0.5]]}]}, 1)
    with pytest.raises(BackendError, match="must be in"):
        step_scores_from_pooling({"data": [{"data": [[-3.0, 4.0]]}]}, 1)


def test_sampling_params_validate():
    with pytest.raises(InputError, match="'top_p' parameter of SamplingParams"):
        SamplingParams(top_p=0.0)
    with pytest.raises(InputError, match="'max_tokens'"):
        SamplingParams(max_tokens=0)
