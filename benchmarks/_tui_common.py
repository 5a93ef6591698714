"""Shared pieces of `benchmarks.tui`: progress output, statistics, and the `Plan` (how many
runs, presses and seconds) that every phase receives with the work directory and the isolated
environment.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Plan:
    """Sizes of one run."""

    mode: str
    paint_rounds: int  # first_paint: rounds over every app
    presses: int  # key_latency: letters typed into each app
    cpu_window_s: float  # cpu: each measurement window


Phase = Callable[[Path, dict[str, str], Plan], dict[str, Any]]
"""`phase(work dir, isolated environment, plan) -> its report section`."""


def log(msg: str) -> None:
    print(f"[tui {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -------------------------------------------------------------------------------- statistics


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    if not s:
        return math.nan
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    """n, min, median, p95, max, stdev in ms."""
    xs = [x * 1000 for x in seconds]
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "min": round(min(xs), 1),
        "median": round(pct(xs, 50), 1),
        "p95": round(pct(xs, 95), 1),
        "max": round(max(xs), 1),
        "stdev": round(statistics.pstdev(xs), 1),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)
