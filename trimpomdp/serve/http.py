"""HTTP plumbing of ``trimpomdp serve`` as aiohttp middlewares: request ids and the access log,
CORS, the API key, and OpenAI-shaped error bodies (never a traceback).

Order (outermost first): :func:`access_log` (request id, one INFO line per request),
:func:`cors` (preflight answers and headers), :func:`api_key` (``/v1/*`` only), :func:`errors`.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from trimpomdp.serve.errors import APIError, error_response, internal_error, json_response

log = logging.getLogger("trimpomdp.serve")
access = logging.getLogger("trimpomdp.serve.access")

REQUEST_ID = "X-Request-Id"
_RID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
#: request key under which the id is kept
_Key: Any = getattr(web, "RequestKey", None)
RID_KEY: Any = _Key("trim_request_id", str) if _Key else "trim_request_id"
MODEL_KEY: Any = _Key("trim_model", str) if _Key else "trim_model"


def request_id(request: web.Request) -> str:
    return request.get(RID_KEY, "-")


def make_middlewares(*, api_key: str | None, allowed_origins: Sequence[str]) -> list[Any]:
    origins = tuple(allowed_origins)

    @web.middleware
    async def access_log(request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get(REQUEST_ID, "")
        rid = given if _RID.match(given) else uuid.uuid4().hex[:16]
        request[RID_KEY] = rid
        t0 = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except (asyncio.CancelledError, ConnectionResetError):
            status = 499
            raise
        finally:
            access.info("%s %s %s %s %d %.1fms model=%s", rid, request.remote or "-",
                        request.method, request.path_qs, status,
                        1e3 * (time.perf_counter() - t0), request.get(MODEL_KEY, "-"))

    def _origin_ok(origin: str) -> bool:
        return "*" in origins or origin in origins

    @web.middleware
    async def cors(request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin and \
                "Access-Control-Request-Method" in request.headers:
            if not origins or not _origin_ok(origin):
                return json_response({"error": {
                    "message": f"The origin {origin!r} is not allowed (--allowed-origins).",
                    "type": "invalid_request_error", "param": None, "code": "cors_forbidden"}},
                    403)
            return web.Response(status=204, headers={
                **_cors_headers(origin, origins),
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": request.headers.get(
                    "Access-Control-Request-Headers", "Authorization, Content-Type"),
                "Access-Control-Max-Age": "600"})
        return await handler(request)

    @web.middleware
    async def check_key(request: web.Request, handler: Any) -> web.StreamResponse:
        if api_key and request.path.startswith("/v1"):
            auth = request.headers.get("Authorization", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else \
                request.headers.get("api-key", "")
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                raise APIError(401, "Incorrect or missing API key: send 'Authorization: Bearer "
                               "<key>' with the key of this server's --api-key.",
                               code="invalid_api_key")
        return await handler(request)

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except APIError as err:
            return error_response(err)
        except web.HTTPException as exc:  # 404/405/413 from aiohttp itself
            if exc.status < 400:
                raise
            kind = "invalid_request_error" if exc.status < 500 else "server_error"
            msg = exc.reason if exc.status != 413 else (
                f"The request body is too large ({exc.text or exc.reason}).")
            return json_response({"error": {"message": msg, "type": kind, "param": None,
                                            "code": str(exc.status)}}, exc.status)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            rid = request_id(request)
            log.exception("internal error, request id %s, on %s %s", rid, request.method,
                          request.path)
            return error_response(internal_error(rid))

    # the key check answers 401 through `errors`, so it sits inside it
    return [access_log, cors, errors, check_key]


def _cors_headers(origin: str, origins: Sequence[str]) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": "*" if "*" in origins else origin,
            "Vary": "Origin", "Access-Control-Expose-Headers": REQUEST_ID}


def add_response_headers(allowed_origins: Sequence[str]) -> Any:
    """An ``on_response_prepare`` hook: the request id, and CORS headers for allowed origins
    (streams included: it runs when the headers go out)."""
    origins = tuple(allowed_origins)

    async def hook(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[REQUEST_ID] = request_id(request)
        origin = request.headers.get("Origin")
        if origin and origins and ("*" in origins or origin in origins):
            for k, v in _cors_headers(origin, origins).items():
                response.headers.setdefault(k, v)

    return hook
