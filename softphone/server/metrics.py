"""Counters and gauges, rendered as Prometheus text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Metrics:
    call_setups: int = 0
    calls_made: int = 0
    logins: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    gauges: dict[str, Callable[[], float]] = field(default_factory=dict)

    def error(self, code: str) -> None:
        self.errors[code] += 1

    def render(self) -> str:
        lines = [
            "# HELP softphone_call_setups_total Calls answered (set up end to end).",
            "# TYPE softphone_call_setups_total counter",
            f"softphone_call_setups_total {self.call_setups}",
            "# HELP softphone_calls_total Calls started.",
            "# TYPE softphone_calls_total counter",
            f"softphone_calls_total {self.calls_made}",
            "# HELP softphone_logins_total Successful logins.",
            "# TYPE softphone_logins_total counter",
            f"softphone_logins_total {self.logins}",
            "# HELP softphone_errors_total Error responses by code.",
            "# TYPE softphone_errors_total counter",
        ]
        lines += [f'softphone_errors_total{{code="{code}"}} {count}'
                  for code, count in sorted(self.errors.items())]
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE softphone_{name} gauge", f"softphone_{name} {read()}"]
        return "\n".join(lines) + "\n"


METRICS_KEY = web.AppKey("metrics", Metrics)
