"""Signaling server benchmark: call-setup throughput, latency at half load, idle-websocket memory.

Run from the repository root::

    python -m benchmarks.signaling [--quick]

It starts ONE real server process (``python -m softphone serve`` on a free loopback port, a fresh
temporary data dir and a config file raising the device, live-call and login limits), creates
the users beforehand with ``python -m softphone user add``, and drives the server over loopback
from load-generator worker processes (asyncio + aiohttp). One JSON object goes to stdout;
progress goes to stderr.

One call setup, per caller/callee device pair (each device logged in, subscribed, with its
notification websocket open):

    caller POST /v1/calls          -> callee receives call.incoming
    callee POST .../ringing        -> caller receives call.ringing
    callee POST .../answer         -> caller receives call.answered
    caller POST .../end            -> callee receives call.ended

A hop latency is "request sent -> matching notification received by the other party", timed in
the worker that owns both devices (one clock). Phases, in order (`PHASES`, one module each):

1. idle websockets (`_signaling_phase_idle`): server RSS before and after N sessions (login,
   subscribe, websocket hello); then a short closed-loop run with those sockets still open (the
   hub scans every subscription when it publishes to a user); then the idle sessions are
   unsubscribed and logged out.
2. throughput (`_signaling_phase_throughput`): every pair runs setups back to back (closed
   loop) for a fixed window after a warm-up; setups/s, server CPU (``/proc/<pid>/stat``),
   client CPU, machine CPU.
3. latency at half rate (`_signaling_phase_latency`): open-loop Poisson arrivals at 50% of the
   measured throughput; hop latency percentiles, overall and per hop.
4. hostile clients (`_signaling_phase_hostile`): server memory with slow consumers (websockets
   never read, flooding pings, rung with large offers) and with half-open connections (half a
   request head), beside the idle baseline; the pairs' setup rate meanwhile; descriptors
   released after the request-head timeout.

The client shares the machine with the server, so the report carries the client's CPU as well.

This module is the plan, the orchestration and the JSON. The harness the phases share:
`_signaling_common` (constants, /proc readings, percentiles), `_signaling_devices` (`Device`,
`Pair`: one setup), `_signaling_server` (`softphone serve`, users), `_signaling_workers` (the
load-generator processes) and `_signaling_bench` (`Plan`, `Bench.measure`: one load over one CPU
window, `Phase`).

To add a phase: a module `_signaling_phase_<name>.py` with `async def run(bench) ->
{section key: section}` and `PHASE = Phase(run, users=...)` (and, if it needs load of its own, a
module-level `async def load(worker, start, warmup, duration, *args) -> PhaseResult` to pass to
`bench.measure`); its sizes in `Plan`, `FULL` and `QUICK`; its `PHASE` in `PHASES` below. Its
sections appear in the report after the headline ones.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import (
    _signaling_phase_cluster,
    _signaling_phase_hostile,
    _signaling_phase_idle,
    _signaling_phase_latency,
    _signaling_phase_throughput,
)
from benchmarks._signaling_bench import Bench, Phase, Plan
from benchmarks._signaling_common import machine_ticks, new_http, progress, rss_mb
from benchmarks._signaling_server import CONFIG, Server, create_users
from benchmarks._signaling_workers import WorkerHandle, start_workers, stop_workers

FULL = Plan(
    mode="full",
    pairs=24,
    procs=2,
    idle=1000,
    warmup_s=1.0,
    throughput_s=10.0,
    latency_s=10.0,
    idle_throughput_s=4.0,
    user_jobs=3,
)
QUICK = Plan(
    mode="quick",
    pairs=8,
    procs=2,
    idle=200,
    warmup_s=0.5,
    throughput_s=3.0,
    latency_s=3.0,
    idle_throughput_s=2.0,
    user_jobs=3,
    slow=30,
    half_open=200,
    hostile_s=2.0,
    wait_head_timeout=False,
)

# The phases, in the order they run, all on the same server and load generators.
PHASES: tuple[Phase, ...] = (
    _signaling_phase_idle.PHASE,  # first: the memory of a server with only the pairs on it
    _signaling_phase_throughput.PHASE,
    _signaling_phase_latency.PHASE,  # at half the rate the throughput phase measured
    _signaling_phase_hostile.PHASE,  # slow consumers and half-open connections
    # Its own N processes, PostgreSQL, Redis and HAProxy; only with --cluster N.
    _signaling_phase_cluster.PHASE,
)
# Report sections that come first in the JSON; the other phases' follow in the order they ran.
HEADLINE = ("throughput", "latency_at_half_rate")
TARGETS = {"setups_per_s": 300.0, "p99_ms": 25.0, "mb_per_1000_ws": 60.0}


def git_commit() -> str | None:
    """The checkout the server ran from (others may be editing it), with a '+dirty' mark."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "softphone"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head.strip() + ("+dirty" if dirty.strip() else "")


async def run(plan: Plan, profile: str | None, tmp_root: str | None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "signaling",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "aiohttp": aiohttp.__version__,
        },
        "softphone_commit": git_commit(),
        "data_dir_root": tmp_root or tempfile.gettempdir(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="softphone-bench-", dir=tmp_root))
    config, data_dir = tmp / "config.toml", tmp / "data"
    config.write_text(CONFIG)
    names = [(f"caller{i:02d}", f"callee{i:02d}") for i in range(plan.pairs)]
    server: Server | None = None
    handles: list[WorkerHandle] = []
    http = new_http()
    try:
        busy0, total0 = machine_ticks()
        await asyncio.sleep(1.0)
        busy1, total1 = machine_ticks()
        cores = os.cpu_count() or 1
        background = 100 * cores * (busy1 - busy0) / max(1, total1 - total0)
        report["machine"]["background_cpu_percent_before_run"] = round(background, 1)
        progress(f"background load before the run: {background:.0f}% of one core")
        users = [user for pair in names for user in pair]
        users += [user for phase in PHASES for user in phase.users]
        progress(f"creating {len(users)} users with `softphone user add`")
        await create_users(config, data_dir, users, plan.user_jobs)
        server = Server(config, data_dir, tmp, profile)
        progress(f"starting server pid {server.pid} on {server.base}")
        await server.wait_ready(http)
        rss_start = rss_mb(server.pid)

        progress(f"starting {plan.procs} load-generator processes, {plan.pairs} pairs")
        handles = await start_workers(server.base, names, plan.procs)
        rss_pairs = rss_mb(server.pid)

        bench = Bench(plan, server, handles, http)
        for phase in PHASES:
            bench.sections.update(await phase.run(bench))
        sections = {key: bench.sections[key] for key in HEADLINE} | bench.sections

        # Stop the server while the load generators are still connected: its graceful shutdown
        # closes their websockets (1001). The reverse order would meet the 5 s linger of server
        # handlers whose client closed first (see README).
        stopping = time.monotonic()
        report["server_exit_status"] = await server.stop()
        report["server_stop_s"] = round(time.monotonic() - stopping, 2)
        progress(f"server stopped in {report['server_stop_s']} s")
        server = None
        await stop_workers(handles)
        handles = []

        throughput = sections["throughput"]
        report.update(
            {
                "mode": plan.mode,
                "client": {
                    "processes": plan.procs,
                    "pairs_per_process": plan.pairs // plan.procs,
                    "note": "load generator shares the machine with the server",
                },
                "server": {
                    "pid_cpu_percent": throughput["server_cpu_percent"],
                    "rss_start_mb": round(rss_start, 1),
                    "rss_with_pairs_mb": round(rss_pairs, 1),
                },
                **sections,
                "targets": TARGETS,
                "met": {
                    "setups_per_s": throughput["setups_per_s"] >= TARGETS["setups_per_s"],
                    "p99_ms": sections["latency_at_half_rate"]["p99_ms"] <= TARGETS["p99_ms"],
                    "mb_per_1000_ws": sections["idle_websockets"]["mb_per_1000"]
                    <= TARGETS["mb_per_1000_ws"],
                },
            }
        )
    finally:
        await http.close()
        if server is not None:
            report["server_exit_status"] = await server.stop()
            progress(f"server stopped (exit status {report['server_exit_status']})")
        if handles:
            await stop_workers(handles)
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.signaling",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--quick", action="store_true", help="short run (< 30 s)")
    parser.add_argument(
        "--procs", type=int, choices=[1, 2], help="load-generator processes (default 2)"
    )
    parser.add_argument("--pairs", type=int, help="caller/callee pairs")
    parser.add_argument("--idle", type=int, help="idle websockets to open")
    parser.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="also run N server processes on PostgreSQL + Redis behind HAProxy (section cluster)",
    )
    parser.add_argument(
        "--tmp-root",
        metavar="DIR",
        help="diagnostics: where the data dir goes (e.g. /dev/shm to take the disk out)",
    )
    parser.add_argument(
        "--server-profile",
        metavar="PATH",
        help="diagnostics: run the server under cProfile, write stats to PATH",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    for key in ("procs", "pairs", "idle", "cluster"):
        if getattr(args, key) is not None:
            plan = dataclasses.replace(plan, **{key: getattr(args, key)})
    began = time.monotonic()
    report = asyncio.run(run(plan, args.server_profile, args.tmp_root))
    report["wall_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
