"""What every phase of `benchmarks.signaling` works with: the `Plan` (sizes and durations),
`Bench` (the server, the load-generator workers, the parent's HTTP session, the sections
reported so far, and `measure`: one load over one CPU window), and `Phase` (a phase as the
entry point registers it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks._signaling_common import (
    HOPS,
    cpu_seconds,
    machine_ticks,
    runqueue_wait_seconds,
    sleep_until,
    summary_ms,
)
from benchmarks._signaling_server import Server
from benchmarks._signaling_workers import Load, PhaseResult, WorkerHandle


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run."""

    mode: str
    pairs: int
    procs: int
    idle: int
    warmup_s: float
    throughput_s: float
    latency_s: float
    idle_throughput_s: float
    user_jobs: int
    slow: int = 100  # slow consumers (the hostile phase)
    half_open: int = 1000  # half-open connections (the hostile phase)
    hostile_s: float = 5.0  # closed loop of the pairs while the slow consumers flood
    wait_head_timeout: bool = True  # wait for the server to drop the half-open connections
    cluster: int = 0  # --cluster N: N server processes on PostgreSQL + Redis (0: not run)


@dataclass
class Window:
    """CPU of the server, the clients and the whole machine over one measurement window."""

    seconds: float
    server_cpu_s: float
    server_wait_s: float
    machine_busy: float
    client_cpu_s: list[float]

    def report(self) -> dict[str, Any]:
        cores = os.cpu_count() or 1
        server = 100 * self.server_cpu_s / self.seconds
        client = 100 * sum(self.client_cpu_s) / self.seconds
        return {
            "server_cpu_percent": round(server, 1),
            "client_cpu_percent_per_process": [
                round(100 * c / self.seconds, 1) for c in self.client_cpu_s
            ],
            "client_cpu_percent": round(client, 1),
            # Runnable but waiting for a core: how much the load generator starved the server.
            "server_runqueue_wait_percent": round(100 * self.server_wait_s / self.seconds, 1),
            "machine_busy_percent_of_all_cores": round(100 * self.machine_busy, 1),
            # Whatever else ran meanwhile, in percent of one core (this machine is shared).
            "other_cpu_percent": round(
                max(0.0, 100 * self.machine_busy * cores - server - client), 1
            ),
            "cores": cores,
        }


class Bench:
    """The running setup that phases measure: one server, its load generators (their pairs
    online), and `sections`, the report sections of the phases that have run (by key)."""

    def __init__(
        self,
        plan: Plan,
        server: Server,
        workers: list[WorkerHandle],
        http: aiohttp.ClientSession,
    ) -> None:
        self.plan = plan
        self.server = server
        self.workers = workers
        self.http = http  # this process's own session (extra devices, server gauges)
        self.sections: dict[str, Any] = {}

    async def measure(
        self, load: Load, duration: float, args: Sequence[tuple[Any, ...]] | None = None
    ) -> tuple[PhaseResult, Window]:
        """Every worker runs `load(worker, start, warmup, duration, *args[i])`, starting 0.2 s
        from now with the plan's warm-up; sample CPU over the window, merge the results."""
        start = time.monotonic() + 0.2
        warmup = self.plan.warmup_s
        for handle, extra in zip(self.workers, args or [() for _ in self.workers], strict=True):
            handle.send(load, start, warmup, duration, *extra)
        await sleep_until(start + warmup)
        pid = self.server.pid
        server0, wait0, (busy0, total0) = (
            cpu_seconds(pid),
            runqueue_wait_seconds(pid),
            machine_ticks(),
        )
        await sleep_until(start + warmup + duration)
        server1, wait1, (busy1, total1) = (
            cpu_seconds(pid),
            runqueue_wait_seconds(pid),
            machine_ticks(),
        )
        merged = PhaseResult()
        cpus: list[float] = []
        for handle in self.workers:
            _, part = await handle.receive(timeout=duration + warmup + 60)
            assert isinstance(part, PhaseResult)
            merged.setups += part.setups
            merged.errors += part.errors
            merged.unmatched += part.unmatched
            merged.max_in_flight = max(merged.max_in_flight, part.max_in_flight)
            for into, samples in zip(merged.hops, part.hops, strict=True):
                into.extend(samples)
            cpus.append(part.cpu_s)
        busy = (busy1 - busy0) / max(1, total1 - total0)
        return merged, Window(duration, server1 - server0, wait1 - wait0, busy, cpus)


def latency_report(result: PhaseResult) -> dict[str, Any]:
    """Hop latency percentiles of a measurement, overall and per hop."""
    every = [value for samples in result.hops for value in samples]
    report: dict[str, Any] = summary_ms(every)
    report["per_hop"] = {
        name: summary_ms(samples) for name, samples in zip(HOPS, result.hops, strict=True)
    }
    return report


@dataclass(frozen=True)
class Phase:
    """One measurement phase, as `benchmarks.signaling.PHASES` lists it.

    `run` measures on the bench and returns its report sections by top-level key (earlier
    phases' sections are in `bench.sections`); it leaves the server as it found it (no extra
    sessions, no live calls). `users` are accounts it needs besides the pairs' (made with
    `softphone user add` before the server starts, password `PASSWORD`).
    """

    run: Callable[[Bench], Awaitable[dict[str, Any]]]
    users: tuple[str, ...] = ()
