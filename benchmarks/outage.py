"""Lost hang-ups: time from a server restart to every hang-up made during the outage delivered.

Run from the repository root::

    python -m benchmarks.outage [--calls N] [--outage SECONDS] [--quick]

A real `softphone serve` process (loopback, fresh temporary data dir) and real engines in this
process: one caller engine ("alice") with N connected audio calls, one to each of N callee
engines. The server is killed with SIGKILL; every callee hangs up (the call ends locally at once,
the end goes to the engine's outbox); after `--outage` seconds the server is started again on
the same port and data dir. Reported, from the moment the restarted server answers
`/v1/health`:

- `all_delivered_s`: every callee's outbox is empty (every end taken by the server);
- `all_ended_at_caller_s`: the caller has seen all N calls Ended;
- `server_start_s`: from spawning the process to its first health answer (for scale);
- `end_reasons`: the server's history end reasons (all `hangup` when every end arrived).

The engines use their default back-off (client reconnect 0.5 s doubling up to 30 s; the
outbox 0.25 s doubling up to 2 s), so the figure is what a user gets: the outbox's own retries
reach a restarted server within about 2 s, whatever the reconnect back-off has grown to. The
caller learns of the ends when its own channel reconnects (its back-off, so later after a long
outage). One JSON object goes to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._calls_common import force_loopback
from softphone.engine import CallState, Engine
from softphone.engine.events import CallReceive, CallStateChange, EngineEvent
from softphone.server.passwords import hash_password
from softphone.server.store import Store

PASSWORD = "benchmark password"


def log(msg: str) -> None:
    print(f"[outage {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`softphone serve` on a fixed port and data dir, killed and started again in place."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.config = data / "config.toml"
        self.config.write_text(
            f'[server]\ndata_dir = "{data}"\nresume_window = 60\n'
            "[rate_limits]\nlogin_per_minute = 100000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> float:
        """Start it; returns the monotonic time of its first health answer."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_")}
        env["SOFTPHONE_CONFIG"] = str(self.config)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "softphone", "serve", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                if self.proc.poll() is not None:
                    raise RuntimeError("the server exited")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/v1/health") as response:
                        if response.status == 200:
                            return time.monotonic()
                await asyncio.sleep(0.02)
        raise RuntimeError("the server did not start")

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


class Watcher:
    """Call ids by event, for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.received: list[str] = []
        self.connected: set[str] = set()
        self.ended: set[str] = set()
        self.changed = asyncio.Event()
        engine.subscribe(self)

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, CallReceive):
            self.received.append(event.call_id)
        elif isinstance(event, CallStateChange):
            if event.state == CallState.CONNECTED:
                self.connected.add(event.call_id)
            elif event.state == CallState.ENDED:
                self.ended.add(event.call_id)
        self.changed.set()

    async def until(self, done: Any, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


async def until(done: Any, timeout: float = 120.0) -> None:
    async with asyncio.timeout(timeout):
        while not done():
            await asyncio.sleep(0.005)


async def run(calls: int, outage: float) -> dict[str, Any]:
    force_loopback()
    with tempfile.TemporaryDirectory(prefix="sp-outage-") as tmp:
        data = Path(tmp)
        data.chmod(0o700)
        store = Store(data / "server.sqlite3")
        password_hash = hash_password(PASSWORD)
        callees = [f"bob{i}" for i in range(calls)]
        for name in ["alice", *callees]:
            store.add_user(name, password_hash, False)
        store.close()
        server = Server(data)
        await server.start()
        engines: list[Engine] = []
        try:
            alice = Engine(audio_in="silence")
            engines.append(alice)
            await alice.start(server.url, "alice", lambda: PASSWORD)
            a_watch = Watcher(alice)
            bobs: list[tuple[Engine, Watcher]] = []
            for name in callees:
                bob = Engine(audio_in="silence")
                engines.append(bob)
                await bob.start(server.url, name, lambda: PASSWORD)
                bobs.append((bob, Watcher(bob)))
            log(f"{calls} callees online; calling")
            a_ids = []
            for name, (bob, watch) in zip(callees, bobs, strict=True):
                a_ids.append(await alice.make(name))
                await watch.until(lambda w=watch: bool(w.received))
                await bob.answer(watch.received[0])
            await a_watch.until(lambda: a_watch.connected >= set(a_ids))
            server_ids = [str(alice.get(a).server_id) for a in a_ids]
            log(f"{calls} calls connected; killing the server")

            server.kill()
            for bob, watch in bobs:
                await bob.end(watch.received[0])
            pending = sum(len(bob.outbox) for bob, _ in bobs)
            log(f"{pending} ends pending; server down for {outage:g} s")
            await asyncio.sleep(outage)

            spawned = time.monotonic()
            ready = await server.start()
            log("server back")
            await until(lambda: all(not len(bob.outbox) for bob, _ in bobs))
            delivered = time.monotonic()
            await a_watch.until(lambda: a_watch.ended >= set(a_ids))
            ended = time.monotonic()

            client = alice.client
            assert client is not None
            history = {r.id: r.end_reason for r in await client.rest.history(limit=calls)}
            live = await client.rest.list_calls()
            return {
                "benchmark": "outage",
                "calls": calls,
                "outage_s": outage,
                "pending_ends_during_outage": pending,
                "server_start_s": round(ready - spawned, 3),
                "all_delivered_s": round(delivered - ready, 3),
                "all_ended_at_caller_s": round(ended - ready, 3),
                "end_reasons": sorted({str(history.get(s)) for s in server_ids}),
                "live_calls_after": len(live),
            }
        finally:
            for engine in engines:
                with contextlib.suppress(Exception):
                    await engine.stop(timeout=1.0)
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--outage", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="3 calls, 1 s outage")
    args = parser.parse_args()
    calls, outage = (3, 1.0) if args.quick else (args.calls, args.outage)
    print(json.dumps(asyncio.run(run(calls, outage)), indent=2))


if __name__ == "__main__":
    main()
