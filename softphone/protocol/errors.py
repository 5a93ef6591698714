"""Stable error codes (with their HTTP status) and websocket close codes."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Machine-readable error codes; clients switch on these, never on messages."""

    INVALID_JSON = "invalid_json"
    VALIDATION = "validation_error"
    UNAUTHORIZED = "unauthorized"
    SESSION_EXPIRED = "session_expired"
    BAD_CREDENTIALS = "bad_credentials"
    FORBIDDEN = "forbidden"
    NOT_IN_CALL = "not_in_call"
    ANONYMOUS_NOT_ALLOWED = "anonymous_not_allowed"
    INVALID_TOKEN = "invalid_token"
    NOT_FOUND = "not_found"
    UNKNOWN_USER = "unknown_user"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    WRONG_STATE = "wrong_state"
    GLARE = "glare"
    USER_BUSY = "user_busy"
    USER_UNAVAILABLE = "user_unavailable"
    NOT_SUBSCRIBED = "not_subscribed"
    TOO_MANY_DEVICES = "too_many_devices"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CALLS = "too_many_calls"
    INTERNAL = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.VALIDATION: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.SESSION_EXPIRED: 401,
    ErrorCode.BAD_CREDENTIALS: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_IN_CALL: 403,
    ErrorCode.ANONYMOUS_NOT_ALLOWED: 403,
    ErrorCode.INVALID_TOKEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNKNOWN_USER: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.WRONG_STATE: 409,
    ErrorCode.GLARE: 409,
    ErrorCode.USER_BUSY: 409,
    ErrorCode.USER_UNAVAILABLE: 409,
    ErrorCode.NOT_SUBSCRIBED: 409,
    ErrorCode.TOO_MANY_DEVICES: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_CALLS: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}


class CloseCode(enum.IntEnum):
    """Websocket close codes the server uses (4000-4999 are ours)."""

    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    DO_NOT_RECONNECT = 4000
    REPLACED = 4001
    AUTH_EXPIRED = 4002
    SLOW_CONSUMER = 4003
