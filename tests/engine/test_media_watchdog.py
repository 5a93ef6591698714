"""A call whose media connection never comes up does not sit Connected in silence: after
`media_timeout` it ends with a call:error that says why (aiortc itself reports nothing when
there is no candidate pair at all)."""

from __future__ import annotations

import asyncio
import time

import aioice.ice
import pytest

from softphone.engine import CallState
from softphone.engine.events import CallError
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties
from tests.engine.test_calls import connect

S = CallState


async def test_no_media_path_ends_the_call_with_a_reason(
    server: RunningServer, parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])
    alice = await parties.online(server, "alice", media_timeout=2.0)
    # Bob waits longer, so it is Alice's watchdog that ends the call (with equal timeouts either
    # side may fire first, and the other only sees the call ended).
    bob = await parties.online(server, "bob", media_timeout=6.0)
    started = time.monotonic()
    a_id, b_id = await connect(alice, bob)
    ended = await alice.events.state(a_id, S.ENDED, timeout=10)
    assert 1.5 < time.monotonic() - started < 8
    error = await alice.events.wait(CallError, lambda e: e.call_id == a_id)
    assert "no media connection after 2 s" in error.error.message
    assert ended.previous.state == S.CONNECTED
    await bob.events.state(b_id, S.ENDED, timeout=10)  # the server ended it for bob too


async def test_a_working_call_is_left_alone(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice", media_timeout=1.0)
    bob = await parties.online(server, "bob", media_timeout=1.0)
    a_id, b_id = await connect(alice, bob)
    await alice.engine.restart_media(a_id)
    time_limit = time.monotonic() + 2.5
    while time.monotonic() < time_limit:
        assert alice.engine.get(a_id).state == S.CONNECTED
        assert bob.engine.get(b_id).state == S.CONNECTED
        await asyncio.sleep(0.1)
    assert not [e for e in alice.events.of(a_id) if isinstance(e, CallError)]
