"""Exponential back-off with jitter, shared by the first connect and every reconnect."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt `n` (1-based): `base * factor**(n-1)`, capped, times 1 ± `jitter`.

    `max_attempts` None retries forever; otherwise the caller gives up (and says so) once
    `exhausted(n)` is true.
    """

    base: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.factor < 1:
            raise ValueError("backoff needs base > 0, cap >= base and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter is a fraction in [0, 1)")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for unlimited)")

    def delay(self, attempt: int) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return min(self.cap, raw * random.uniform(1 - self.jitter, 1 + self.jitter))

    def exhausted(self, attempt: int) -> bool:
        return self.max_attempts is not None and attempt > self.max_attempts


__all__ = ["Backoff"]
