"""Token-bucket rate limits keyed by client (address, user name)."""

from __future__ import annotations

import time

from softphone.protocol.errors import ErrorCode
from softphone.server.errors import ApiError


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
