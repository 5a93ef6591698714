"""Hostile-clients phase of `benchmarks.signaling`: what slow consumers and half-open
connections cost the server, beside the idle baseline measured in the same run.

1. Slow consumers: `plan.slow` devices of one user, each a raw websocket whose socket has a
   tiny receive buffer and is never read, flooding pings; a caller rings that user with large
   offers meanwhile (every device gets `call.incoming` and `call.cancelled`). Server RSS before,
   at the peak, after the server cut them off (close 4003, counted by
   `websocket_slow_consumers_total`) and after they left; and the closed-loop setup rate of the
   ordinary pairs while it happens.
2. Half-open connections: `plan.half_open` TCP connections that send half a request head and
   stop. Server RSS and open descriptors before, with them open, and (full mode) after the
   server's request-head timeout: how many the server closed.

Report sections `slow_consumers` and `half_open_connections`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import os
import socket
import struct
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks._signaling_bench import Bench, Phase
from benchmarks._signaling_common import bounded, progress, rss_mb
from benchmarks._signaling_devices import Device
from benchmarks._signaling_phase_throughput import closed_loop

SLOW_USER = "slowpoke"
CALLER = "ringer"
BIG_SDP = "v=0\r\n" + "a=x-pad:" + "x" * 30_000 + "\r\n"  # a large offer fills buffers fast
HEAD_TIMEOUT_S = 20.0  # the server's request-head timeout (softphone/server/runner.py)


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def _frame(payload: bytes) -> bytes:
    """One masked client text frame (RFC 6455)."""
    mask = os.urandom(4)
    n = len(payload)
    short = n < 126
    header = struct.pack("!BB", 0x81, 0x80 | n) if short else struct.pack("!BBH", 0x81, 0xFE, n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class SlowConsumer:
    """A logged-in, subscribed device whose websocket is never read."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        url = urlsplit(self.device.base)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /v1/notifications HTTP/1.1\r\nHost: {url.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {self.device.token}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"websocket refused: {head[:80]!r}")
        hello = {"type": "hello", "subscription_id": self.device.subscription_id}
        writer.write(_frame(json.dumps(hello).encode()))
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # from here on, nothing is read
        self.writer = writer

    def flood(self, count: int) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError):
            for n in range(count):
                self.writer.write(_frame(json.dumps({"type": "ping", "id": str(n)}).encode()))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def slow_consumers(bench: Bench) -> dict[str, Any]:
    plan, server, http = bench.plan, bench.server, bench.http
    pid = server.pid
    await asyncio.sleep(0.5)
    before = rss_mb(pid)
    devices = [Device(http, server.base, SLOW_USER) for _ in range(plan.slow)]

    async def session(device: Device) -> None:
        await device.login()
        await device.subscribe()

    await bounded([functools.partial(session, d) for d in devices], 8)
    consumers = [SlowConsumer(d) for d in devices]
    await bounded([c.open for c in consumers], 25)
    opened = rss_mb(pid)
    caller = Device(http, server.base, CALLER)
    await caller.online()
    peak = opened
    rings = 0
    cut_before = await server.gauge(http, "websocket_slow_consumers_total")
    stop = asyncio.Event()

    async def abuse() -> None:
        nonlocal peak, rings
        while not stop.is_set():
            for consumer in consumers:
                consumer.flood(50)
            body = json.dumps({"to": SLOW_USER, "sdp": BIG_SDP}).encode()
            call_id = json.loads(await caller.request("POST", "/v1/calls", body, 201))["id"]
            await caller.request("POST", f"/v1/calls/{call_id}/end", None, 200)
            caller.forget(call_id)
            rings += 1
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.05)

    progress(f"{plan.slow} slow consumers flooding pings while {CALLER} rings them")
    task = asyncio.ensure_future(abuse())
    try:
        loaded, window = await bench.measure(closed_loop, plan.hostile_s)
    finally:
        stop.set()
        await task
    cut = await server.gauge(http, "websocket_slow_consumers_total") - cut_before
    during = rss_mb(pid)
    for consumer in consumers:
        consumer.close()
    await bounded([d.leave for d in devices], 16)
    await caller.leave()
    await asyncio.sleep(1.0)
    after = rss_mb(pid)
    baseline = bench.sections.get("throughput", {}).get("setups_per_s")
    rate = loaded.setups / plan.hostile_s
    return {
        "slow_consumers": plan.slow,
        "rings_to_them": rings,
        "cut_off_by_server": int(cut),
        "rss_before_mb": round(before, 1),
        "rss_with_them_open_mb": round(opened, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_end_of_flood_mb": round(during, 1),
        "rss_after_they_left_mb": round(after, 1),
        "others_setups_per_s": round(rate, 1),
        "others_setups_per_s_without_them": baseline,
        "others_errors": loaded.errors,
        **window.report(),
    }


async def half_open(bench: Bench) -> dict[str, Any]:
    plan, server = bench.plan, bench.server
    pid = server.pid
    url = urlsplit(server.base)
    await asyncio.sleep(0.5)
    before_rss, before_fds = rss_mb(pid), open_fds(pid)
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(f"GET /v1/health HTTP/1.1\r\nHost: {url.netloc}\r\nX-Slow: ".encode())
        readers.append(reader)
        writers.append(writer)

    progress(f"opening {plan.half_open} half-open connections")
    await bounded([one] * plan.half_open, 50)
    await asyncio.sleep(1.0)
    open_rss, open_fd_count = rss_mb(pid), open_fds(pid)
    report: dict[str, Any] = {
        "connections": plan.half_open,
        "rss_before_mb": round(before_rss, 1),
        "rss_with_them_mb": round(open_rss, 1),
        "kb_per_connection": round((open_rss - before_rss) * 1024 / plan.half_open, 2),
        "server_fds_before": before_fds,
        "server_fds_with_them": open_fd_count,
    }
    if plan.wait_head_timeout:
        progress(f"waiting {HEAD_TIMEOUT_S + 3:.0f} s for the server's request-head timeout")
        await asyncio.sleep(HEAD_TIMEOUT_S + 3)
        closed = 0
        for reader in readers:
            with contextlib.suppress(Exception):
                if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                    closed += 1
        report.update(
            closed_by_server=closed,
            server_fds_after_timeout=open_fds(pid),
            rss_after_timeout_mb=round(rss_mb(pid), 1),
        )
    started = time.monotonic()
    for writer in writers:
        writer.close()
    await asyncio.sleep(1.0)
    report["server_fds_after_close"] = open_fds(pid)
    report["close_s"] = round(time.monotonic() - started, 2)
    return report


async def run(bench: Bench) -> dict[str, Any]:
    slow = await slow_consumers(bench)
    progress(
        f"slow consumers: {slow['rss_before_mb']} -> peak {slow['rss_peak_mb']} -> "
        f"{slow['rss_after_they_left_mb']} MB, {slow['cut_off_by_server']} cut off"
    )
    half = await half_open(bench)
    progress(f"half-open: {half['server_fds_before']} -> {half['server_fds_with_them']} fds")
    return {"slow_consumers": slow, "half_open_connections": half}


PHASE = Phase(run, users=(SLOW_USER, CALLER))
