"""`benchmarks.audio`'s device runs: mouth-to-ear through real PortAudio devices.

A private PulseAudio (as tests/media/conftest.py starts it) with two null sinks at 48 kHz:
`amic`, whose monitor is the caller's microphone, and `bspk`, the callee's speaker. A probe
plays a 20 ms 1 kHz burst into amic every half second and records bspk's monitor; mouth-to-ear
is from the burst's first sample at amic's DAC to its onset captured from bspk (PortAudio's
outputBufferDacTime / inputBufferAdcTime, one clock for every stream of the process).

The rig's own part, measured the same way without any call: `rig` records the probe's bursts
straight from amic's monitor (PulseAudio's DAC/ADC timestamps cover the null sink and its
monitor, so this is ~0 when they are consistent); `passthrough` carries amic.monitor to bspk
through our `DeviceSource` and `DeviceSink.play_stream` (same PortAudio settings as a call; the
output callback pulls the captured 20 ms frames directly, at most one standing) with no codec,
network or jitter buffer: the floor these virtual devices, PortAudio's ALSA-pulse route and our
device settings set for any call's mouth-to-ear figure.

Ours: two engines through the in-process server, alice on the microphone (with its default
processing: echo cancellation, noise suppression, gain control), bob on the speaker (the output
callback pulling our jitter buffer). Bare: aiortc peer connections with the same devices
(`DeviceSource` sent, the remote track played through `DeviceSink`'s FIFO).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

RATE = 48000
BURST_EVERY = RATE // 2  # samples
BURST = 960


@contextmanager
def private_pulse() -> Iterator[dict[str, str]]:
    """PulseAudio with amic and bspk; this process's environment points at it meanwhile."""
    if shutil.which("pulseaudio") is None:
        raise RuntimeError("pulseaudio not installed (scripts/install.sh installs it)")
    from softphone.media.devices import rescan_audio_devices

    with tempfile.TemporaryDirectory(prefix="softphone-pulse-") as tmp:
        home, xdg = os.path.join(tmp, "home"), os.path.join(tmp, "xdg")
        os.mkdir(home)
        os.mkdir(xdg, 0o700)
        env = dict(os.environ, HOME=home, XDG_RUNTIME_DIR=xdg)
        env.pop("PULSE_SERVER", None)
        sink = "module-null-sink rate=48000 sink_name={0} sink_properties=device.description={0}"
        proc = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
             "--system=false", "--log-target=stderr",
             "-L", "module-native-protocol-unix auth-anonymous=1",
             "-L", sink.format("amic"), "-L", sink.format("bspk"), "-L", "module-always-sink"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        env["PULSE_SERVER"] = f"unix:{xdg}/pulse/native"
        saved = {k: os.environ.get(k) for k in ("HOME", "XDG_RUNTIME_DIR", "PULSE_SERVER")}
        try:
            deadline = time.monotonic() + 10
            while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("private pulseaudio did not start")
                time.sleep(0.05)
            for key in saved:
                os.environ[key] = env[key]
            rescan_audio_devices()
            yield env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            proc.terminate()
            proc.wait(5)


@contextmanager
def pulse_target(**names: str) -> Iterator[None]:
    """PULSE_SINK / PULSE_SOURCE for the PortAudio streams opened meanwhile."""
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Probe:
    """Bursts into amic, onsets captured from `source` (bspk.monitor), on PortAudio's clock."""

    def __init__(self, source: str = "bspk.monitor") -> None:
        import sounddevice as sd

        t = np.arange(BURST) / RATE
        self._burst = np.round(0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
        self._pos = 0
        self._hot = False
        self.sent: list[float] = []
        self.onsets: list[float] = []
        self._lock = threading.Lock()
        with pulse_target(PULSE_SINK="amic"):
            self._out = sd.OutputStream(
                samplerate=RATE, channels=1, dtype="int16", latency="low", blocksize=480,
                callback=self._play,
            )  # fmt: skip
        with pulse_target(PULSE_SOURCE=source):
            self._in = sd.InputStream(
                samplerate=RATE, channels=1, dtype="int16", latency="low", blocksize=480,
                callback=self._record,
            )  # fmt: skip
        self._out.start()
        self._in.start()

    def _play(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        out = outdata[:, 0]
        out[:] = 0
        for i in range(frames):
            phase = (self._pos + i) % BURST_EVERY
            if phase < BURST:
                out[i] = self._burst[phase]
                if phase == 0:
                    with self._lock:
                        self.sent.append(time_info.outputBufferDacTime + i / RATE)
        self._pos += frames

    def _record(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        idx = np.nonzero(np.abs(indata[:, 0]) > 0.1 * 32767)[0]
        if len(idx) and not self._hot:
            with self._lock:
                self.onsets.append(time_info.inputBufferAdcTime + float(idx[0]) / RATE)
        self._hot = bool(len(idx))

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()
            self.onsets.clear()

    def latencies(self) -> list[float]:
        with self._lock:
            sent, onsets = list(self.sent), list(self.onsets)
        out = []
        for t in sent:
            later = [o for o in onsets if o >= t]
            if later and later[0] - t < 1.0:
                out.append((later[0] - t) * 1000)
        return out

    def close(self) -> None:
        for stream in (self._out, self._in):
            stream.abort()
            stream.close()


async def _ours(seconds: float, probe: Probe) -> dict[str, Any]:
    from benchmarks._calls_common import PASSWORD, force_loopback, inprocess_server
    from softphone.engine import Engine
    from softphone.engine.events import CallReceive, EngineEvent

    force_loopback()
    async with inprocess_server() as server:
        with pulse_target(PULSE_SOURCE="amic.monitor", PULSE_SINK="bspk"):
            alice = Engine(audio_in="default", audio_out="null", inband_dtmf=False)
            bob = Engine(audio_in="silence", audio_out="default", inband_dtmf=False)
            answered: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            async def answer(call_id: str) -> None:
                await bob.answer(call_id)
                answered.set_result(call_id)

            tasks: set[asyncio.Task[None]] = set()

            def on_event(event: EngineEvent) -> None:
                if isinstance(event, CallReceive):
                    tasks.add(asyncio.ensure_future(answer(event.call_id)))

            bob.subscribe(on_event)
            await alice.start(server.url, "alice", lambda: PASSWORD)
            await bob.start(server.url, "bob", lambda: PASSWORD)
            a_id = await alice.make("bob")
            b_id = await asyncio.wait_for(answered, 10)
            await asyncio.sleep(4.0)  # the ALSA pulse plugin starts streams ~1.7 s late
        probe.clear()
        await asyncio.sleep(seconds)
        lat = probe.latencies()
        a_stats = (await alice.get_stats(a_id))["audio"]
        b_stats = (await bob.get_stats(b_id))["audio"]
        await alice.end(a_id)
        for engine in (alice, bob):
            await engine.stop()
    return {
        "latencies": lat,
        "callee_output_latency_ms": b_stats.get("output_latency_ms"),
        "callee_output_underruns": b_stats.get("output_underruns"),
        "caller_input_drops": a_stats.get("input_drops"),
        "caller_input_latency_ms": a_stats.get("input_latency_ms"),
        "caller_processing": a_stats.get("processing"),
        "jitter_buffer": b_stats.get("jitter_buffer"),
    }


async def _bare(seconds: float, probe: Probe) -> dict[str, Any]:
    from benchmarks._calls_common import BarePeer, bare_connect, force_loopback
    from softphone.media.audio import DeviceSink, DeviceSource

    force_loopback()
    with pulse_target(PULSE_SOURCE="amic.monitor", PULSE_SINK="bspk"):
        mic = DeviceSource()
        speaker = DeviceSink()
        a, b = BarePeer(mic, None), BarePeer(None, None)
        b.pc.addTransceiver("audio", direction="recvonly")
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        @b.pc.on("track")
        def _track(track: Any) -> None:
            if not got.done():
                got.set_result(track)

        await bare_connect(a, b)
        speaker.start(await asyncio.wait_for(got, 10))
        await asyncio.sleep(4.0)
    probe.clear()
    await asyncio.sleep(seconds)
    lat = probe.latencies()
    await speaker.stop()
    await a.close()
    await b.close()
    return {"latencies": lat, "speaker_fifo_ms": round(speaker.buffered_ms, 1)}


async def _rig(seconds: float, probe: Probe) -> dict[str, Any]:
    await asyncio.sleep(4.0)
    probe.clear()
    await asyncio.sleep(seconds)
    return {"latencies": probe.latencies()}


class _Handoff:
    """What `DeviceSink.play_stream` pulls in the pass-through: captured 20 ms frames as they
    come, at most one frame standing (older audio is dropped), silence when there is none."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, np.int16)
        self._lock = threading.Lock()
        self.underruns = 0

    def add(self, frame: Any) -> None:
        with self._lock:
            self._pending = np.concatenate([self._pending, frame])[-2 * BURST :]

    def pull(self, samples: int, now: float | None = None) -> Any:
        with self._lock:
            block, self._pending = self._pending[:samples], self._pending[samples:]
        if block.size < samples:
            self.underruns += 1
            block = np.concatenate([block, np.zeros(samples - block.size, np.int16)])
        return block


async def _passthrough(seconds: float, probe: Probe) -> dict[str, Any]:
    from softphone.media.audio import DeviceSink, DeviceSource

    with pulse_target(PULSE_SOURCE="amic.monitor", PULSE_SINK="bspk"):
        mic = DeviceSource()
        speaker = DeviceSink()
    handoff = _Handoff()
    speaker.play_stream(handoff)  # type: ignore[arg-type]  # duck-typed: only pull() is used

    async def carry() -> None:
        while True:
            frame = await mic.recv()
            handoff.add(frame.to_ndarray()[0])

    task = asyncio.create_task(carry())
    await asyncio.sleep(4.0)
    probe.clear()
    await asyncio.sleep(seconds)
    lat = probe.latencies()
    result = {
        "latencies": lat,
        "input_latency_ms": round(mic.latency_ms, 1),
        "output_latency_ms": round(speaker.latency_ms, 1),
        "output_underflows": speaker.underflows,
        "handoff_underruns": handoff.underruns,
    }
    task.cancel()
    await speaker.stop()
    mic.stop()
    speaker.close()
    return result


RUNS = {"ours": _ours, "bare": _bare, "rig": _rig, "passthrough": _passthrough}


def device_run(side: str, seconds: float) -> dict[str, Any]:
    """`side`: ours, bare, rig (probe only, amic -> amic.monitor) or passthrough."""
    from benchmarks._audio_engine import summary

    with private_pulse():
        probe = Probe("amic.monitor" if side == "rig" else "bspk.monitor")
        try:
            result = asyncio.run(RUNS[side](seconds, probe))
        finally:
            probe.close()
    result["mouth_to_ear_ms"] = summary(result.pop("latencies"))
    return result
