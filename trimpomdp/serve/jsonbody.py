"""Bounded, strict decoding of request bodies: UTF-8 only, no NaN/Infinity, nesting at most
:data:`MAX_DEPTH` deep, no lone surrogates (``"\\ud800"``) in any string or key.

Every violation is a 400 naming where it is (``param``), never a 500 from deep recursion or an
encoding error further down.
"""
from __future__ import annotations

import json
from typing import Any

from trimpomdp.serve.errors import bad

#: deepest nesting of arrays/objects a request may use (the OpenAI schema needs about 6)
MAX_DEPTH = 64


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_str(s: str, where: str) -> None:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise bad(f"'{where or 'body'}' holds a lone UTF-16 surrogate (such as \\ud800), which "
                      "is not valid Unicode text.", where or None) from None


def _walk(doc: Any, max_depth: int) -> None:
    """Depth and string check without recursion (an explicit stack)."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        obj, where, depth = stack.pop()
        if isinstance(obj, str):
            _check_str(obj, where)
        elif isinstance(obj, (dict, list)):
            if depth >= max_depth:
                raise bad(f"The request body is nested more than {max_depth} levels deep.",
                          where or None)
            if isinstance(obj, dict):
                for k, v in obj.items():
                    path = f"{where}.{k}" if where else str(k)
                    _check_str(k, path)
                    stack.append((v, path, depth + 1))
            else:
                stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj))


def decode_json(raw: bytes, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The body as a JSON object; raises a 400 :class:`~trimpomdp.serve.errors.APIError`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("The request body must be UTF-8 encoded JSON.") from None
    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise bad(f"The request body is nested more than {max_depth} levels deep.") from None
    except ValueError as exc:
        raise bad(f"The request body is not valid JSON ({exc}).") from None
    if not isinstance(doc, dict):
        raise bad(f"The request body must be a JSON object. Got {type(doc).__name__} instead.")
    _walk(doc, max_depth)
    return doc
