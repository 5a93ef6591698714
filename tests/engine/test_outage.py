"""Calls through a server outage: a real `softphone serve` process killed with SIGKILL and
started again on the same port and data directory, with real engines and real media.

A hang-up made while the server is down reaches it once it is back; a hold tried while it is
down fails with a clear error and leaves the call as it was, and works once it is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest

from softphone.engine import CallState, EngineError, EngineErrorCode
from softphone.engine.events import CallReceive, CallStateChange
from softphone.server.store import Store
from tests.conftest import _HASH
from tests.engine.conftest import FAST, Parties, Party
from tests.engine.test_calls import connect
from tests.server.harness import PASSWORD

S = CallState
LOUD, QUIET = 0.05, 0.005


class ServeProcess:
    """`softphone serve` in a subprocess on a fixed loopback port and data directory, so it
    can be killed (SIGKILL, by its PID) and started again where it was."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = _free_port()
        self.config = data / "config.toml"
        self.config.write_text(
            f'[server]\ndata_dir = "{data}"\nresume_window = 30\n'
            "[rate_limits]\nlogin_per_minute = 1000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_")}
        env["SOFTPHONE_CONFIG"] = str(self.config)
        self._log = (self.data / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "softphone",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc.poll() is None, (self.data / "serve.log").read_text()
                try:
                    async with http.get(f"{self.url}/v1/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no close frames; the kernel resets its connections."""
        proc, self.proc = self.proc, None
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    data = tmp_path / "server"
    data.mkdir(mode=0o700)
    store = Store(data / "server.sqlite3")
    for user in ("alice", "bob"):
        store.add_user(user, _HASH, False)
    store.close()
    server = ServeProcess(data)
    await server.start()
    yield server
    server.kill()


async def online(parties: Parties, server: ServeProcess, user: str, **options: Any) -> Party:
    party = parties.make(**options)
    await party.engine.start(server.url, user, lambda: PASSWORD, backoff=FAST, stop_timeout=1.0)
    return party


async def test_hang_up_during_outage_reaches_the_server_when_it_is_back(
    serve: ServeProcess, parties: Parties
) -> None:
    alice = await online(parties, serve, "alice", audio_in="tone:1000")
    bob = await online(parties, serve, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)
    server_id = alice.engine.get(a_id).server_id
    assert server_id is not None

    serve.kill()
    await bob.engine.end(b_id)
    ended = bob.engine.get(b_id)  # at once, without the server
    assert (ended.state, ended.end_reason) == (S.ENDED, "hangup")
    # Alice cannot know yet: the media path does not go through the server.
    assert alice.engine.get(a_id).state == S.CONNECTED

    await serve.start()
    await alice.events.state(a_id, S.ENDED, timeout=30)
    client = alice.engine.client
    assert client is not None
    assert server_id not in [c.id for c in await client.rest.list_calls()]
    record = next(r for r in await client.rest.history() if r.id == server_id)
    # Bob's own end reached the server (not a timeout of his device, not Alice's resync).
    assert record.ended_at is not None and record.end_reason == "hangup"


async def test_hold_during_outage_fails_clearly_and_leaves_the_call_as_it_was(
    serve: ServeProcess, parties: Parties
) -> None:
    alice = await online(parties, serve, "alice", audio_in="tone:1000", reoffer_wait=2.0)
    bob = await online(parties, serve, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)

    serve.kill()
    with pytest.raises(EngineError) as failed:
        await alice.engine.hold(a_id)
    assert failed.value.code == EngineErrorCode.SIGNALING_UNAVAILABLE
    assert failed.value.message == "the server is unreachable; the call is unchanged"
    for party, call_id in ((alice, a_id), (bob, b_id)):
        call = party.engine.get(call_id)
        assert (call.state, call.local_hold, call.remote_hold) == (S.CONNECTED, False, False)
    assert alice.events.states(a_id)[-1] == "Connected"
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert await alice.ears.frequency() == pytest.approx(600, abs=20)

    await serve.start()
    client = alice.engine.client
    assert client is not None
    await client.wait_connected(30)
    await alice.engine.hold(a_id)
    await bob.events.state(b_id, S.ON_HOLD)
    assert await bob.ears.level() < QUIET
    await alice.engine.unhold(a_id)
    await bob.events.wait(
        CallStateChange,
        lambda e: e.call_id == b_id and e.previous.state == S.ON_HOLD and e.state == S.CONNECTED,
    )
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert await alice.ears.frequency() == pytest.approx(600, abs=20)
    assert alice.engine.get(a_id).state == S.CONNECTED


async def test_ends_from_both_sides_during_outage_leave_nothing_pending(
    serve: ServeProcess, parties: Parties
) -> None:
    """Both hang up while the server is down: one end is taken, the other is refused (the
    call has ended already), and the refusal clears it rather than retrying for ever."""
    alice = await online(parties, serve, "alice")
    bob = await online(parties, serve, "bob")
    a_id, b_id = await connect(alice, bob)
    server_id = alice.engine.get(a_id).server_id

    serve.kill()
    await alice.engine.end(a_id)
    await bob.engine.end(b_id)
    assert [e.server_id for e in alice.engine.outbox.pending] == [server_id]
    assert [e.server_id for e in bob.engine.outbox.pending] == [server_id]

    await serve.start()
    deadline = time.monotonic() + 30
    while len(alice.engine.outbox) or len(bob.engine.outbox):
        assert time.monotonic() < deadline, "ends still pending after the server came back"
        await asyncio.sleep(0.1)
    client = bob.engine.client
    assert client is not None
    assert await client.rest.list_calls() == []
    record = next(r for r in await client.rest.history() if r.id == server_id)
    assert record.ended_at is not None and record.end_reason == "hangup"


async def test_reject_during_outage_reaches_the_caller_when_the_server_is_back(
    serve: ServeProcess, parties: Parties
) -> None:
    alice = await online(parties, serve, "alice")
    bob = await online(parties, serve, "bob")
    a_id = await alice.engine.make("bob")
    b_id = (await bob.events.wait(CallReceive)).call_id
    await alice.events.state(a_id, S.RINGING)
    server_id = alice.engine.get(a_id).server_id

    serve.kill()
    await bob.engine.reject(b_id)
    rejected = bob.engine.get(b_id)
    assert (rejected.state, rejected.end_reason) == (S.ENDED, "rejected")

    await serve.start()
    await alice.events.state(a_id, S.ENDED, timeout=30)
    client = alice.engine.client
    assert client is not None
    record = next(r for r in await client.rest.history() if r.id == server_id)
    assert record.ended_at is not None and record.end_reason == "rejected"
