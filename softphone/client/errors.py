"""What the signaling client raises: the server said no, the server could not be reached."""

from __future__ import annotations

# Statuses worth retrying later: rate limited, and the server (or a proxy) unavailable.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


class ClientError(Exception):
    """Base of every error `softphone.client` raises."""


class ServerUnreachable(ClientError):
    """No answer: connection refused or reset, DNS failure, or a timeout."""


class CertificateError(ClientError):
    """The server's TLS certificate was refused (not trusted, wrong name, expired): retrying
    will not help until the configuration or the certificate changes."""


class ServerError(ClientError):
    """The server answered with an error body `{"error": {"code", "message"}}`.

    `code` is the stable machine code (`softphone.protocol.errors.ErrorCode` values); switch on
    it, never on `message`. `retry_after` is the Retry-After header in seconds, if any.
    """

    def __init__(
        self, code: str, message: str, status: int, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying later (429, 5xx) rather than a refusal that will not change."""
        return self.status in TRANSIENT_STATUSES or self.status >= 500


class AuthError(ServerError):
    """Not (or no longer) authenticated: bad credentials, expired or revoked token (401)."""


class Disconnected(ClientError):
    """The client stopped for good (gone, replaced, gave up, stopped) before it was connected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


__all__ = [
    "AuthError",
    "CertificateError",
    "ClientError",
    "Disconnected",
    "ServerError",
    "ServerUnreachable",
]
