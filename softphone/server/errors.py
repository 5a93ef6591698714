"""The one exception type handlers raise; the middleware turns it into a JSON error body."""

from __future__ import annotations

from softphone.protocol.errors import HTTP_STATUS, ErrorCode


class ApiError(Exception):
    def __init__(self, code: ErrorCode, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]
