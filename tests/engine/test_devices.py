"""The PortAudio device path through engines, on a private PulseAudio with null sinks.

vspk is the default sink and vmic (its monitor) the default source: a tone played into vspk is
what the caller's "microphone" hears. Both engines play what they receive into vfar (PULSE_SINK
for the streams they open), so nothing the engines play echoes back into vmic; vfar's monitor
is recorded with parec. In CI a missing pulseaudio fails (the fixture), never skips.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softphone.media.analysis import dominant_frequency
from softphone.media.audio import DeviceSink, ToneSource
from softphone.media.constants import SAMPLE_RATE
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties
from tests.engine.test_calls import connect
from tests.media.conftest import Pulse, pulse  # noqa: F401  (the fixture)


def tone_level(pcm: np.ndarray[Any, Any], frequency: float) -> float:
    """Amplitude (full scale 1.0) of one frequency in `pcm`."""
    x = pcm.astype(np.float64) / 32768.0
    t = np.arange(x.size) / SAMPLE_RATE
    return float(2 * abs(np.dot(x, np.exp(-2j * np.pi * frequency * t))) / max(x.size, 1))


async def test_device_microphone_and_speakers_through_engines(
    server: RunningServer,
    parties: Parties,
    pulse: Pulse,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    talker = DeviceSink()  # on vspk (the default sink): the voice the microphone picks up
    talker.start(ToneSource(700.0, 0.5))
    monkeypatch.setenv("PULSE_SINK", "vfar")  # streams opened from now on play into vfar
    recording = tmp_path / "vfar.raw"
    with recording.open("wb") as out:
        parec = subprocess.Popen(
            ["parec", "--device=vfar.monitor", "--format=s16le", "--rate=48000",
             "--channels=1", "--latency-msec=40"],
            env=pulse.env, stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        alice = await parties.online(server, "alice", audio_in="default", audio_out="default")
        bob = await parties.online(server, "bob", audio_in="tone:600", audio_out="default")
        a_id, _b_id = await connect(alice, bob)
        # The microphone delivers ~1.7 s after it opened; then codec and jitter buffer.
        heard = await bob.ears.listen(0.6, settle=2.5)
        back = await alice.ears.listen(0.6, settle=0.0)
        await asyncio.sleep(0.5)
        sinks = pulse.pactl("list", "short", "sink-inputs")
        names = {
            line.split()[0]: line.split()[1]
            for line in pulse.pactl("list", "short", "sinks").splitlines()
        }
        await alice.engine.end(a_id)
    finally:
        parec.terminate()
        parec.wait(5)
        await talker.stop()
    assert alice.engine.get(a_id).state.value == "Ended"
    assert not [e for e in alice.events.events + bob.events.events if e.name == "media:error"]

    # The caller's microphone reached the far end.
    assert dominant_frequency(heard) == pytest.approx(700, abs=5)
    assert tone_level(heard, 700) > 0.2, tone_level(heard, 700)
    assert dominant_frequency(back) == pytest.approx(600, abs=5)
    # Both engines played what they received on the device (vfar): 700 Hz from bob's
    # speaker, 600 Hz from alice's; vspk's tone itself never goes to vfar.
    pcm = np.frombuffer(recording.read_bytes(), dtype="<i2")
    assert pcm.size > SAMPLE_RATE, pcm.size
    last = pcm[-SAMPLE_RATE : -SAMPLE_RATE // 4]  # before the hang-up
    levels = {f: tone_level(last, f) for f in (600, 700, 1000)}
    print(f"vfar levels {levels}; sink inputs:\n{sinks}")
    assert levels[700] > 0.2 and levels[600] > 0.1, levels
    assert levels[1000] < 0.01, levels
    # The talker on vspk; the two engines' speakers on vfar.
    on = sorted(names[line.split()[1]] for line in sinks.splitlines())
    assert on == ["vfar", "vfar", "vspk"], (on, sinks)
