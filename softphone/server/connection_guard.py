"""Limits below HTTP: concurrent connections per client address, and malformed requests logged
without a traceback and at most once per interval.

aiohttp has no per-address cap, so the listening socket's protocol factory wraps aiohttp's:
a connection over the cap gets `429 rate_limited` and is closed before aiohttp sees it. The
time allowed for a request head is aiohttp's `keepalive_timeout`, which aiohttp arms when a
connection opens and after every response, and which closes a connection whose next request
head is incomplete when it fires (see runner.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

CONNECTIONS_PER_ADDRESS = 64
MALFORMED_LOG_INTERVAL = 60.0

_REFUSAL_BODY = (
    b'{"error":{"code":"rate_limited","message":"too many open connections from this address"}}'
)
_REFUSAL = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n"
    + f"Content-Length: {len(_REFUSAL_BODY)}\r\n\r\n".encode()
    + _REFUSAL_BODY
)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class ConnectionGuard:
    """Protocol factory around aiohttp's: at most `per_address` open connections per client
    address. Loopback is exempt by default: a reverse proxy on the same host would otherwise
    share one allowance among all its clients (and local load generators are loopback)."""

    def __init__(
        self,
        inner: Callable[[], asyncio.BaseProtocol],
        per_address: int = CONNECTIONS_PER_ADDRESS,
        *,
        cap_loopback: bool = False,
        exempt: Callable[[str], bool] = lambda address: False,
    ) -> None:
        self._inner = inner
        # Trusted proxies carry many clients each; their clients are limited per request.
        self._exempt = exempt
        self._per_address = per_address
        self._cap_loopback = cap_loopback
        self.open: Counter[str] = Counter()
        self.refused = 0

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def admit(self, address: str) -> bool:
        if (not self._cap_loopback and is_loopback(address)) or self._exempt(address):
            return True
        if self.open[address] >= self._per_address:
            self.refused += 1
            return False
        return True

    def inner(self) -> asyncio.Protocol:
        protocol = self._inner()
        assert isinstance(protocol, asyncio.Protocol)
        return protocol


class _Guarded(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol once the connection is admitted."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else ""
        if not self._guard.admit(address):
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_REFUSAL)
            transport.close()
            return
        self._address = address
        self._guard.open[address] += 1
        self._inner = self._guard.inner()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is not None:
            self._guard.open[self._address] -= 1
            if self._guard.open[self._address] <= 0:
                del self._guard.open[self._address]
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class RequestLog(logging.Logger):
    """aiohttp's server logger: a request it cannot parse (a NUL in a header, a bad request
    line) is the client's fault and anyone can send one, so it is one WARNING line without a
    traceback, at most once per `interval`, with the number left out since. Everything else is
    logged as usual."""

    def __init__(self, name: str, interval: float = MALFORMED_LOG_INTERVAL) -> None:
        super().__init__(name)
        self._interval = interval
        self._last = -interval
        self._suppressed = 0

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._malformed(msg, args, exc_info)
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def _malformed(self, msg: object, args: tuple[Any, ...], exc: HttpProcessingError) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._suppressed += 1
            return
        self._last = now
        text = str(msg) % args if args else str(msg)
        reason = exc.message.splitlines()[0] if exc.message else type(exc).__name__
        extra = f" ({self._suppressed} more since the last such line)" if self._suppressed else ""
        self._suppressed = 0
        self.warning("malformed request: %s: %s%s", text, reason[:200], extra)


def request_log() -> RequestLog:
    """The logger handed to aiohttp, a child of the server's (same handlers and level)."""
    log = RequestLog("softphone.server.requests")
    log.parent = logging.getLogger("softphone.server")
    return log
