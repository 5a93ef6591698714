"""Request decoding and response encoding with msgspec, and the error middleware."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from softphone.protocol.errors import ErrorCode
from softphone.protocol.models import MAX_SDP, ErrorBody, ErrorDetail
from softphone.server.errors import ApiError
from softphone.server.metrics import METRICS_KEY
from softphone.server.store_rows import StoreUnavailable

log = logging.getLogger("softphone.server")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_encoder = msgspec.json.Encoder()
# A request body (at most server.max_body_bytes) must arrive within this; a client trickling it
# would otherwise hold a handler and a descriptor for as long as it likes.
BODY_TIMEOUT = 20.0


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(body), status=status, content_type="application/json")


def error_response(
    code: ErrorCode, message: str, status: int, retry_after: float | None = None
) -> web.Response:
    response = json_response(ErrorBody(error=ErrorDetail(code=code.value, message=message)), status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


# The messages the server gave before these rules moved into the models, by field: a broken
# rule (not a wrong type) on one of these fields is explained in the same words as before.
RULE_MESSAGES = {
    "sdp": f"sdp must be an SDP document starting with 'v=0' (at most {MAX_SDP} characters)",
    "digits": "digits must be 1-64 of 0-9 * # A-D and ',' (pause)",
    "duration_ms": "duration_ms must be between 40 and 2000",
    "from": "'from' is required: 1-128 characters of letters, digits and . + : @ - _",
    "to": "'to' must name a user",
    "services": "services must be a non-empty subset of ['call']",
    "expires": "expires must be at least 60 seconds",
}
_RULE_PATH = re.compile(r" - at `\$\.(\w+)(?:\[\d+\])?`$")
_TYPE_ERROR = re.compile(r"^Expected `[\w |]+`, got `")


def _validation_message(error: msgspec.ValidationError) -> str:
    text = str(error)
    field = _RULE_PATH.search(text)
    if field is None or field.group(1) not in RULE_MESSAGES or _TYPE_ERROR.match(text):
        return text
    return RULE_MESSAGES[field.group(1)]


async def decode(request: web.Request, model: type[T]) -> T:
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            body = await request.read()
    except TimeoutError as exc:
        if request.transport is not None:
            request.transport.close()  # the rest of the body is not wanted
        raise ApiError(
            ErrorCode.REQUEST_TIMEOUT, f"the request body did not arrive within {BODY_TIMEOUT:g} s"
        ) from exc
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, exc.text or "request body too large") from exc
    if not body:
        raise ApiError(ErrorCode.INVALID_JSON, "request body is empty; a JSON object is expected")
    try:
        return msgspec.json.decode(body, type=model)
    except msgspec.ValidationError as exc:
        raise ApiError(ErrorCode.VALIDATION, _validation_message(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ApiError(ErrorCode.INVALID_JSON, f"body is not valid JSON: {exc}") from exc


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS_KEY]
    try:
        return await handler(request)
    except ApiError as exc:
        metrics.error(exc.code.value)
        return error_response(exc.code, exc.message, exc.status, exc.retry_after)
    except web.HTTPRequestEntityTooLarge as exc:
        metrics.error(ErrorCode.PAYLOAD_TOO_LARGE.value)
        return error_response(
            ErrorCode.PAYLOAD_TOO_LARGE, exc.text or "request body too large", 413
        )
    except web.HTTPNotFound:
        metrics.error(ErrorCode.NOT_FOUND.value)
        return error_response(ErrorCode.NOT_FOUND, f"no such resource: {request.path}", 404)
    except web.HTTPMethodNotAllowed as exc:
        metrics.error(ErrorCode.METHOD_NOT_ALLOWED.value)
        response = error_response(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"{exc.method} is not allowed here; allowed: {', '.join(sorted(exc.allowed_methods))}",
            405,
        )
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException:
        raise
    except StoreUnavailable as exc:
        # The store (or bus) is down for now: the client retries after Retry-After.
        metrics.error(ErrorCode.SERVICE_UNAVAILABLE.value)
        return error_response(ErrorCode.SERVICE_UNAVAILABLE, str(exc), 503, retry_after=1.0)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        metrics.error(ErrorCode.INTERNAL.value)
        return error_response(ErrorCode.INTERNAL, "internal server error", 500)
