"""A call never goes silent without saying so (issue 11): the media health model of a call.

Engine tests between two engines on the real server, asserting on audio that actually
arrived: an ICE restart that keeps DTLS; a dead path (every datagram of the current ICE
connection dropped both ways) reported as `stalled` and recovered by the automatic restart;
a far end that vanished (nothing arrives, no signaling) told to both sides and ended within
`media_dead_timeout`. And the model itself (`MediaHealth`) with a fake clock."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from softphone.engine import CallState
from softphone.engine.events import CallError, CallMediaConnectionChange, MediaError
from softphone.engine.media_health import MediaHealth
from softphone.engine.peer import Peer
from softphone.engine.sdp import ice_ufrags
from softphone.media.analysis import dominant_frequency
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties, Party
from tests.engine.test_calls import connect

S = CallState
ALICE_TONE, BOB_TONE = 440.0, 660.0


# -- the model ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def up(health: MediaHealth) -> None:
    health.transport("completed", "connected")


def test_connected_while_packets_arrive_then_stalled() -> None:
    clock = Clock()
    health = MediaHealth(stall_after=2.0, clock=clock)
    health.transport("checking", "connecting")
    assert health.update() is not None and health.state == "checking"
    up(health)
    health.flows({"remote:audio:0": ("audio", 0)}, expecting=True)
    change = health.update()
    assert change is not None and change.state == "connected" and change.reason is None
    for count in range(1, 20):
        clock.now += 0.25
        health.flows({"remote:audio:0": ("audio", count * 12)}, expecting=True)
        assert health.update() is None
    clock.now += 2.5
    health.flows({"remote:audio:0": ("audio", 19 * 12)}, expecting=True)
    change = health.update()
    assert change is not None and change.state == "stalled"
    assert change.reason == "no audio has arrived from the other party for 2 s"
    clock.now += 1.0
    assert health.update() is None  # said once
    assert 3.4 < health.dead_for() < 3.6  # since the last packet, not since we noticed
    health.flows({"remote:audio:0": ("audio", 300)}, expecting=True)
    change = health.update()
    assert change is not None and change.state == "connected" and health.dead_for() == 0


def test_no_flow_expected_is_not_a_stall() -> None:
    """Held, or a restart under way: nothing arriving is expected; the grace period starts
    again when media should flow."""
    clock = Clock()
    health = MediaHealth(stall_after=2.0, clock=clock)
    up(health)
    health.flows({"remote:audio:0": ("audio", 5)}, expecting=False)
    health.update()
    clock.now += 30
    health.flows({"remote:audio:0": ("audio", 5)}, expecting=False)
    assert health.update() is None and health.state == "connected"
    health.flows({"remote:audio:0": ("audio", 5)}, expecting=True)
    clock.now += 1.5
    health.flows({"remote:audio:0": ("audio", 5)}, expecting=True)
    assert health.update() is None
    health.set_restarting(True)
    change = health.update()
    assert change is not None and change.state == "restarting"


def test_failures_say_why() -> None:
    health = MediaHealth()
    health.transport("completed", "failed", dtls_failure="handshake error [('SSL routines', '')]")
    change = health.update()
    assert change is not None and change.state == "failed"
    assert change.reason is not None
    assert change.reason.startswith("the secure media connection (DTLS) failed: ")
    health = MediaHealth()
    turn = "TURN server 127.0.0.1:3478 (udp): refused our credentials (401 Unauthorized)"
    health.transport("failed", "failed", turn_failures=[turn])
    change = health.update()
    assert change is not None and change.reason == f"no media path: {turn}"
    health = MediaHealth()
    health.transport("failed", "failed")
    assert health.update() is not None and health.reason == "ICE found no working path"


# -- between engines ---------------------------------------------------------------------------


async def hears(party: Party, call_id: str, frequency: float, within: float = 8.0) -> float:
    """Seconds until `party` hears `frequency` (decoded audio of that call, 0.4 s of it)."""
    started = time.monotonic()
    while True:
        since = time.monotonic()
        await asyncio.sleep(0.4)
        got = [pcm for t, c, pcm in party.ears.blocks if t >= since and c == call_id]
        if got:
            pcm = np.concatenate(got)
            loud = pcm.size and np.abs(pcm).max() > 1000
            if loud and abs(dominant_frequency(pcm) - frequency) < 20:
                return time.monotonic() - started
        assert time.monotonic() - started < within, f"no {frequency} Hz within {within} s"


def connection_of(peer: Peer) -> Any:
    transport = peer.pc.getTransceivers()[0].sender.transport
    return transport.transport._connection


def drop_path(peer: Peer) -> None:
    """Every datagram this peer's current ICE connection sends is lost (its path died)."""
    connection = connection_of(peer)

    async def lost(data: bytes, component: int) -> None:
        return None

    connection.sendto = lost


def states(party: Party, call_id: str) -> list[str]:
    return [e.state for e in party.events.of(call_id) if isinstance(e, CallMediaConnectionChange)]


async def test_restart_media_is_an_ice_restart_that_keeps_dtls(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice", audio_in=f"tone:{ALICE_TONE:g}")
    bob = await parties.online(server, "bob", audio_in=f"tone:{BOB_TONE:g}")
    a_id, b_id = await connect(alice, bob)
    await hears(alice, a_id, BOB_TONE)
    peer = alice.engine.session(a_id).peer
    other = bob.engine.session(b_id).peer
    assert peer is not None and other is not None
    ufrags, dtls = ice_ufrags(peer.local_sdp), peer.pc.getTransceivers()[0].sender.transport
    started = time.monotonic()
    await alice.engine.restart_media(a_id)
    took = time.monotonic() - started
    # The same peer connections and DTLS transports, new ICE credentials.
    assert alice.engine.session(a_id).peer is peer and bob.engine.session(b_id).peer is other
    assert peer.pc.getTransceivers()[0].sender.transport is dtls and dtls.state == "connected"
    assert ice_ufrags(peer.local_sdp).isdisjoint(ufrags)
    assert took < 3, took
    await hears(alice, a_id, BOB_TONE, within=3)
    await hears(bob, b_id, ALICE_TONE, within=3)
    assert "restarting" in states(alice, a_id)
    assert states(alice, a_id)[-1] == "connected"
    assert "restarting" in states(bob, b_id)
    assert not [e for e in alice.events.of(a_id) if isinstance(e, CallError)]


async def test_a_dead_path_is_told_and_recovered_by_a_restart(
    server: RunningServer, parties: Parties
) -> None:
    """The path dies both ways (a network change): both sides say `stalled` with a reason
    within stall_after + 1 s, the caller restarts the media by itself (new ICE path, same
    DTLS), and audio flows both ways again; the call never ended."""
    options = {"stall_after": 1.5, "media_dead_timeout": 15.0}
    alice = await parties.online(server, "alice", audio_in=f"tone:{ALICE_TONE:g}", **options)
    bob = await parties.online(server, "bob", audio_in=f"tone:{BOB_TONE:g}", **options)
    a_id, b_id = await connect(alice, bob)
    await hears(alice, a_id, BOB_TONE)
    await hears(bob, b_id, ALICE_TONE)
    peers = [alice.engine.session(a_id).peer, bob.engine.session(b_id).peer]
    died = time.monotonic()
    for peer in peers:
        assert peer is not None
        drop_path(peer)
    for party, call_id in ((alice, a_id), (bob, b_id)):
        event = await party.events.wait(
            CallMediaConnectionChange,
            lambda e, c=call_id: e.call_id == c and e.state == "stalled",  # type: ignore[misc]
            timeout=5,
        )
        assert event.reason and "no audio has arrived" in event.reason
        assert time.monotonic() - died < 1.5 + 1.5
        await party.events.wait(MediaError, lambda e, c=call_id: e.call_id == c)  # type: ignore[misc]
    await hears(alice, a_id, BOB_TONE, within=10)
    await hears(bob, b_id, ALICE_TONE, within=3)
    recovered = time.monotonic() - died
    assert "restarting" in states(alice, a_id)
    assert alice.engine.get(a_id).state == S.CONNECTED
    assert bob.engine.get(b_id).state == S.CONNECTED
    assert recovered < 10, recovered


async def test_a_vanished_far_end_is_told_to_both_sides_and_ends_the_call(
    server: RunningServer, parties: Parties
) -> None:
    """Bob's media vanishes (nothing he sends arrives and he receives nothing; his engine
    says nothing over signaling): Alice is told within stall_after, the call ends with a
    reason past media_dead_timeout, and Bob, whose media died too, is told and ends."""
    options: dict[str, Any] = {"stall_after": 1.5, "auto_restart": False}
    alice = await parties.online(
        server, "alice", audio_in=f"tone:{ALICE_TONE:g}", media_dead_timeout=4.0, **options
    )
    # Bob gives up later, so it is Alice's limit that ends the call (the server tells Bob).
    bob = await parties.online(
        server, "bob", audio_in=f"tone:{BOB_TONE:g}", media_dead_timeout=8.0, **options
    )
    a_id, b_id = await connect(alice, bob)
    await hears(alice, a_id, BOB_TONE)
    peers = [alice.engine.session(a_id).peer, bob.engine.session(b_id).peer]
    died = time.monotonic()
    for peer in peers:
        assert peer is not None
        drop_path(peer)
    stalled = await alice.events.wait(
        CallMediaConnectionChange, lambda e: e.call_id == a_id and e.state == "stalled", timeout=5
    )
    assert stalled.ice in ("connected", "completed")  # ICE has not noticed anything yet
    told = time.monotonic() - died
    error = await alice.events.wait(CallError, lambda e: e.call_id == a_id, timeout=10)
    ended = time.monotonic() - died
    assert "no media for 4 s" in error.error.message
    assert "no audio has arrived" in error.error.message
    await alice.events.state(a_id, S.ENDED)
    await bob.events.state(b_id, S.ENDED, timeout=5)
    assert [e for e in bob.events.of(b_id) if isinstance(e, MediaError)]  # told before the end
    assert told < 3.0, told
    assert 3.5 < ended < 7.0, ended
