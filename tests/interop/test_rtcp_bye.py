"""A receiver survives an RTCP BYE (issue 11, item 2), reproduced between two engines.

Firefox sends an RTCP BYE for its SSRC when our hold re-offer makes it stop sending, and
resumes on the same SSRC after the unhold; aiortc's receiver used to stop its decoder for good
on the BYE. Here bob's engine sends exactly that BYE (over the wire, SRTCP) for its audio and
video SSRCs while alice holds; afterwards both must be decoded again (the video shows it through
aiortc's own decoder; our audio receive path does not depend on aiortc's decoder).
"""

from __future__ import annotations

import asyncio
import time

from aiortc.rtp import RtcpByePacket

from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties, Party

ALICE_TONE, BOB_TONE = 440.0, 660.0


async def hears(party: Party, frequency: float) -> None:
    heard = await party.ears.frequency(0.6)
    assert abs(heard - frequency) < 20, heard


async def send_bye(party: Party, call_id: str) -> None:
    """The RTCP BYE a sender sends when it stops, for the SSRC of each of its tracks."""
    peer = party.engine.session(call_id).peer
    assert peer is not None
    for transceiver in peer.transceivers():
        sender = transceiver.sender
        await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])


async def frames_arrive(frames: list[float], count: int = 10, timeout: float = 10) -> None:
    since = time.monotonic()
    deadline = since + timeout
    while sum(1 for t in frames if t > since) < count:
        assert time.monotonic() < deadline, "no remote video frames"
        await asyncio.sleep(0.05)


async def test_audio_decodes_again_after_an_rtcp_bye_during_hold(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice", audio_in=f"tone:{ALICE_TONE:g}")
    bob = await parties.online(server, "bob", audio_in=f"tone:{BOB_TONE:g}")
    frames: list[float] = []
    alice.engine.add_video_listener(lambda _call, _frame: frames.append(time.monotonic()))
    out = await alice.engine.make("bob", video=True, video_size=(320, 240))
    incoming = await bob.events.wait(
        object, lambda e: getattr(e, "name", "") == "call:receive", timeout=15
    )
    in_id = str(incoming.call_id)  # type: ignore[attr-defined]
    await bob.engine.answer(in_id, video=True, video_size=(320, 240))
    await alice.events.state(out, CallState.CONNECTED)
    await hears(alice, BOB_TONE)
    await frames_arrive(frames)

    await alice.engine.hold(out)
    await alice.events.state(out, CallState.ON_HOLD)
    await send_bye(bob, in_id)
    assert await alice.ears.level(0.6) == 0.0  # held: bob sends nothing

    await alice.engine.unhold(out)
    await alice.events.state(out, CallState.CONNECTED)
    await hears(alice, BOB_TONE)  # the same SSRCs resume and are decoded
    await frames_arrive(frames)
    await hears(bob, ALICE_TONE)
    await alice.engine.end(out)
