"""Token-bucket rate limits keyed by client (address, user name)."""

from __future__ import annotations

import time
from typing import Protocol

from softphone.protocol.errors import ErrorCode
from softphone.server.bus import RedisBus
from softphone.server.errors import ApiError


class Limiter(Protocol):
    def check(self, key: str) -> None:
        """Take one token for `key`, or raise RATE_LIMITED with the wait until the next."""
        ...


class RateLimiter:
    def __init__(self, per_minute: int, what: str, max_keys: int = 100_000) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._what = what
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> None:
        """Take one token for `key`, or raise RATE_LIMITED with the wait until the next."""
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise ApiError(
                ErrorCode.RATE_LIMITED,
                f"too many {self._what}; slow down",
                retry_after=(1.0 - tokens) / self._rate,
            )
        self._buckets.pop(key, None)
        if len(self._buckets) >= self._max_keys:
            # Bound memory under a flood of distinct keys by forgetting the least recently used.
            del self._buckets[next(iter(self._buckets))]
        self._buckets[key] = (tokens - 1.0, now)


class SharedRateLimiter:
    """The same token bucket, kept in Redis so every server process draws on one allowance."""

    def __init__(self, bus: RedisBus, name: str, per_minute: int, what: str) -> None:
        self._bus = bus
        self._name = name
        self._per_minute = per_minute
        self._what = what

    def check(self, key: str) -> None:
        wait = self._bus.take(f"{self._name}:{key}", self._per_minute)
        if wait is not None:
            raise ApiError(
                ErrorCode.RATE_LIMITED, f"too many {self._what}; slow down", retry_after=wait
            )
