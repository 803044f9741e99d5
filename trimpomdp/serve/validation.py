"""Compatibility names: request parsing lives in :mod:`trimpomdp.serve.openai_schema`, bounded
JSON decoding in :mod:`trimpomdp.serve.jsonbody`, errors in :mod:`trimpomdp.serve.errors` and
:class:`Budget` in :mod:`trimpomdp.serve.models`."""
from __future__ import annotations

from trimpomdp.serve.errors import APIError, bad
from trimpomdp.serve.jsonbody import decode_json
from trimpomdp.serve.models import Budget
from trimpomdp.serve.openai_schema import TRIM_FIELDS, GenerationRequest, parse_request

__all__ = ["TRIM_FIELDS", "APIError", "Budget", "GenerationRequest", "bad", "decode_json",
           "parse_request"]
