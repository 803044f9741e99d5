"""OpenAI-shaped errors of ``trimpomdp serve``: ``{"error": {"message", "type", "param", "code"}}``.

An :class:`APIError` carries the HTTP status; :func:`json_response` writes any body as JSON. No
answer ever carries a traceback: unexpected failures are logged under the request id.
"""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class APIError(Exception):
    """An error answered as JSON: ``status`` plus OpenAI's error object."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 type: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def bad(message: str, param: str | None = None) -> APIError:
    """A 400 ``invalid_request_error`` naming ``param``."""
    return APIError(400, message, param=param)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj, allow_nan=False).encode(),
                        content_type="application/json", headers=headers)


def error_response(err: APIError) -> web.Response:
    return json_response(err.body(), err.status)


def internal_error(ref: str) -> APIError:
    return APIError(500, f"Internal server error (request id {ref}; the server log has the "
                    "details).", type="server_error")
