"""Counters and gauges, rendered as Prometheus text.

Counters owned by other parts (calls started, setups) are read through callables at render
time, so there is one source of truth for each number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

Reader = Callable[[], float]


@dataclass
class Metrics:
    logins: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    counters: dict[str, tuple[str, Reader]] = field(default_factory=dict)
    gauges: dict[str, tuple[str, Reader]] = field(default_factory=dict)

    def error(self, code: str) -> None:
        self.errors[code] += 1

    def render(self) -> str:
        lines: list[str] = []
        counters = {**self.counters, "logins_total": ("Successful logins.", lambda: self.logins)}
        for kind, table in (("counter", counters), ("gauge", self.gauges)):
            for name, (help_text, read) in sorted(table.items()):
                lines += [
                    f"# HELP softphone_{name} {help_text}",
                    f"# TYPE softphone_{name} {kind}",
                    f"softphone_{name} {read():g}",
                ]
        lines += [
            "# HELP softphone_errors_total Error responses by code.",
            "# TYPE softphone_errors_total counter",
        ]
        lines += [
            f'softphone_errors_total{{code="{code}"}} {count}'
            for code, count in sorted(self.errors.items())
        ]
        return "\n".join(lines) + "\n"


METRICS_KEY = web.AppKey("metrics", Metrics)
