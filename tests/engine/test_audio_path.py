"""The engine's audio path in real calls through the real server on loopback: what the far end
heard under seeded loss and jitter injected at its receiver, latency after a delay spike, the
jitter buffer and processing in `get_stats`, `media:levels`, and live audio processing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from softphone.engine import Engine, EngineError
from softphone.engine.events import MediaLevels
from softphone.media.heard import tone_fraction
from softphone.media.netsim import Impairment, impair
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties
from tests.engine.test_calls import connect


def audio_receiver(engine: Engine, call_id: str) -> RTCRtpReceiver:
    peer = engine.session(call_id).peer
    assert peer is not None
    return next(t.receiver for t in peer.pc.getTransceivers() if t.kind == "audio")


async def jitter_buffer(engine: Engine, call_id: str) -> dict[str, Any]:
    stats = await engine.get_stats(call_id)
    figures: dict[str, Any] = stats["audio"]["jitter_buffer"]
    return figures


async def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_tone_heard_through_loss_and_jitter(server: RunningServer, parties: Parties) -> None:
    """5 % random loss and 40 ms uniform jitter at bob's receiver: concealment and FEC keep
    the tone in nearly every 20 ms block (aiortc's own path heard it in ~71 % at 5 % loss)."""
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)
    net = impair(audio_receiver(bob.engine, b_id), Impairment(0.05, 0.04, seed=7))
    pcm = await bob.ears.listen(4.0, settle=1.0)
    jb = await jitter_buffer(bob.engine, b_id)
    await alice.engine.end(a_id)
    heard = tone_fraction(pcm, 1000.0)
    print(f"tone in {heard:.1%} of blocks; lost {net.dropped} of {net.dropped + net.delivered}")
    print(f"jitter buffer: {jb}")
    assert net.dropped >= 5, net  # the impairment really dropped packets
    assert jb["fec"] + jb["concealed"] >= net.dropped // 2, jb  # losses were filled in
    assert heard >= 0.9, heard


async def test_delay_comes_back_down_after_a_spike(server: RunningServer, parties: Parties) -> None:
    """A 400 ms delay step for 1.6 s (nothing for 400 ms, then every packet late; at its end
    the old packets are overtaken by new ones): playout holds and conceals, and once the
    network is calm again the target and the delay come back down and stay down."""
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)
    net = impair(audio_receiver(bob.engine, b_id), Impairment(0.0, 0.01, seed=3))

    async def short() -> bool:
        jb = await jitter_buffer(bob.engine, b_id)
        return all(jb[k] <= 100 for k in ("target_delay_ms", "current_delay_ms", "buffered_ms"))

    async def calm_playout() -> bool:
        return bool((await jitter_buffer(bob.engine, b_id))["played"] >= 50 and await short())

    # A loaded machine stalls the loop now and then: start from a second of audio played at a
    # short delay, however long that takes.
    await wait_until(calm_playout, 60, "a short delay before the spike")
    calm = await jitter_buffer(bob.engine, b_id)
    net.spike_s = 0.4
    peak = 0.0
    for _ in range(8):
        await asyncio.sleep(0.2)
        jb = await jitter_buffer(bob.engine, b_id)
        peak = max(peak, jb["buffered_ms"], jb["current_delay_ms"], jb["target_delay_ms"])
    net.spike_s = 0.0
    for _ in range(5):  # the packets held up by the spike arrive in a burst
        await asyncio.sleep(0.2)
        jb = await jitter_buffer(bob.engine, b_id)
        peak = max(peak, jb["buffered_ms"], jb["current_delay_ms"], jb["target_delay_ms"])

    spike_over = time.monotonic()
    # The target forgets the spike (its histogram decays), and the delay follows it down.
    await wait_until(short, 60, "the delay to come back down")
    print(f"settled {time.monotonic() - spike_over:.1f} s after the spike")
    await asyncio.sleep(2.0)
    after = await jitter_buffer(bob.engine, b_id)
    pcm = await bob.ears.listen(1.0, settle=0.0)
    await alice.engine.end(a_id)
    print(f"before the spike {calm}\nbuffered at most {peak} ms\nafter {after}")
    assert calm["current_delay_ms"] <= 100, calm
    # The spike reached playout: ~20 frames concealed while nothing came, and the packets it
    # held up were late or dropped once new ones overtook them.
    assert after["concealed"] - calm["concealed"] >= 10, after
    assert after["current_delay_ms"] <= 100 and after["target_delay_ms"] <= 100, after
    assert after["dropped"] + after["late"] > calm["dropped"] + calm["late"], after
    assert tone_fraction(pcm, 1000.0) >= 0.9


async def test_levels_stats_and_processing_toggle(server: RunningServer, parties: Parties) -> None:
    """media:levels reports what is sent and played; get_stats carries the jitter buffer and
    what processing runs; set_audio_processing switches echo cancellation on a live call."""
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob", audio_in="tone:600")
    before = await alice.engine.list_devices()
    assert before.audio_processing.echo_cancellation == "auto"
    assert not before.echo_cancellation_active  # a tone is not a microphone
    a_id, _b_id = await connect(alice, bob)
    await alice.events.wait(
        MediaLevels, lambda e: e.call_id == a_id and e.output_rms > 0.05, timeout=10
    )
    levels = [e for e in alice.events.of(a_id) if isinstance(e, MediaLevels)]
    last = levels[-1]
    # tone:1000 is sent at 0.3 of full scale (rms 0.21); bob's 600 Hz comes back the same.
    assert last.input_peak == pytest.approx(0.3, abs=0.02), last
    assert last.input_rms == pytest.approx(0.3 / np.sqrt(2), abs=0.02), last
    assert 0.2 < last.output_peak <= 0.45, last

    stats = await alice.engine.get_stats(a_id)
    audio = stats["audio"]
    assert audio["codec"] == "audio/opus"
    assert audio["jitter_buffer"]["played"] > 0
    assert set(audio["jitter_buffer"]) >= {
        "target_delay_ms", "current_delay_ms", "concealed", "fec", "dropped", "late",
    }  # fmt: skip
    assert audio["processing"] == {
        "echo_cancellation": False,
        "noise_suppression": False,
        "auto_gain": False,
    }

    settings = await alice.engine.set_audio_processing("on", noise_suppression=False)
    assert (settings.echo_cancellation, settings.noise_suppression, settings.auto_gain) == (
        "on",
        False,
        True,
    )
    on = (await alice.engine.get_stats(a_id))["audio"]["processing"]
    assert on == {"echo_cancellation": True, "noise_suppression": False, "auto_gain": True}
    assert (await alice.engine.list_devices()).echo_cancellation_active
    # The processed tone still reaches bob (AEC3 with no echo leaves the near end alone).
    pcm = await bob.ears.listen(1.0, settle=1.0)
    assert tone_fraction(pcm, 1000.0) >= 0.9

    with pytest.raises(EngineError, match="echo_cancellation"):
        await alice.engine.set_audio_processing("sometimes")
    await alice.engine.set_audio_processing("off")
    off = (await alice.engine.get_stats(a_id))["audio"]["processing"]
    assert not any(off.values()), off  # a tone is processed only when asked for ("on")
    assert not (await alice.engine.list_devices()).echo_cancellation_active
    await alice.engine.end(a_id)
    with pytest.raises(ValueError, match="echo_cancellation"):
        Engine(echo_cancellation="loud")


def test_processing_settings_say_what_each_input_gets() -> None:
    from softphone.engine import AudioProcessing

    auto = AudioProcessing()
    assert auto.flags(device_input=True) == (True, True, True)
    assert auto.flags(device_input=False) is None  # files, tones, bots: untouched
    on = AudioProcessing("on", noise_suppression=False, auto_gain=False)
    assert on.flags(device_input=False) == (True, False, False)
    off = AudioProcessing("off")
    assert off.flags(device_input=True) == (False, True, True)  # NS and AGC still run
    assert AudioProcessing("off", False, False).flags(device_input=True) is None
    with pytest.raises(ValueError, match="must be one of auto, on, off, not 'always'"):
        AudioProcessing("always")  # type: ignore[arg-type]
