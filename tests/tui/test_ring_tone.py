"""Friction 6, aloud: an incoming call plays the ring tone on the ring device (here a WAV file
or the null sink, so no sound server is needed; tests/media/test_ring_pulse.py has the
PulseAudio devices) until no incoming call is left; not under do not disturb, not when
auto-answer takes the call. The terminal bell rings as before."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np

from softphone.engine import EngineThread
from softphone.engine.events import CallStateChange
from softphone.engine.states import CallState
from softphone.media.audio_file import read_audio_file
from softphone.media.ring import FREQUENCIES, LEAD_IN
from softphone.server.runner import RunningServer
from softphone.tui.app import SoftphoneApp
from tests.tui.conftest import Far, app_for, row_states, until
from tests.tui.test_app import SIZE, logged

RATE = 48000


def ringing_app(server: RunningServer, ring_device: str) -> SoftphoneApp:
    app = app_for(server, "alice")
    app.options.ring_device = ring_device
    return app


def engine_of(app: SoftphoneApp) -> EngineThread:
    assert app.engine is not None
    return app.engine


async def ringing(app: SoftphoneApp) -> bool:
    return await asyncio.to_thread(lambda: engine_of(app).ringing)


def ring_frames(app: SoftphoneApp) -> int:
    return engine_of(app).engine.ringer.frames  # an int read across threads: fine


def strongest(pcm: np.ndarray, count: int) -> list[float]:
    """The `count` strongest frequencies of `pcm` (10 Hz bins), strongest first."""
    x = pcm.astype(np.float64) * np.hanning(pcm.size)
    spectrum = np.abs(np.fft.rfft(x))
    spectrum[0] = 0.0
    bins = np.argsort(spectrum)[::-1]
    found: list[float] = []
    for k in bins:
        hz = float(k) * RATE / pcm.size
        if all(abs(hz - f) > 20 for f in found):
            found.append(hz)
        if len(found) == count:
            break
    return found


async def incoming(
    pilot: Any, app: SoftphoneApp, server: RunningServer, far: type[Far]
) -> tuple[Far, str]:
    await until(pilot, lambda: app.engine is not None, what="login")
    bob = far()
    await bob.start(server, "bob")
    call_id: str = await bob.call(bob.thread.make, "alice")
    await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
    return bob, call_id


async def wait_ringing(pilot: Any, app: SoftphoneApp, on: bool) -> None:
    deadline = asyncio.get_running_loop().time() + 15
    while await ringing(app) != on:
        assert asyncio.get_running_loop().time() < deadline, f"ringing never became {on}"
        await pilot.pause(0.05)


async def test_the_ring_tone_plays_until_the_call_is_answered(
    server: RunningServer, far: type[Far], tmp_path: Path
) -> None:
    recorded = tmp_path / "ring.wav"
    app = ringing_app(server, f"wav:{recorded}")
    async with app.run_test(size=SIZE) as pilot:
        await incoming(pilot, app, server, far)
        await wait_ringing(pilot, app, True)
        # 20 ms frames: the lead-in's silence, then 1.2 s of tone (the check below reads 1 s).
        tone_heard = round((LEAD_IN + 1.2) * 50)
        await until(pilot, lambda: ring_frames(app) >= tone_heard, what="1.2 s of ring tone")
        assert app.bells >= 1  # the bell too
        await pilot.press("a")
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="answered")
        await wait_ringing(pilot, app, False)
        played = ring_frames(app)
        await pilot.pause(0.5)
        assert ring_frames(app) == played  # answered: the tone stopped for good
    # What the ring device got: the lead-in's silence, then the cadence's two frequencies.
    pcm = read_audio_file(recorded)
    lead = int(LEAD_IN * RATE)
    assert pcm.size >= lead + RATE and not pcm[:lead].any()
    burst = pcm[lead + RATE // 10 : lead + RATE]  # inside the first 2 s burst, past its fade
    assert sorted(round(f, -1) for f in strongest(burst, 2)) == list(FREQUENCIES)


async def test_a_wav_file_can_be_the_ring(
    server: RunningServer, far: type[Far], tmp_path: Path
) -> None:
    bell, recorded = tmp_path / "bell.wav", tmp_path / "ring.wav"
    t = np.arange(RATE) / RATE
    with wave.open(str(bell), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((0.3 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16).tobytes())
    app = ringing_app(server, f"wav:{recorded}")
    app.options.ring_sound = f"wav:{bell}"
    async with app.run_test(size=SIZE) as pilot:
        await incoming(pilot, app, server, far)
        rung = round((LEAD_IN + 0.6) * 50)  # 20 ms frames: the lead-in, then 0.6 s of bell
        await until(pilot, lambda: ring_frames(app) >= rung, what="0.6 s of the bell")
        await pilot.press("r")
        await wait_ringing(pilot, app, False)
    pcm = read_audio_file(recorded)
    lead = int(LEAD_IN * RATE)
    assert strongest(pcm[lead + RATE // 10 : lead + RATE // 2], 1) == [1000.0]


async def test_rejecting_stops_the_ring_tone(server: RunningServer, far: type[Far]) -> None:
    app = ringing_app(server, "null")
    async with app.run_test(size=SIZE) as pilot:
        await incoming(pilot, app, server, far)
        await wait_ringing(pilot, app, True)
        await pilot.press("r")
        await until(pilot, lambda: app.incoming_pane.first is None, what="rejected")
        await wait_ringing(pilot, app, False)
        assert not app.ring_tone.wanted


async def test_the_caller_cancelling_stops_the_ring_tone(
    server: RunningServer, far: type[Far]
) -> None:
    app = ringing_app(server, "null")
    async with app.run_test(size=SIZE) as pilot:
        bob, call_id = await incoming(pilot, app, server, far)
        await wait_ringing(pilot, app, True)
        await bob.call(bob.thread.end, call_id)
        await until(pilot, lambda: app.incoming_pane.first is None, what="cancelled")
        await wait_ringing(pilot, app, False)
        played = ring_frames(app)
        assert played > 0
        await pilot.pause(0.5)
        assert ring_frames(app) == played


async def test_do_not_disturb_plays_no_ring_tone(server: RunningServer, far: type[Far]) -> None:
    app = ringing_app(server, "null")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        app.action_toggle_dnd()
        bob = far()
        await bob.start(server, "bob")
        call_id = await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: logged(app, "do not disturb is on"), what="said")
        await bob.wait(
            CallStateChange, lambda e: e.call_id == call_id and e.state == CallState.RINGING
        )
        await pilot.pause(1.0)
        assert not await ringing(app) and ring_frames(app) == 0


async def test_auto_answer_plays_no_ring_tone(server: RunningServer, far: type[Far]) -> None:
    app = ringing_app(server, "null")
    app.options.auto_answer = True
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="answered")
        await pilot.pause(0.5)
        assert not await ringing(app) and ring_frames(app) == 0


async def test_a_ring_device_that_cannot_open_is_said_and_the_bell_rings(
    server: RunningServer, far: type[Far]
) -> None:
    app = ringing_app(server, "no such ring device")
    async with app.run_test(size=SIZE) as pilot:
        await incoming(pilot, app, server, far)
        await until(
            pilot,
            lambda: logged(app, "No ring tone: the ring device 'no such ring device'"),
            what="the failure said, naming the device",
        )
        assert app.bells >= 1 and not await ringing(app)
        await pilot.press("a")  # the call itself is not hurt
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="answered")
