"""Two engines call each other through a server that speaks only https/wss (test CA)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from softphone.engine import CallState
from softphone.engine.events import CallError, CallReceive
from softphone.server.runner import RunningServer
from softphone.server.services import SERVICES
from tests.client.conftest import Servers
from tests.conftest import _HASH
from tests.engine.conftest import FAST, Parties
from tests.server.harness import PASSWORD
from tests.server.test_ca import TestCA
from tests.server.test_tls import tls_config


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice never offers 127.0.0.1 by itself; these calls stay on loopback."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, TestCA]]:
    ca = TestCA(tmp_path / "ca")
    servers = Servers(tls_config(tmp_path / "data", ca))
    server = await servers.start()
    server.app[SERVICES].store.add_user("echo", _HASH, False)
    yield server, ca
    await servers.close()


@pytest.fixture
async def parties() -> AsyncIterator[Parties]:
    made = Parties()
    yield made
    await made.close()


async def test_engines_call_over_https_and_wss(
    tls_server: tuple[RunningServer, TestCA], parties: Parties
) -> None:
    server, ca = tls_server
    assert server.url.startswith("https://")
    alice = parties.make(audio_in="tone:1000")
    bob = parties.make(audio_in="tone:600")
    for party, user in ((alice, "alice"), (bob, "bob")):
        await party.engine.start(
            server.url, user, lambda: PASSWORD, backoff=FAST, ca_file=str(ca.ca_file)
        )
    a_id = await alice.engine.make("bob")
    received = await bob.events.wait(CallReceive)
    await bob.engine.answer(received.call_id)
    await alice.events.state(a_id, CallState.CONNECTED)
    await bob.events.state(received.call_id, CallState.CONNECTED)
    assert abs(await bob.ears.frequency() - 1000) < 50  # media flowed after wss signaling
    await alice.engine.end(a_id)
    await bob.events.state(received.call_id, CallState.ENDED)


async def test_anonymous_call_over_https_with_a_private_ca(
    tls_server: tuple[RunningServer, TestCA], parties: Parties
) -> None:
    """An anonymous caller trusts the server's private CA through ca_file, as a logged-in
    engine does; without it the call fails saying which CA setting to give."""
    server, ca = tls_server
    server.app[SERVICES].store.add_user("desk", _HASH, True)
    desk = parties.make(audio_in="tone:600")
    await desk.engine.start(
        server.url, "desk", lambda: PASSWORD, backoff=FAST, ca_file=str(ca.ca_file)
    )
    stranger = parties.make(audio_in="tone:1000")
    s_id = await stranger.engine.make_anonymous("desk", server_url=server.url)
    failed = await stranger.events.wait(CallError)
    assert failed.call_id == s_id and "ca_file" in failed.error.message
    await stranger.events.state(s_id, CallState.ENDED)

    visitor = parties.make(audio_in="tone:1000")
    v_id = await visitor.engine.make_anonymous(
        "desk", from_="visitor", server_url=server.url, ca_file=str(ca.ca_file)
    )
    received = await desk.events.wait(CallReceive)
    await desk.engine.answer(received.call_id)
    await visitor.events.state(v_id, CallState.CONNECTED)
    assert abs(await desk.ears.frequency() - 1000) < 50
    await visitor.engine.end(v_id)
    await desk.events.state(received.call_id, CallState.ENDED)
