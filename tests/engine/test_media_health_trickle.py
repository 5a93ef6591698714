"""Trickle ICE (protocol v1 extension): the engine takes candidates sent after the offer or
answer (`POST /v1/calls/{id}/candidates` relayed as `call.candidate`), in both roles; audio
is asserted where it arrives (the engine's ears; the bare peer's decoded frames)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from softphone.client import SignalingClient
from softphone.client.errors import ServerError
from softphone.client.events import Notification
from softphone.engine import CallState
from softphone.engine.events import CallReceive
from softphone.media.analysis import dominant_frequency
from softphone.media.audio import ToneSource
from softphone.protocol import frames
from softphone.server.runner import RunningServer
from tests.client.conftest import Clients
from tests.engine.conftest import Parties

S = CallState


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close()


def split_candidates(sdp: str) -> tuple[str, list[str]]:
    """`sdp` without its candidates and end-of-candidates, and the candidates."""
    kept, found = [], []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            found.append(line[2:])
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept), found


async def trickle(rest: SignalingClient, call_id: str, candidates: list[str]) -> None:
    for candidate in candidates:
        await rest.rest.candidate(call_id, candidate, sdp_mid="0", sdp_mline_index=0)
    await rest.rest.candidate(call_id, None)


class BarePeer:
    """A plain aiortc peer sending a 660 Hz tone and counting what it decodes."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.pc.addTrack(ToneSource(660.0))
        self.frames = 0
        self._pulls: list[asyncio.Future[None]] = []
        self.pc.on("track", self._track)

    def _track(self, track: object) -> None:
        async def pull() -> None:
            while True:
                try:
                    await track.recv()  # type: ignore[attr-defined]
                except Exception:
                    return
                self.frames += 1

        self._pulls.append(asyncio.ensure_future(pull()))


async def engine_hears(ears_blocks: list[Any], call_id: str, frequency: float) -> None:
    deadline = time.monotonic() + 8
    while True:
        since = time.monotonic()
        await asyncio.sleep(0.4)
        got = [p for t, c, p in ears_blocks if t >= since and c == call_id]
        if got:
            pcm = np.concatenate(got)
            if np.abs(pcm).max() > 1000 and abs(dominant_frequency(pcm) - frequency) < 20:
                return
        assert time.monotonic() < deadline, f"the engine does not hear {frequency} Hz"


async def test_engine_answers_an_offer_whose_candidates_trickle(
    server: RunningServer, parties: Parties, clients: Clients
) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:440")
    bob, stream = await clients.online(server.url, "bob")
    peer = BarePeer()
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    offer, candidates = split_candidates(peer.pc.localDescription.sdp)
    assert candidates
    made = await bob.rest.make_call("alice", offer)  # no candidate at all in the offer
    received = await alice.events.wait(CallReceive)
    await trickle(bob, made.id, candidates)  # before the engine answers: kept until then
    await alice.engine.answer(received.call_id)
    answered = await stream.wait_for(
        Notification, lambda e: isinstance(e.frame, frames.CallAnswered), timeout=10
    )
    assert isinstance(answered.frame, frames.CallAnswered)
    await peer.pc.setRemoteDescription(RTCSessionDescription(answered.frame.sdp, "answer"))
    await engine_hears(alice.ears.blocks, received.call_id, 660.0)
    before = peer.frames
    await asyncio.sleep(0.5)
    assert peer.frames > before + 10  # the engine's audio is decoded at the bare peer
    assert alice.engine.get(received.call_id).state == S.CONNECTED
    await peer.pc.close()


async def test_engine_caller_takes_the_answers_trickled_candidates(
    server: RunningServer, parties: Parties, clients: Clients
) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:440")
    bob, stream = await clients.online(server.url, "bob")
    out = await alice.engine.make("bob")
    incoming = await stream.wait_for(
        Notification, lambda e: isinstance(e.frame, frames.CallIncoming), timeout=10
    )
    assert isinstance(incoming.frame, frames.CallIncoming)
    peer = BarePeer()
    # The bare peer must not reach the engine by itself: drop the engine's candidates from
    # the offer it sees, so only our trickled candidates make a path (engine → peer checks).
    offer, _ = split_candidates(incoming.frame.sdp)
    await peer.pc.setRemoteDescription(RTCSessionDescription(offer + "\r\n", "offer"))
    await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    answer, candidates = split_candidates(peer.pc.localDescription.sdp)
    await bob.rest.answer(incoming.frame.call.id, answer)
    await alice.events.state(out, S.CONNECTED)
    await trickle(bob, incoming.frame.call.id, candidates)
    await engine_hears(alice.ears.blocks, out, 660.0)
    await peer.pc.close()


async def test_a_callee_cannot_trickle_before_answering(
    server: RunningServer, parties: Parties, clients: Clients
) -> None:
    await parties.online(server, "alice")
    bob, stream = await clients.online(server.url, "bob")
    carol, _ = await clients.online(server.url, "carol")
    del stream
    peer = RTCPeerConnection()
    peer.addTransceiver("audio")
    await peer.setLocalDescription(await peer.createOffer())
    made = await carol.rest.make_call("bob", peer.localDescription.sdp)
    with pytest.raises(ServerError) as refused:
        await bob.rest.candidate(made.id, None)
    assert refused.value.code == "wrong_state"
    await peer.close()
