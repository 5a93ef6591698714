"""Video: offered and answered with the test pattern; started and stopped mid-call."""

from __future__ import annotations

import asyncio
from typing import Any

from softphone.engine import CallState, Engine
from softphone.engine.events import CallNewTrack, CallReceive, CallTrackEnded
from softphone.media.video import read_frame_number
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties
from tests.engine.test_calls import connect

S = CallState


def frames_of(engine: Engine) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    engine.add_video_listener(lambda call_id, frame: seen.append((call_id, frame)))
    return seen


async def wait_frames(seen: list[tuple[str, Any]], count: int = 5, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while len(seen) < count:
            await asyncio.sleep(0.05)


async def test_video_call_carries_the_pattern(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    at_alice, at_bob = frames_of(alice.engine), frames_of(bob.engine)
    a_id = await alice.engine.make("bob", video=True, video_size=(320, 240))
    received = await bob.events.wait(CallReceive)
    b_id = received.call_id
    assert received.media_offered.video
    await bob.events.state(b_id, S.RINGING)
    await bob.engine.answer(b_id, video=True, video_size=(320, 240))
    await alice.events.state(a_id, S.CONNECTED)

    assert set(alice.engine.get(a_id).remote_tracks) == {"remote:audio:0", "remote:video:1"}
    await wait_frames(at_bob)
    await wait_frames(at_alice)
    numbers = [read_frame_number(frame) for _, frame in at_bob[-3:]]
    assert all(n is not None for n in numbers)
    assert at_bob[-1][1].width == 320


async def test_start_and_stop_video_mid_call(server: RunningServer, parties: Parties) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    at_bob = frames_of(bob.engine)
    a_id, b_id = await connect(alice, bob)

    await alice.engine.start_video(a_id, video_size=(320, 240))
    await bob.events.wait(
        CallNewTrack, lambda e: e.call_id == b_id and e.kind == "video" and not e.local
    )
    await wait_frames(at_bob)
    assert "local:video:1" in alice.engine.get(a_id).local_tracks

    await alice.engine.stop_video(a_id)
    await bob.events.wait(
        CallTrackEnded, lambda e: e.call_id == b_id and e.kind == "video" and not e.local
    )
    assert "local:video:1" not in alice.engine.get(a_id).local_tracks
    assert alice.engine.get(a_id).state == S.CONNECTED
    assert bob.engine.get(b_id).state == S.CONNECTED
