"""Answer grading: the last balanced ``\\boxed{...}`` and mathematical equivalence.

Uses the ``math-verify`` package when installed; otherwise falls back to comparing normalised
strings (spaces, ``\\left``/``\\right``, ``\\dfrac``, surrounding ``$`` and a trailing period
removed), which is stricter: it can call an equivalent answer wrong, never a different one right.
"""
from __future__ import annotations

import importlib.util
import re


def is_math_verify_available() -> bool:
    """True if the ``math_verify`` package can be imported."""
    return importlib.util.find_spec("math_verify") is not None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, else None."""
    if not isinstance(text, str):
        return None
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                i += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
            i += 1
    return None


def normalise(ans: str) -> str:
    """Light normalisation for the string fallback."""
    s = ans.strip().rstrip(".").strip().strip("$").strip()
    s = re.sub(r"\\left|\\right|\\!|\\,|\\;|\\ ", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("^\\circ", "")
    s = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", s)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


def is_equivalent(pred: str | None, gold: str, *, use_math_verify: bool | None = None) -> bool:
    """Whether answer ``pred`` equals ``gold`` mathematically (see the module docstring)."""
    if pred is None:
        return False
    if use_math_verify is None:
        use_math_verify = is_math_verify_available()
    if normalise(pred) == normalise(gold):
        return True
    if not use_math_verify:
        return False
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(f"${pred}$")))
    except Exception:  # noqa: BLE001 - math-verify raises many types on odd LaTeX
        return False


def grade(solution: str, gold: str, *, use_math_verify: bool | None = None) -> bool:
    """Grade a full solution text: its last boxed answer against ``gold``."""
    return is_equivalent(last_boxed(solution), gold, use_math_verify=use_math_verify)
