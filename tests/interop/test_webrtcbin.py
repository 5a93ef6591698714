"""The engine against GStreamer's webrtcbin (libnice, OpenSSL DTLS with an RSA certificate),
both directions. webrtcbin has no protocol v1 client: the test speaks for it with ours
(`softphone.client`) and hands the SDP to and from the helper process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from softphone.client import SignalingClient
from softphone.client.events import EventStream, Notification
from softphone.engine.events import CallError, CallMediaConnectionChange, MediaError
from softphone.engine.states import CallState
from softphone.protocol import frames
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties, Party
from tests.interop.conftest import GstFactory, SignalingFactory
from tests.interop.webrtcbin import Webrtcbin

GST_TONE = 660.0
ENGINE_TONE = 440.0


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def engine_hears(party: Party, frequency: float) -> None:
    heard = await party.ears.frequency(0.6)
    assert abs(heard - frequency) < 20, heard


async def webrtcbin_hears(peer: Webrtcbin, frequency: float, timeout: float = 10) -> None:
    """webrtcbin decodes a tone of `frequency` from the engine (level and zero crossings)."""
    deadline = time.monotonic() + timeout
    while True:
        heard = await peer.heard(0.5)
        loud = heard["samples"] >= 20000 and heard["rms"] > 0.05
        if loud and abs(heard["frequency"] - frequency) < 20:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"webrtcbin does not hear {frequency} Hz: {heard}")
        await asyncio.sleep(0.3)


async def incoming_offer(stream: EventStream) -> frames.CallIncoming:
    event = await stream.wait_for(
        Notification, lambda e: isinstance(e.frame, frames.CallIncoming), timeout=15
    )
    assert isinstance(event.frame, frames.CallIncoming)
    return event.frame


async def test_engine_calls_webrtcbin_and_audio_flows_both_ways(
    server: RunningServer, parties: Parties, webrtcbin: GstFactory, signaling: SignalingFactory
) -> None:
    alice = await parties.online(server, "alice", audio_in=f"tone:{ENGINE_TONE:g}")
    bob, stream = await signaling(server, "bob")
    gst = await webrtcbin(GST_TONE)
    out = await alice.engine.make("bob")
    offer = await incoming_offer(stream)
    answer = await gst.answer(offer.sdp)
    await bob.rest.answer(offer.call.id, answer)
    await alice.events.state(out, CallState.CONNECTED)
    await engine_hears(alice, GST_TONE)
    await webrtcbin_hears(gst, ENGINE_TONE)
    await alice.engine.end(out)


async def webrtcbin_calls_engine(
    server: RunningServer, parties: Parties, gst: Webrtcbin, bob: SignalingClient
) -> Party:
    alice = await parties.online(server, "alice", audio_in=f"tone:{ENGINE_TONE:g}")
    offer = await gst.offer()
    made = await bob.rest.make_call("alice", offer)
    await until(lambda: any(c.direction == "incoming" for c in alice.engine.get_all()))
    incoming = next(c for c in alice.engine.get_all() if c.direction == "incoming")
    await alice.engine.answer(incoming.id)
    del made
    return alice


async def test_webrtcbin_calls_engine_and_audio_flows_both_ways(
    server: RunningServer, parties: Parties, webrtcbin: GstFactory, signaling: SignalingFactory
) -> None:
    bob, stream = await signaling(server, "bob")
    gst = await webrtcbin(GST_TONE)
    alice = await webrtcbin_calls_engine(server, parties, gst, bob)
    answered = await stream.wait_for(
        Notification, lambda e: isinstance(e.frame, frames.CallAnswered), timeout=15
    )
    assert isinstance(answered.frame, frames.CallAnswered)
    await gst.apply_answer(answered.frame.sdp)
    await engine_hears(alice, GST_TONE)
    await webrtcbin_hears(gst, ENGINE_TONE)


def wrong_fingerprint(sdp: str) -> str:
    """`sdp` with its DTLS fingerprint changed: ICE still succeeds, the DTLS check fails."""
    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=fingerprint:sha-256 "):
            head, value = line[:-2], line[-2:]
            line = head + ("00" if value != "00" else "11")
        lines.append(line)
    return "\r\n".join(lines)


async def test_dtls_failure_after_ice_is_reported(
    server: RunningServer, parties: Parties, webrtcbin: GstFactory, signaling: SignalingFactory
) -> None:
    """webrtcbin's offer reaches the engine with a fingerprint that is not its certificate's:
    ICE connects, the engine's DTLS check fails, and the user must be told, not left with a
    silent Connected call."""
    bob, stream = await signaling(server, "bob")
    gst = await webrtcbin(GST_TONE)
    alice = await parties.online(server, "alice", audio_in=f"tone:{ENGINE_TONE:g}")
    await bob.rest.make_call("alice", wrong_fingerprint(await gst.offer()))
    await until(lambda: any(c.direction == "incoming" for c in alice.engine.get_all()))
    incoming = next(c for c in alice.engine.get_all() if c.direction == "incoming")
    await alice.engine.answer(incoming.id)
    answered = await stream.wait_for(
        Notification, lambda e: isinstance(e.frame, frames.CallAnswered), timeout=15
    )
    assert isinstance(answered.frame, frames.CallAnswered)
    await gst.apply_answer(answered.frame.sdp)

    def told(event: object) -> bool:
        if isinstance(event, CallMediaConnectionChange):
            return event.state == "failed"
        return isinstance(event, CallError | MediaError)

    # Not the media timeout's end (20 s): the failure is known as soon as DTLS fails.
    await alice.events.wait(
        object, lambda e: getattr(e, "call_id", None) == incoming.id and told(e), timeout=10
    )


async def test_webrtcbin_killed_is_told_at_once_and_ends_the_call(
    server: RunningServer, parties: Parties, webrtcbin: GstFactory, signaling: SignalingFactory
) -> None:
    """webrtcbin vanishes mid-call (SIGKILL; its signaling stays, so only the media can tell):
    `stalled` with a reason within stall_after + 1 s, the automatic restart gets no answer,
    and the call ends past media_dead_timeout with that reason."""
    alice = await parties.online(
        server, "alice", audio_in=f"tone:{ENGINE_TONE:g}", media_dead_timeout=5.0
    )
    bob, stream = await signaling(server, "bob")
    gst = await webrtcbin(GST_TONE)
    out = await alice.engine.make("bob")
    offer = await incoming_offer(stream)
    await bob.rest.answer(offer.call.id, await gst.answer(offer.sdp))
    await alice.events.state(out, CallState.CONNECTED)
    await engine_hears(alice, GST_TONE)
    await gst.kill()
    died = time.monotonic()
    stalled = await alice.events.wait(
        CallMediaConnectionChange, lambda e: e.call_id == out and e.state == "stalled", timeout=6
    )
    assert time.monotonic() - died < 2.0 + 1.5
    assert stalled.reason and "no audio has arrived" in stalled.reason
    error = await alice.events.wait(CallError, lambda e: e.call_id == out, timeout=10)
    assert "no media for 5 s" in error.error.message, error.error.message
    assert 4.5 < time.monotonic() - died < 5.0 + 1.0
    await alice.events.state(out, CallState.ENDED)
