import pytest

from trimpomdp.evaluation.grading import (
    grade,
    is_equivalent,
    is_math_verify_available,
    last_boxed,
    normalise,
)


def test_last_balanced_boxed():
    assert last_boxed(r"so \boxed{1} and finally \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\{1,2\}}") == r"\{1,2\}"
    assert last_boxed(r"\boxed{x^{2}+\sqrt{3}}") == r"x^{2}+\sqrt{3}"
    assert last_boxed("no box") is None
    assert last_boxed(r"\boxed{unbalanced") is None
    assert last_boxed(r"\fbox{7}") == "7"


def test_string_fallback_is_conservative():
    assert normalise(r"$\dfrac{1}{2}$.") == r"\frac{1}{2}"
    assert is_equivalent(r"\left(1, 2\right)", "(1,2)", use_math_verify=False)
    assert not is_equivalent("0.5", r"\frac{1}{2}", use_math_verify=False)
    assert not is_equivalent(None, "1", use_math_verify=False)


@pytest.mark.skipif(not is_math_verify_available(), reason="math-verify is not installed")
def test_math_verify_equivalence():
    assert is_equivalent("0.5", r"\frac{1}{2}")
    assert grade(r"Thus \boxed{\frac{14}{3}}", r"\frac{14}{3}")
    assert not grade(r"Thus \boxed{4}", r"\frac{3\sqrt{3}}{4}")
