"""Audio devices through engines: switching the input and output mid-call, and the PortAudio
device path on a private PulseAudio with null sinks.

Switching: a live call's far end hears the new source (FFT) with no call state change and no
renegotiation (the peer connection and both SDPs stay as they were); a switched output records
the far tone; an unusable spec raises and changes nothing; mute and hold survive a switch.

PulseAudio: vspk is the default sink and vmic (its monitor) the default source: a tone played
into vspk is what the caller's "microphone" hears. In the first test both engines play what
they receive into vfar (PULSE_SINK for the streams they open), so nothing the engines play
echoes back into vmic; vfar's monitor is recorded with parec. In CI a missing pulseaudio fails
(the fixture), never skips.
"""

from __future__ import annotations

import asyncio
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softphone.engine import CallState, DeviceList, EngineError, EngineErrorCode, EngineThread
from softphone.engine.events import (
    CallReceive,
    CallStateChange,
    EngineEvent,
    MediaDeviceChange,
    MediaError,
    MediaSourceMuted,
)
from softphone.media.analysis import dominant_frequency, rms
from softphone.media.audio import DeviceSink, ToneSource
from softphone.media.constants import SAMPLE_RATE
from softphone.media.video import read_frame_number
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties, Party
from tests.engine.test_calls import connect
from tests.engine.test_video import frames_of, wait_frames
from tests.media.conftest import Pulse, pulse  # noqa: F401  (the fixture)

S = CallState
LOUD, QUIET = 0.05, 0.005


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
        # No audio processing: a steady tone is what noise suppression and gain control remove.
        alice = await parties.online(
            server,
            "alice",
            audio_in="default",
            audio_out="default",
            echo_cancellation="off",
            noise_suppression=False,
            auto_gain=False,
        )
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


# -- switching mid-call ------------------------------------------------------------------------


def write_tone_wav(path: Path, frequency: float, seconds: float = 0.5) -> None:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pcm = np.round(0.3 * 32767 * np.sin(2 * np.pi * frequency * t)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())


def read_wav(path: Path) -> np.ndarray[Any, Any]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (1, SAMPLE_RATE)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)


def negotiated(party: Party, call_id: str) -> tuple[Any, str | None, str | None]:
    """The call's peer connection and both SDPs: a renegotiation would change them."""
    peer = party.engine.session(call_id).peer
    assert peer is not None
    return peer, peer.local_sdp, peer.remote_sdp


def device_changes(party: Party) -> list[MediaDeviceChange]:
    return [e for e in party.events.events if isinstance(e, MediaDeviceChange)]


def gaps(party: Party) -> list[MediaSourceMuted]:
    return [e for e in party.events.events if isinstance(e, MediaSourceMuted)]


async def test_input_switch_mid_call_changes_what_the_far_end_hears(
    server: RunningServer, parties: Parties, tmp_path: Path
) -> None:
    alice = await parties.online(server, "alice", audio_in="tone")
    bob = await parties.online(server, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)
    assert await bob.ears.frequency() == pytest.approx(440, abs=10)
    before = negotiated(alice, a_id), negotiated(bob, b_id)
    states = alice.events.states(a_id), bob.events.states(b_id)
    tracks = alice.engine.get(a_id).local_tracks, bob.engine.get(b_id).remote_tracks

    await alice.engine.set_audio_input("tone:1000")
    assert await bob.ears.frequency() == pytest.approx(1000, abs=10)
    wav = tmp_path / "seven.wav"
    write_tone_wav(wav, 700.0)
    await alice.engine.set_audio_input(str(wav))
    assert await bob.ears.frequency() == pytest.approx(700, abs=10)
    assert await alice.ears.frequency() == pytest.approx(600, abs=10)  # the other way too

    # Nothing was renegotiated and no state changed; the far end saw no gap.
    assert (negotiated(alice, a_id), negotiated(bob, b_id)) == before
    assert (alice.events.states(a_id), bob.events.states(b_id)) == states
    assert (alice.engine.get(a_id).local_tracks, bob.engine.get(b_id).remote_tracks) == tracks
    assert alice.engine.get(a_id).state == bob.engine.get(b_id).state == S.CONNECTED
    assert gaps(bob) == []
    changes = [(e.kind, e.spec, e.label, e.call_ids) for e in device_changes(alice)]
    assert changes == [
        ("audio_in", "tone:1000", "tone 1000 Hz", (a_id,)),
        ("audio_in", str(wav), "file seven.wav", (a_id,)),
    ]
    assert alice.engine.audio_in == str(wav)
    listed = await alice.engine.list_devices()
    assert (listed.audio_in, listed.audio_out, listed.camera) == (str(wav), "null", "pattern")

    # A new call starts with the new input.
    await alice.engine.end(a_id)
    await bob.events.state(b_id, S.ENDED)
    a2 = await alice.engine.make("bob")
    b2 = (await bob.events.wait(CallReceive, lambda e: e.call_id != b_id)).call_id
    await bob.events.state(b2, S.RINGING)
    await bob.engine.answer(b2)
    await alice.events.state(a2, S.CONNECTED)
    assert await bob.ears.frequency() == pytest.approx(700, abs=10)


async def test_output_switch_mid_call_records_the_far_tone(
    server: RunningServer, parties: Parties, tmp_path: Path
) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob", audio_in="tone:600", audio_out="null")
    a_id, b_id = await connect(alice, bob)
    assert await bob.ears.frequency() == pytest.approx(1000, abs=10)
    before = negotiated(alice, a_id), negotiated(bob, b_id)

    recording = tmp_path / "heard.wav"
    await bob.engine.set_audio_output(str(recording))
    heard = await bob.ears.listen(1.0)  # listeners and DTMF detection follow the switch
    await bob.engine.set_audio_output("null")  # closes the file
    size = recording.stat().st_size
    await asyncio.sleep(0.3)
    assert recording.stat().st_size == size  # the old sink stopped

    recorded = read_wav(recording)
    assert recorded.size > 1.0 * SAMPLE_RATE, recorded.size
    assert dominant_frequency(recorded) == pytest.approx(1000, abs=10)
    assert rms(recorded) > LOUD
    assert dominant_frequency(heard) == pytest.approx(1000, abs=10)
    assert await bob.ears.frequency() == pytest.approx(1000, abs=10)
    assert (negotiated(alice, a_id), negotiated(bob, b_id)) == before
    assert bob.events.states(b_id) == ["Ringing", "Connected"]
    assert gaps(bob) == []
    changes = [(e.kind, e.spec, e.label, e.call_ids) for e in device_changes(bob)]
    assert changes == [
        ("audio_out", str(recording), "file heard.wav", (b_id,)),
        ("audio_out", "null", "null", (b_id,)),
    ]


async def test_unusable_device_raises_and_changes_nothing(
    server: RunningServer, parties: Parties, tmp_path: Path
) -> None:
    alice = await parties.online(server, "alice", audio_in="tone")
    bob = await parties.online(server, "bob", audio_in="tone:600", audio_out="null")
    a_id, b_id = await connect(alice, bob)
    assert await bob.ears.frequency() == pytest.approx(440, abs=10)
    sending = alice.engine.session(a_id).media.source
    assert sending is not None
    source = sending.inner
    sink = bob.engine.session(b_id).media.sink

    with pytest.raises(EngineError) as failed:
        await alice.engine.set_audio_input("no-such-device-xyz")
    assert failed.value.code == EngineErrorCode.MEDIA_UNAVAILABLE
    message = failed.value.message
    print(message)
    assert "'no-such-device-xyz'" in message and "Available" in message, message
    assert "tone" in message, message  # what can be used instead
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(EngineError) as failed:
        await alice.engine.set_audio_input(missing)
    assert missing in failed.value.message
    with pytest.raises(EngineError) as failed:
        await alice.engine.set_audio_input("tone:abc")
    assert failed.value.code == EngineErrorCode.INVALID_PARAM
    with pytest.raises(EngineError) as failed:
        await bob.engine.set_audio_output("no-such-device-xyz")
    assert "'no-such-device-xyz'" in failed.value.message
    nowhere = tmp_path / "no-dir" / "x.wav"
    with pytest.raises(EngineError):
        await bob.engine.set_audio_output(str(nowhere))
    with pytest.raises(EngineError) as failed:
        await alice.engine.set_camera("/dev/no-such-camera")
    assert "/dev/no-such-camera" in failed.value.message

    # Nothing changed: same specs, same source and sink, the audio goes on.
    assert (alice.engine.audio_in, bob.engine.audio_out, alice.engine.camera) == (
        "tone",
        "null",
        "pattern",
    )
    assert sending.inner is source and alice.engine.session(a_id).media.source is sending
    assert bob.engine.session(b_id).media.sink is sink
    assert await bob.ears.frequency() == pytest.approx(440, abs=10)
    assert device_changes(alice) == device_changes(bob) == []
    assert not [e for e in alice.events.events + bob.events.events if isinstance(e, MediaError)]
    assert alice.engine.get(a_id).state == S.CONNECTED

    # Without a live call the spec is checked all the same (and no file is created).
    idle = parties.make()
    with pytest.raises(EngineError):
        await idle.engine.set_audio_input("no-such-device-xyz")
    with pytest.raises(EngineError):
        await idle.engine.set_audio_output(str(nowhere))
    await idle.engine.set_audio_output(str(tmp_path / "later.wav"))
    assert not (tmp_path / "later.wav").exists()
    assert idle.engine.audio_out == str(tmp_path / "later.wav")
    assert [(e.kind, e.call_ids) for e in device_changes(idle)] == [("audio_out", ())]


async def test_mute_and_hold_survive_an_input_switch(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice", audio_in="tone")
    bob = await parties.online(server, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)
    assert await bob.ears.level() > LOUD

    # Muted: the new source is muted too.
    await alice.engine.mute(a_id)
    assert await bob.ears.level() < QUIET
    await alice.engine.set_audio_input("tone:1000")
    assert await bob.ears.level(1.0) < QUIET
    assert alice.engine.get(a_id).muted
    await alice.engine.unmute(a_id)
    assert await bob.ears.frequency() == pytest.approx(1000, abs=10)

    # Held: still held (and silent) after a switch; unheld, the new source is heard.
    await alice.engine.hold(a_id)
    await bob.events.state(b_id, S.ON_HOLD)
    await alice.engine.set_audio_input("tone:700")
    await asyncio.sleep(0.3)
    call = alice.engine.get(a_id)
    assert (call.state, call.local_hold, call.remote_hold) == (S.ON_HOLD, True, False)
    assert bob.engine.get(b_id).state == S.ON_HOLD
    assert await bob.ears.level() < QUIET
    await alice.engine.unhold(a_id)
    await bob.events.wait(
        CallStateChange,
        lambda e: e.call_id == b_id and e.previous.state == S.ON_HOLD and e.state == S.CONNECTED,
    )
    assert await bob.ears.frequency() == pytest.approx(700, abs=10)
    assert [e.spec for e in device_changes(alice)] == ["tone:1000", "tone:700"]


async def test_camera_switch_mid_call_without_renegotiation(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice")
    bob = await parties.online(server, "bob")
    at_bob = frames_of(bob.engine)
    a_id = await alice.engine.make("bob", video=True, video_size=(320, 240))
    b_id = (await bob.events.wait(CallReceive)).call_id
    await bob.events.state(b_id, S.RINGING)
    await bob.engine.answer(b_id, video=True, video_size=(320, 240))
    await alice.events.state(a_id, S.CONNECTED)
    await wait_frames(at_bob, 30)
    before = negotiated(alice, a_id), negotiated(bob, b_id)
    counted = len(at_bob)
    last = read_frame_number(at_bob[-1][1])
    assert last is not None and last >= 20, last

    # A new pattern source: its frame numbers start again from 0 at the far end.
    await alice.engine.set_camera("pattern")
    await wait_frames(at_bob, counted + 15)
    numbers = [read_frame_number(frame) for _, frame in at_bob[counted:]]
    later = [n for n in numbers if n is not None]
    assert later and min(later) < last and later[-1] > min(later), (last, numbers)
    assert (negotiated(alice, a_id), negotiated(bob, b_id)) == before
    assert [(e.kind, e.label, e.call_ids) for e in device_changes(alice)] == [
        ("camera", "test pattern", (a_id,))
    ]
    assert bob.engine.get(b_id).state == S.CONNECTED


def test_devices_through_the_thread_facade(tmp_path: Path) -> None:
    engine = EngineThread(audio_in="tone", audio_out="null")
    seen: list[EngineEvent] = []
    try:
        engine.subscribe(seen.append)
        listed = engine.list_devices()
        assert isinstance(listed, DeviceList)
        assert (listed.audio_in, listed.audio_out, listed.camera) == ("tone", "null", "pattern")
        labels = (listed.audio_in_label, listed.audio_out_label, listed.camera_label)
        assert labels == ("tone 440 Hz", "null", "test pattern")
        assert all(d.max_input_channels > 0 for d in listed.inputs)
        assert all(d.max_output_channels > 0 for d in listed.outputs)
        assert listed.problem or listed.inputs or listed.outputs
        engine.set_audio_input("tone:700")
        engine.set_audio_output(str(tmp_path / "out.wav"))
        engine.set_camera("pattern")
        with pytest.raises(EngineError):
            engine.set_audio_input("no-such-device-xyz")
        assert engine.list_devices().audio_in == "tone:700"
    finally:
        engine.close()
    changes = [(e.kind, e.label) for e in seen if isinstance(e, MediaDeviceChange)]
    assert changes == [
        ("audio_in", "tone 700 Hz"),
        ("audio_out", "file out.wav"),
        ("camera", "test pattern"),
    ]


# -- the PortAudio path through PulseAudio --------------------------------------------------


async def test_input_switch_between_pulse_devices_mid_call(
    server: RunningServer,
    parties: Parties,
    pulse: Pulse,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Device A is vspk (its monitor vmic is the default source), device B is vfar; a tone
    plays into each. The caller's input switches from A's monitor to B's mid-call (by device
    name; PortAudio reaches PulseAudio through ALSA, so PULSE_SOURCE picks B's monitor for
    the stream the switch opens) and the far end hears B's tone instead of A's."""
    talker_a = DeviceSink()  # on vspk, the default sink
    talker_a.start(ToneSource(700.0, 0.5))
    monkeypatch.setenv("PULSE_SINK", "vfar")
    talker_b = DeviceSink()  # on vfar
    talker_b.start(ToneSource(900.0, 0.5))
    monkeypatch.delenv("PULSE_SINK")
    try:
        # No audio processing: a steady tone is what noise suppression and gain control remove.
        alice = await parties.online(
            server,
            "alice",
            audio_in="default",
            audio_out="null",
            echo_cancellation="off",
            noise_suppression=False,
            auto_gain=False,
        )
        bob = await parties.online(server, "bob", audio_in="tone:600", audio_out="null")
        listed = await alice.engine.list_devices()
        names = [d.name for d in listed.inputs]
        assert any(d.default_input for d in listed.inputs), listed
        b_spec = "pulse" if "pulse" in names else str(listed.inputs[0].index)
        a_id, b_id = await connect(alice, bob)
        # The microphone delivers ~1.7 s after it opened; then codec and jitter buffer.
        heard_a = await bob.ears.listen(0.6, settle=2.5)
        on_a = capture_sources(pulse)

        monkeypatch.setenv("PULSE_SOURCE", "vfar.monitor")
        await alice.engine.set_audio_input(b_spec)
        heard_b = await bob.ears.listen(0.6, settle=2.5)
        on_b = capture_sources(pulse)
        state = alice.engine.get(a_id).state
        await alice.engine.end(a_id)
    finally:
        await talker_a.stop()
        await talker_b.stop()
    print(f"capture streams on {on_a}, then {on_b}; input {b_spec!r} of {names}")
    assert dominant_frequency(heard_a) == pytest.approx(700, abs=5)
    assert tone_level(heard_a, 900) < 0.01
    assert dominant_frequency(heard_b) == pytest.approx(900, abs=5)
    assert tone_level(heard_b, 900) > 0.2, tone_level(heard_b, 900)
    assert tone_level(heard_b, 700) < 0.01
    assert on_a == ["vmic"] and on_b == ["vfar.monitor"], (on_a, on_b)  # the old one closed
    assert state == S.CONNECTED
    assert bob.events.states(b_id) == ["Ringing", "Connected", "Ended"]
    assert gaps(bob) == []  # silence went out while the new microphone started
    assert [(e.kind, e.spec) for e in device_changes(alice)] == [("audio_in", b_spec)]
    assert not [e for e in alice.events.events + bob.events.events if isinstance(e, MediaError)]


def capture_sources(pulse: Pulse) -> list[str]:  # noqa: F811
    """The sources that clients' capture streams read from, sorted (vmic's own remapping
    stream on vspk.monitor is no client's)."""
    sources = {
        line.split()[0]: line.split()[1]
        for line in pulse.pactl("list", "short", "sources").splitlines()
    }
    outputs = [line.split() for line in pulse.pactl("list", "short", "source-outputs").splitlines()]
    return sorted(sources[out[1]] for out in outputs if out[3] == "protocol-native.c")
