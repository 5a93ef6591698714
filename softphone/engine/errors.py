"""The engine's error: a stable SDK-style code (`call:6` invalid state, ...) and a message."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EngineErrorCode(enum.StrEnum):
    """Codes after the calling SDK (reference/kandy.md §3.1); the values are what SDK users
    compare against, so they never change."""

    UNKNOWN = "call:1"
    GENERIC = "call:2"
    MEDIA_INIT = "call:3"
    NOT_SUPPORTED = "call:5"
    INVALID_STATE = "call:6"
    INVALID_PARAM = "call:7"
    INVALID_OFFER = "call:9"
    ANSWER_MISMATCH = "call:11"
    SIGNALING_UNAVAILABLE = "call:12"
    MEDIA_UNAVAILABLE = "media:1"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as carried by events (`error` fields)."""

    code: EngineErrorCode
    message: str


class EngineError(Exception):
    """An operation failed; nothing changed unless the message says the call ended."""

    def __init__(self, code: EngineErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    @property
    def info(self) -> ErrorInfo:
        return ErrorInfo(self.code, self.message)


__all__ = ["EngineError", "EngineErrorCode", "ErrorInfo"]
