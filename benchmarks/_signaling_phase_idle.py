"""Idle-websockets phase of `benchmarks.signaling`: server RSS before and after N sessions
(login, subscribe, websocket hello), then a short closed loop with those sockets still open
(the hub scans every subscription when it publishes to a user); then the idle sessions are
unsubscribed and logged out. Report sections `idle_websockets` and
`throughput_with_idle_websockets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Any

from benchmarks._signaling_bench import Bench, Phase
from benchmarks._signaling_common import bounded, progress, rss_mb
from benchmarks._signaling_devices import Device
from benchmarks._signaling_phase_throughput import closed_loop

USER = "idle"  # every idle session logs in as this one user


async def idle_sockets(bench: Bench, count: int) -> tuple[dict[str, Any], list[Device]]:
    """Open `count` idle sessions and websockets; the server's memory before and after."""
    http = bench.http
    pid = bench.server.pid
    await asyncio.sleep(0.5)
    before = rss_mb(pid)
    started = time.monotonic()
    devices = [Device(http, bench.server.base, USER) for _ in range(count)]

    async def session(device: Device) -> None:
        await device.login()
        await device.subscribe()

    # scrypt dominates: the server verifies on its default executor (min(32, cpus + 4) threads).
    await bounded([functools.partial(session, d) for d in devices], 8)
    logged_in = time.monotonic()
    await asyncio.sleep(0.5)
    after_sessions = rss_mb(pid)
    await bounded([d.connect for d in devices], 50)
    opened = time.monotonic()
    await asyncio.sleep(1.0)
    after = rss_mb(pid)
    connections = await bench.server.gauge(http, "websocket_connections")
    report = {
        "count": count,
        "rss_before_mb": round(before, 1),
        "rss_after_sessions_mb": round(after_sessions, 1),
        "rss_after_mb": round(after, 1),
        "mb_per_1000": round((after - before) * 1000 / count, 1),
        "websockets_only_mb_per_1000": round((after - after_sessions) * 1000 / count, 1),
        "sessions_only_mb_per_1000": round((after_sessions - before) * 1000 / count, 1),
        "server_reported_websockets": int(connections),
        "login_subscribe_s": round(logged_in - started, 2),
        "websocket_open_s": round(opened - logged_in, 2),
    }
    return report, devices


async def run(bench: Bench) -> dict[str, Any]:
    plan, server = bench.plan, bench.server
    progress(f"opening {plan.idle} idle sessions and websockets")
    idle_report, idle = await idle_sockets(bench, plan.idle)
    try:
        progress(f"idle: {idle_report['rss_before_mb']} -> {idle_report['rss_after_mb']} MB")
        progress(f"closed loop for {plan.idle_throughput_s:.0f} s with the idle websockets open")
        loaded, window = await bench.measure(closed_loop, plan.idle_throughput_s)
        with_idle = {
            "idle_websockets": plan.idle,
            "setups_per_s": round(loaded.setups / plan.idle_throughput_s, 1),
            "server_cpu_ms_per_setup": round(1000 * window.server_cpu_s / max(1, loaded.setups), 3),
            "duration_s": plan.idle_throughput_s,
            "errors": loaded.errors,
            "unmatched_notifications": loaded.unmatched,
            **window.report(),
        }
        progress(f"with idle websockets: {with_idle['setups_per_s']} setups/s")
        await bounded([d.leave for d in idle], 32)
        idle = []
    finally:
        for device in idle:  # only after a failure: close without logging out
            with contextlib.suppress(Exception):
                await device.close()
    idle_report["subscriptions_after_cleanup"] = int(
        await server.gauge(bench.http, "subscriptions")
    )
    return {"idle_websockets": idle_report, "throughput_with_idle_websockets": with_idle}


PHASE = Phase(run, users=(USER,))
