"""Friction 10: devices by name on PulseAudio (PipeWire serves the same protocol). A private
PulseAudio with null sinks (tests/media/conftest.py `pulse`): VSpk (default sink), VMic (a
source made of VSpk's monitor) and VFar. The TUI lists them by description and routes each
stream to the one chosen: bob's tone is heard on VFar's monitor, and a tone played into VSpk
reaches bob through VMic."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import wave
from pathlib import Path

import numpy as np

from softphone.engine.events import CallStateChange
from softphone.engine.states import CallState
from softphone.media.analysis import dominant_frequency
from softphone.media.devices import list_audio_devices
from softphone.server.runner import RunningServer
from softphone.tui.app import SoftphoneApp
from softphone.tui.options import TuiOptions
from tests.media.conftest import Pulse, pulse, record  # noqa: F401 (the fixture)
from tests.server.harness import PASSWORD
from tests.tui.conftest import FAST, Far, row_states, until
from tests.tui.test_app import SIZE

RATE = 48000


def tone_file(path: Path, hz: float, seconds: float) -> Path:
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = (0.5 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def test_sinks_and_sources_are_listed_by_description(pulse: Pulse) -> None:  # noqa: F811
    listed = list_audio_devices()
    outputs = {d.spec: d for d in listed if d.spec and d.max_output_channels}
    inputs = {d.spec: d for d in listed if d.spec and d.max_input_channels}
    assert {"pulse:VSpk", "pulse:VFar"} <= set(outputs), listed
    assert "pulse:VMic" in inputs and not any("monitor" in s for s in inputs)
    assert outputs["pulse:VSpk"].default_output and not outputs["pulse:VFar"].default_output


async def test_the_chosen_sink_and_source_carry_the_call(
    pulse: Pulse,  # noqa: F811
    server: RunningServer,
    far: type[Far],
    tmp_path: Path,
) -> None:
    app = SoftphoneApp(
        TuiOptions(
            server_url=server.url,
            user="alice",
            password=PASSWORD,
            engine_options={
                "audio_in": "pulse:VMic",
                "audio_out": "pulse:VFar",
                "echo_cancellation": "off",
            },
            client_options={"backoff": FAST},
        )
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        await until(pilot, lambda: "VFar" in app.status.plain, what="the devices named")
        assert "VMic" in app.status.plain
        bob = far()  # sends a 440 Hz tone
        heard: list[np.ndarray] = []
        lock = threading.Lock()

        def listen(call_id: str, pcm: np.ndarray) -> None:
            with lock:
                heard.append(pcm.copy())

        bob.thread.engine.add_pcm_listener(listen)
        await bob.start(server, "bob")
        call_id = await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
        await pilot.press("a")
        await bob.wait(
            CallStateChange, lambda e: e.call_id == call_id and e.state == CallState.CONNECTED
        )
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="in call")
        await asyncio.sleep(2.5)  # the ALSA pulse plugin starts output ~1.7 s late
        # Bob's tone plays on VFar, the sink chosen by its description, not on VSpk.
        on_far = await asyncio.to_thread(record, pulse, "vfar.monitor", 4.0)
        assert len(on_far) > RATE // 2 and abs(dominant_frequency(on_far) - 440) < 10
        # The choice was for our streams only: a stream opened on "default" later still goes
        # where the system says.
        assert "PULSE_SINK" not in os.environ and "PULSE_SOURCE" not in os.environ
        on_spk = await asyncio.to_thread(record, pulse, "vspk.monitor", 3.0)
        assert len(on_spk) > RATE // 2 and np.abs(on_spk.astype(np.int32)).max() < 100
        # A 1000 Hz tone played into VSpk is what VMic captures: bob hears it.
        with lock:
            heard.clear()
        song = tone_file(tmp_path / "tone.wav", 1000.0, 4.0)
        await asyncio.to_thread(
            subprocess.run, ["paplay", "--device=vspk", str(song)], env=pulse.env, check=True
        )
        with lock:
            got = np.concatenate(heard) if heard else np.zeros(0, np.int16)
        middle = got[len(got) // 4 : 3 * len(got) // 4]  # well inside the 4 s it played
        assert len(middle) > RATE and abs(dominant_frequency(middle) - 1000) < 10
