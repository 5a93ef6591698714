"""The engine's ring tone: where it rings by default, idempotent start and stop, one
media:error naming a ring device that cannot be opened, and silence when the engine closes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from softphone.engine import Engine
from softphone.engine.events import EngineEvent, MediaError
from softphone.media.audio_file import read_audio_file


async def test_start_and_stop_are_idempotent_and_close_stops_the_ring(tmp_path: Path) -> None:
    recorded = tmp_path / "ring.wav"
    engine = Engine(ring_device=f"wav:{recorded}")
    await engine.stop_ringing()  # not ringing: nothing to do
    await engine.start_ringing()
    await engine.start_ringing()  # one ring, not two
    assert engine.ringing
    await asyncio.sleep(0.5)
    await engine.stop()  # the engine closing stops the ring
    assert not engine.ringing
    frames = engine.ringer.frames
    assert frames >= 20  # 0.5 s or more of one ring, paced at 20 ms a block
    assert read_audio_file(recorded).size == frames * 960
    await engine.stop_ringing()


async def test_the_ring_follows_a_speaker_but_not_a_file_recording_calls(
    tmp_path: Path,
) -> None:
    assert Engine(audio_out="default").ringer.spec() == "default"
    assert Engine(audio_out="pulse:Desk").ringer.spec() == "pulse:Desk"
    calls = Engine(audio_out=f"wav:{tmp_path / 'call.wav'}")
    assert calls.ringer.spec() is None
    await calls.start_ringing()
    assert not calls.ringing and not (tmp_path / "call.wav").exists()
    assert Engine(audio_out="default", ring_device="none").ringer.spec() is None
    assert Engine(audio_out="null", ring_device="pulse:Ring").ringer.spec() == "pulse:Ring"


async def test_a_ring_device_that_cannot_open_is_one_media_error_naming_it() -> None:
    events: list[EngineEvent] = []
    engine = Engine(ring_device="no such ring device")
    engine.subscribe(events.append)
    await engine.start_ringing()
    await engine.start_ringing()  # the same ringing: said once
    errors = [e for e in events if isinstance(e, MediaError)]
    assert len(errors) == 1 and errors[0].device == "ring" and errors[0].call_id is None
    assert "'no such ring device'" in errors[0].error.message
    assert not engine.ringing
    await engine.stop_ringing()
    await engine.start_ringing()  # a new ringing tries again, and says so again
    assert len([e for e in events if isinstance(e, MediaError)]) == 2
    await engine.stop()
