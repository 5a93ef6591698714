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
the worker that owns both devices (one clock). Phases, in order:

1. idle websockets: server RSS before and after N sessions (login, subscribe, websocket hello);
   then a short closed-loop run with those sockets still open (the hub scans every subscription
   when it publishes to a user); then the idle sessions are unsubscribed and logged out.
2. throughput: every pair runs setups back to back (closed loop) for a fixed window after a
   warm-up; setups/s, server CPU (``/proc/<pid>/stat``), client CPU, machine CPU.
3. latency at half rate: open-loop Poisson arrivals at 50% of the measured throughput; hop
   latency percentiles, overall and per hop.

The client shares the machine with the server, so the report carries the client's CPU as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

T = TypeVar("T")

PASSWORD = "benchmark-password-1"
SDP_OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
SDP_ANSWER = SDP_OFFER + "a=answer\r\n"
HOPS = ("make_to_incoming", "ringing_to_ringing", "answer_to_answered", "end_to_ended")
TARGETS = {"setups_per_s": 300.0, "p99_ms": 25.0, "mb_per_1000_ws": 60.0}
SETUP_TIMEOUT = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
START = time.monotonic()


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
)


def progress(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A setup that did not go as the protocol says (status, frame type or call id)."""


# -- /proc readings ----------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's main thread (the server's event loop) spent runnable but not running."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return math.nan  # kernel without schedstats


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of unsorted samples (0 when there are none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100.0 * len(ordered)) - 1)]


def summary_ms(samples: Sequence[float]) -> dict[str, float | int]:
    return {
        "count": len(samples),
        "p50_ms": round(percentile(samples, 50) * 1000, 3),
        "p99_ms": round(percentile(samples, 99) * 1000, 3),
        "max_ms": round(max(samples, default=0.0) * 1000, 3),
    }


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# -- client devices ----------------------------------------------------------------------------


class _CallRef(msgspec.Struct):
    id: str


class _Frame(msgspec.Struct):
    type: str
    call_id: str | None = None
    call: _CallRef | None = None


class _Token(msgspec.Struct):
    token: str


class _Subscribed(msgspec.Struct):
    subscription_id: str


_frame_decoder = msgspec.json.Decoder(_Frame)
_call_decoder = msgspec.json.Decoder(_CallRef)
_token_decoder = msgspec.json.Decoder(_Token)
_sub_decoder = msgspec.json.Decoder(_Subscribed)

FrameKey = tuple[str, str]  # notification type, call id


class Device:
    """One client device: a session, a subscription and its notification websocket."""

    def __init__(self, http: aiohttp.ClientSession, base: str, user: str) -> None:
        self.http = http
        self.base = base
        self.user = user
        self.token = ""
        self.subscription_id = ""
        self.headers: dict[str, str] = {}
        self.json_headers: dict[str, str] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        # Notifications by (type, call id): receive times not yet claimed, and who is waiting.
        # Keyed rather than queued so one device can carry several calls at once (open loop).
        self._arrived: dict[FrameKey, float] = {}
        self._waiting: dict[FrameKey, asyncio.Future[float]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def request(self, method: str, path: str, body: bytes | None, expect: int) -> bytes:
        headers = self.json_headers if body is not None else self.headers
        async with self.http.request(
            method, self.base + path, data=body, headers=headers
        ) as response:
            data = await response.read()
            if response.status != expect:
                raise BenchError(f"{method} {path}: {response.status} {data[:200]!r}")
            return data

    async def login(self) -> None:
        body = json.dumps({"username": self.user, "password": PASSWORD}).encode()
        async with self.http.post(
            self.base + "/v1/sessions", data=body, headers={"Content-Type": "application/json"}
        ) as response:
            data = await response.read()
            if response.status != 201:
                raise BenchError(f"login {self.user}: {response.status} {data[:200]!r}")
        self.token = _token_decoder.decode(data).token
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.json_headers = {**self.headers, "Content-Type": "application/json"}

    async def subscribe(self) -> None:
        data = await self.request("POST", "/v1/subscriptions", b'{"services":["call"]}', 201)
        self.subscription_id = _sub_decoder.decode(data).subscription_id

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(self.base + "/v1/notifications", headers=self.headers)
        await self.ws.send_str(
            json.dumps({"type": "hello", "subscription_id": self.subscription_id})
        )
        msg = await self.ws.receive(timeout=10.0)
        if msg.type != aiohttp.WSMsgType.TEXT or _frame_decoder.decode(msg.data).type != "welcome":
            raise BenchError(f"{self.user}: no welcome frame: {msg.type} {msg.data!r}")
        self._reader = asyncio.create_task(self._read(self.ws))

    async def online(self) -> Device:
        await self.login()
        await self.subscribe()
        await self.connect()
        return self

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # Reading also answers the server's heartbeat pings (autoping happens in receive()).
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                now = time.monotonic()
                frame = _frame_decoder.decode(msg.data)
                key = (frame.type, (frame.call_id if frame.call is None else frame.call.id) or "")
                waiter = self._waiting.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(now)
                else:
                    self._arrived[key] = now

    async def expect(self, kind: str, call_id: str) -> float:
        """The receive time of notification `kind` for `call_id` (waiting for it if need be)."""
        key = (kind, call_id)
        at = self._arrived.pop(key, None)
        if at is not None:
            return at
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        try:
            return await waiter
        finally:
            self._waiting.pop(key, None)

    def forget(self, call_id: str) -> None:
        for key in [key for key in self._arrived if key[1] == call_id]:
            del self._arrived[key]

    def unmatched(self) -> int:
        """Notifications nobody asked for (they should not exist); cleared once counted."""
        count = len(self._arrived)
        self._arrived.clear()
        return count

    async def leave(self) -> None:
        """Unsubscribe and log out (the server closes the websocket), then close it."""
        with contextlib.suppress(aiohttp.ClientError, BenchError, asyncio.TimeoutError):
            await self.request("DELETE", f"/v1/subscriptions/{self.subscription_id}", None, 204)
            await self.request("DELETE", "/v1/sessions", None, 204)
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class Pair:
    """A caller device and a callee device (distinct users) that set up calls to each other."""

    def __init__(self, caller: Device, callee: Device) -> None:
        self.caller = caller
        self.callee = callee
        self.make_body = json.dumps({"to": callee.user, "sdp": SDP_OFFER}).encode()
        self.answer_body = json.dumps({"sdp": SDP_ANSWER}).encode()

    async def setup(self) -> tuple[float, float, float, float]:
        """One full setup and hangup; the four hop latencies in seconds."""
        caller, callee = self.caller, self.callee
        call_id, live = "", False
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                sent = time.monotonic()
                call_id = _call_decoder.decode(
                    await caller.request("POST", "/v1/calls", self.make_body, 201)
                ).id
                live = True
                incoming = await callee.expect("call.incoming", call_id) - sent
                path = f"/v1/calls/{call_id}"
                sent = time.monotonic()
                await callee.request("POST", path + "/ringing", None, 200)
                ringing = await caller.expect("call.ringing", call_id) - sent
                sent = time.monotonic()
                await callee.request("POST", path + "/answer", self.answer_body, 200)
                answered = await caller.expect("call.answered", call_id) - sent
                sent = time.monotonic()
                await caller.request("POST", path + "/end", None, 200)
                live = False
                ended = await callee.expect("call.ended", call_id) - sent
        except Exception:
            await self._recover(call_id, live)
            raise
        return incoming, ringing, answered, ended

    async def _recover(self, call_id: str, live: bool) -> None:
        """After a failed setup: hang up what may still be live and forget its frames."""
        if live:
            with contextlib.suppress(aiohttp.ClientError, BenchError, asyncio.TimeoutError):
                await self.caller.request("POST", f"/v1/calls/{call_id}/end", None, 200)
        await asyncio.sleep(0.2)
        if call_id:
            self.caller.forget(call_id)
            self.callee.forget(call_id)


def new_http() -> aiohttp.ClientSession:
    # limit=0: websockets hold their connections, so the default pool of 100 would run dry.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30)
    )


async def bounded(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


# -- load-generator worker process -------------------------------------------------------------


@dataclass
class PhaseResult:
    setups: int = 0  # completed inside the measurement window
    errors: int = 0
    unmatched: int = 0  # notifications that no setup claimed
    max_in_flight: int = 0  # open loop: most setups under way at once
    cpu_s: float = 0.0  # this process, over the window
    hops: list[list[float]] = field(default_factory=lambda: [[] for _ in HOPS])


class Worker:
    def __init__(self, base: str, names: list[tuple[str, str]]) -> None:
        self.base = base
        self.names = names
        self.pairs: list[Pair] = []
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.http = new_http()
        http = self.http
        devices = await bounded(
            [Device(http, self.base, user).online for pair in self.names for user in pair], 8
        )
        self.pairs = [Pair(devices[i], devices[i + 1]) for i in range(0, len(devices), 2)]

    async def stop(self) -> None:
        for pair in self.pairs:
            await pair.caller.close()
            await pair.callee.close()
        if self.http is not None:
            await self.http.close()

    async def _cpu_window(self, start: float, end: float, result: PhaseResult) -> None:
        await sleep_until(start)
        before = time.process_time()
        await sleep_until(end)
        result.cpu_s = time.process_time() - before

    async def _one(self, pair: Pair, result: PhaseResult, count: Callable[[float], bool]) -> None:
        try:
            hops = await pair.setup()
        except (BenchError, aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
            result.errors += 1
            if result.errors <= 5:
                progress(f"setup error: {exc!r}")
            return
        if count(time.monotonic()):
            result.setups += 1
            for samples, value in zip(result.hops, hops, strict=True):
                samples.append(value)

    async def closed_loop(self, start: float, warmup: float, duration: float) -> PhaseResult:
        """Every pair runs setups back to back; count the ones completed in the window."""
        result = PhaseResult()
        w0, w1 = start + warmup, start + warmup + duration

        def in_window(done: float) -> bool:
            return w0 <= done < w1

        async def run(pair: Pair) -> None:
            while time.monotonic() < w1:
                await self._one(pair, result, in_window)

        await sleep_until(start)
        await asyncio.gather(self._cpu_window(w0, w1, result), *(run(p) for p in self.pairs))
        result.unmatched = self._unmatched()
        return result

    def _unmatched(self) -> int:
        return sum(p.caller.unmatched() + p.callee.unmatched() for p in self.pairs)

    async def open_loop(
        self, start: float, warmup: float, duration: float, rate: float, seed: int
    ) -> PhaseResult:
        """Poisson arrivals at `rate`, never waiting for earlier setups (pairs taken in turn,
        several calls per pair if need be); the setups that start in the window count."""
        result = PhaseResult()
        w0, w1 = start + warmup, start + warmup + duration
        rng = random.Random(seed)
        tasks: set[asyncio.Task[None]] = set()

        async def run(pair: Pair, counted: bool) -> None:
            await self._one(pair, result, lambda _: counted)

        cpu = asyncio.create_task(self._cpu_window(w0, w1, result))
        arrival, turn = start, 0
        while True:
            arrival += rng.expovariate(rate)
            if arrival >= w1:
                break
            await sleep_until(arrival)
            task = asyncio.create_task(run(self.pairs[turn % len(self.pairs)], arrival >= w0))
            turn += 1
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            result.max_in_flight = max(result.max_in_flight, len(tasks))
        await asyncio.gather(cpu, *tasks)
        result.unmatched = self._unmatched()
        return result


async def _worker_main(conn: Connection, base: str, names: list[tuple[str, str]]) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(base, names)
    try:
        await worker.start()
        conn.send(("ready", None))
        while True:
            command: tuple[Any, ...] = await loop.run_in_executor(None, conn.recv)
            if command[0] == "stop":
                break
            if command[0] == "closed":
                result = await worker.closed_loop(*command[1:])
            else:
                result = await worker.open_loop(*command[1:])
            conn.send(("result", result))
    except Exception:
        conn.send(("failed", traceback.format_exc()))
    finally:
        await worker.stop()
        conn.send(("stopped", None))


def worker_entry(conn: Connection, base: str, names: list[tuple[str, str]]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops us
    asyncio.run(_worker_main(conn, base, names))


class WorkerHandle:
    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    async def receive(self, timeout: float) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.conn.poll, timeout):
            raise RuntimeError(f"worker {self.process.pid} did not answer in {timeout:.0f} s")
        kind, payload = self.conn.recv()
        if kind == "failed":
            raise RuntimeError(f"worker {self.process.pid} failed:\n{payload}")
        return str(kind), payload


async def stop_workers(handles: list[WorkerHandle]) -> None:
    """Ask each worker to stop (it closes its sockets), wait, and terminate stragglers by pid."""
    for handle in handles:
        with contextlib.suppress(OSError):
            handle.conn.send(("stop",))
    for handle in handles:
        with contextlib.suppress(RuntimeError, OSError, EOFError):
            while (await handle.receive(timeout=15))[0] != "stopped":
                pass
    loop = asyncio.get_running_loop()
    for handle in handles:
        await loop.run_in_executor(None, handle.process.join, 10)
        if handle.process.is_alive():
            progress(f"worker {handle.process.pid} did not exit; terminating it")
            handle.process.terminate()
            await loop.run_in_executor(None, handle.process.join, 5)
    progress("load generators stopped")


# -- the server process ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """\
[server]
max_devices_per_user = 5000
max_live_calls_per_account = 1000
ring_timeout = 60

[rate_limits]
login_per_minute = 1000000
"""


async def create_users(config: Path, data_dir: Path, names: list[str], jobs: int) -> None:
    env = {**os.environ, "SOFTPHONE_PASSWORD": PASSWORD}

    async def add(name: str) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "softphone",
            "--config",
            str(config),
            "user",
            "--data-dir",
            str(data_dir),
            "add",
            name,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"user add {name} failed: {err.decode().strip()}")

    await bounded([functools.partial(add, name) for name in names], jobs)


class Server:
    def __init__(self, config: Path, data_dir: Path, log_dir: Path, profile: str | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable]
        if profile:
            command += ["-m", "cProfile", "-o", profile]
        command += [
            "-m",
            "softphone",
            "--config",
            str(config),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ]
        self._log = (log_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.pid = self.process.pid
        self.log_path = log_dir / "server.log"

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.base + "/v1/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise RuntimeError("server did not come up in time")

    async def gauge(self, http: aiohttp.ClientSession, name: str) -> float:
        async with http.get(self.base + "/v1/metrics") as response:
            for line in (await response.text()).splitlines():
                if line.startswith(f"softphone_{name} "):
                    return float(line.split()[1])
        return math.nan

    async def stop(self) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not go. Always by our own child's pid."""
        loop = asyncio.get_running_loop()
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    await loop.run_in_executor(None, self.process.wait, 15)
                except subprocess.TimeoutExpired:
                    progress("server ignored SIGTERM; killing it")
                    self.process.kill()
                    await loop.run_in_executor(None, self.process.wait, 5)
            return self.process.returncode
        finally:
            self._log.close()


# -- orchestration -----------------------------------------------------------------------------


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
    def __init__(self, plan: Plan, server: Server, workers: list[WorkerHandle]) -> None:
        self.plan = plan
        self.server = server
        self.workers = workers

    async def phase(
        self, commands: list[tuple[Any, ...]], start: float, warmup: float, duration: float
    ) -> tuple[PhaseResult, Window]:
        """Send each worker its command, sample CPU over the window, merge the results."""
        for handle, command in zip(self.workers, commands, strict=True):
            handle.conn.send(command)
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

    async def closed(self, duration: float) -> tuple[PhaseResult, Window]:
        start = time.monotonic() + 0.2
        warmup = self.plan.warmup_s
        commands = [("closed", start, warmup, duration) for _ in self.workers]
        return await self.phase(commands, start, warmup, duration)

    async def open(self, duration: float, rate: float) -> tuple[PhaseResult, Window]:
        start = time.monotonic() + 0.2
        warmup = self.plan.warmup_s
        per_worker = rate / len(self.workers)
        commands = [
            ("open", start, warmup, duration, per_worker, 1000 + index)
            for index in range(len(self.workers))
        ]
        return await self.phase(commands, start, warmup, duration)


def latency_report(result: PhaseResult) -> dict[str, Any]:
    every = [value for samples in result.hops for value in samples]
    report: dict[str, Any] = summary_ms(every)
    report["per_hop"] = {
        name: summary_ms(samples) for name, samples in zip(HOPS, result.hops, strict=True)
    }
    return report


async def idle_sockets(
    bench: Bench, http: aiohttp.ClientSession, count: int
) -> tuple[dict[str, Any], list[Device]]:
    pid = bench.server.pid
    await asyncio.sleep(0.5)
    before = rss_mb(pid)
    started = time.monotonic()
    devices = [Device(http, bench.server.base, "idle") for _ in range(count)]

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
    idle: list[Device] = []
    http = new_http()
    try:
        busy0, total0 = machine_ticks()
        await asyncio.sleep(1.0)
        busy1, total1 = machine_ticks()
        cores = os.cpu_count() or 1
        background = 100 * cores * (busy1 - busy0) / max(1, total1 - total0)
        report["machine"]["background_cpu_percent_before_run"] = round(background, 1)
        progress(f"background load before the run: {background:.0f}% of one core")
        users = [user for pair in names for user in pair] + ["idle"]
        progress(f"creating {len(users)} users with `softphone user add`")
        await create_users(config, data_dir, users, plan.user_jobs)
        server = Server(config, data_dir, tmp, profile)
        progress(f"starting server pid {server.pid} on {server.base}")
        await server.wait_ready(http)
        rss_start = rss_mb(server.pid)

        progress(f"starting {plan.procs} load-generator processes, {plan.pairs} pairs")
        context = multiprocessing.get_context("spawn")
        for index in range(plan.procs):
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_entry,
                name=f"bench-worker-{index}",
                args=(child, server.base, names[index :: plan.procs]),
            )
            process.start()
            handles.append(WorkerHandle(process, parent))
        for handle in handles:
            await handle.receive(timeout=60)
        rss_pairs = rss_mb(server.pid)
        bench = Bench(plan, server, handles)

        progress(f"opening {plan.idle} idle sessions and websockets")
        idle_report, idle = await idle_sockets(bench, http, plan.idle)
        progress(f"idle: {idle_report['rss_before_mb']} -> {idle_report['rss_after_mb']} MB")
        progress(f"closed loop for {plan.idle_throughput_s:.0f} s with the idle websockets open")
        loaded, window = await bench.closed(plan.idle_throughput_s)
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
        idle_report["subscriptions_after_cleanup"] = int(await server.gauge(http, "subscriptions"))

        progress(f"throughput: closed loop, {plan.pairs} pairs, {plan.throughput_s:.0f} s")
        result, window = await bench.closed(plan.throughput_s)
        rate = result.setups / plan.throughput_s
        throughput = {
            "setups_per_s": round(rate, 1),
            "pairs": plan.pairs,
            "duration_s": plan.throughput_s,
            "warmup_s": plan.warmup_s,
            "setups": result.setups,
            "errors": result.errors,
            "unmatched_notifications": result.unmatched,
            # Steadier than setups/s when the host is noisy: the server's cost of one setup.
            "server_cpu_ms_per_setup": round(1000 * window.server_cpu_s / max(1, result.setups), 3),
            **window.report(),
            "latency_at_max": latency_report(result),
        }
        progress(
            f"throughput: {throughput['setups_per_s']} setups/s, server "
            f"{throughput['server_cpu_percent']}% cpu, clients "
            f"{throughput['client_cpu_percent_per_process']}"
        )

        half = max(1.0, rate / 2)
        progress(f"latency: open loop at {half:.0f} setups/s for {plan.latency_s:.0f} s")
        result, window = await bench.open(plan.latency_s, half)
        latency = {
            "rate_per_s": round(half, 1),
            "achieved_per_s": round(result.setups / plan.latency_s, 1),
            "duration_s": plan.latency_s,
            "arrivals": "poisson",
            "setups": result.setups,
            "errors": result.errors,
            "unmatched_notifications": result.unmatched,
            "max_setups_in_flight_per_process": result.max_in_flight,
            **latency_report(result),
            **window.report(),
        }
        progress(f"latency: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms")

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
                "throughput": throughput,
                "latency_at_half_rate": latency,
                "idle_websockets": idle_report,
                "throughput_with_idle_websockets": with_idle,
                "targets": TARGETS,
                "met": {
                    "setups_per_s": throughput["setups_per_s"] >= TARGETS["setups_per_s"],
                    "p99_ms": latency["p99_ms"] <= TARGETS["p99_ms"],
                    "mb_per_1000_ws": idle_report["mb_per_1000"] <= TARGETS["mb_per_1000_ws"],
                },
            }
        )
    finally:
        for device in idle:
            with contextlib.suppress(Exception):
                await device.close()
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
    for key in ("procs", "pairs", "idle"):
        if getattr(args, key) is not None:
            plan = dataclasses.replace(plan, **{key: getattr(args, key)})
    began = time.monotonic()
    report = asyncio.run(run(plan, args.server_profile, args.tmp_root))
    report["wall_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
