"""The load-generator processes of `benchmarks.signaling`.

Each worker process owns some caller/callee pairs (all their devices online before the first
phase) and runs one load at a time on request: the parent sends `(load, start, warmup,
duration, *args)` down the pipe, the worker runs `await load(worker, start, warmup, duration,
*args)` and sends back its `PhaseResult`. A load is a module-level coroutine function of a
phase module (pickled by reference, so the worker imports that module): the closed loop lives
in `_signaling_phase_throughput`, the open loop in `_signaling_phase_latency`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.process
import signal
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import msgspec

from benchmarks._signaling_common import (
    HOPS,
    BenchError,
    bounded,
    new_http,
    progress,
    sleep_until,
)
from benchmarks._signaling_devices import Device, Pair


@dataclass
class PhaseResult:
    setups: int = 0  # completed inside the measurement window
    errors: int = 0
    unmatched: int = 0  # notifications that no setup claimed
    max_in_flight: int = 0  # open loop: most setups under way at once
    cpu_s: float = 0.0  # this process, over the window
    hops: list[list[float]] = field(default_factory=lambda: [[] for _ in HOPS])


class Worker:
    """One load-generator process's pairs, and what every load needs to run setups on them."""

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

    async def cpu_window(self, start: float, end: float, result: PhaseResult) -> None:
        """This process's CPU from `start` to `end` into `result.cpu_s`."""
        await sleep_until(start)
        before = time.process_time()
        await sleep_until(end)
        result.cpu_s = time.process_time() - before

    async def one_setup(
        self, pair: Pair, result: PhaseResult, count: Callable[[float], bool]
    ) -> None:
        """One setup on `pair`: an error is counted; a success too if `count(done time)`."""
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

    def unmatched(self) -> int:
        return sum(p.caller.unmatched() + p.callee.unmatched() for p in self.pairs)


Load = Callable[..., Awaitable[PhaseResult]]
"""`async load(worker, start, warmup, duration, *args) -> PhaseResult`, run in a worker."""


async def _worker_main(conn: Connection, base: str, names: list[tuple[str, str]]) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(base, names)
    try:
        await worker.start()
        conn.send(("ready", None))
        while True:
            command: tuple[Any, ...] = await loop.run_in_executor(None, conn.recv)
            load, *args = command
            if load == "stop":
                break
            result = await load(worker, *args)
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

    def send(self, load: Load, *args: Any) -> None:
        """Have the worker run `load(worker, *args)`; its result comes back via `receive`."""
        self.conn.send((load, *args))

    async def receive(self, timeout: float) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.conn.poll, timeout):
            raise RuntimeError(f"worker {self.process.pid} did not answer in {timeout:.0f} s")
        kind, payload = self.conn.recv()
        if kind == "failed":
            raise RuntimeError(f"worker {self.process.pid} failed:\n{payload}")
        return str(kind), payload


async def start_workers(base: str, names: list[tuple[str, str]], procs: int) -> list[WorkerHandle]:
    """`procs` worker processes sharing the pairs `names`, each with its devices online."""
    context = multiprocessing.get_context("spawn")
    handles: list[WorkerHandle] = []
    try:
        for index in range(procs):
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_entry,
                name=f"bench-worker-{index}",
                args=(child, base, names[index::procs]),
            )
            process.start()
            handles.append(WorkerHandle(process, parent))
        for handle in handles:
            await handle.receive(timeout=60)
    except BaseException:
        if handles:
            await stop_workers(handles)
        raise
    return handles


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
