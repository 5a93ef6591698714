"""Audio path figures: the engine through the real server and our receive path on bare peer
connections, beside bare aiortc, all in the same run.

    python -m benchmarks.audio [--quick] [--long] [--out FILE]

Prints one JSON object (and writes it to FILE). Every call runs in a fresh subprocess (our
per-connection hooks never touch the bare runs; CPU is that process's).

- `ours_engine`: two engines calling through the in-process server (benchmarks/_audio_engine.py):
  FEC, our jitter buffer pulled by the null sink's 20 ms clock; loss and jitter injected at the
  callee's receiver.
- `ours_pc`: two RTCPeerConnections over 127.0.0.1 with our FEC encoder, useinbandfec SDP and
  our jitter buffer pulled by a clock (10 ms blocks for latency, 20 ms for the rest).
- `bare`: aiortc's remote track as is; for the loss and speech runs its frames go through a
  20 ms clocked FIFO (silence on underrun), as a device.
- `device`: mouth-to-ear through PulseAudio null sinks and real PortAudio streams
  (benchmarks/_audio_devices.py), engines vs bare aiortc with the same devices.

- latency: a 20 ms 1 kHz burst every 400 ms; source recv() -> onset in the pulled/received PCM.
- first_audio: createOffer -> first audible PCM at the callee (tone runs; `tone_clean` has no
  impairment).
- loss: 1 kHz tone, seeded random loss at the receiver plus 40 ms uniform jitter; share of the
  20 ms blocks with the tone (softphone.media.heard), from 1 s in. Every side with seed 1; the
  engine also with seeds 2 and 3 (`ours_engine_seeds`, and their mean): one 12 s run has ~600
  blocks, so a single stall of the benchmark's own loop (`loop_stalls`: its two engines, server
  and impairment share one process) moves the figure by a percent or more.
- latency under loss: the bursts at 5 % loss + 40 ms jitter; median, p95 and the medians per
  window of the run (drift). `--long` adds a 10-minute run (1 minute with --quick).
- stoi: espeak-ng speech (tests/media/speech.py) at 5 % loss + 40 ms jitter, STOI (pystoi) of
  what was heard, 2 s chunks aligned each.
- erle: the APM on the simulated echo path of tests/media/test_echo.py with espeak-ng speech
  (no call); the time from which it stays above 25 dB.
- cpu: per call side, from the clean tone runs: the engine with and without echo cancellation,
  noise suppression and gain control; bare aiortc (both sides in one process, halved).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import deque
from typing import Any

import av
import numpy as np

RATE = 48000


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _run_call(
    mode: str, ours: bool, seconds: float, loss: float, seed: int
) -> dict[str, Any]:
    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    from benchmarks._calls_common import BurstSource, OnsetDetector
    from softphone.media.audio import MemorySink, ToneSource
    from softphone.media.audio_sink import to_mono
    from softphone.media.heard import tone_fraction

    def loopback_only(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"]

    aioice.ice.get_host_addresses = loopback_only
    config = RTCConfiguration(iceServers=[])
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    source: Any = BurstSource() if mode == "latency" else ToneSource(1000.0, 0.3)
    reference = np.zeros(0, np.int16)
    if mode == "speech":
        import tempfile

        from benchmarks._audio_engine import speech_once, write_wav
        from softphone.media.audio import WavSource

        reference = speech_once()
        folder = tempfile.mkdtemp(prefix="softphone-audio-")
        write_wav(os.path.join(folder, "speech.wav"), reference)
        source = WavSource(os.path.join(folder, "speech.wav"))
    stream: Any = None
    onsets = OnsetDetector()
    first_audio: list[float] = []
    heard: list[np.ndarray] = []

    def on_pcm(pcm: np.ndarray) -> None:
        if not first_audio and np.max(np.abs(pcm)) > 1000:
            first_audio.append(time.monotonic())
        if mode == "latency":
            onsets(pcm)
        else:
            heard.append(pcm.copy())

    arrived: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    @callee.on("track")
    def _on_track(remote: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in callee.getTransceivers() if t.kind == "audio")
        if ours:
            stream.attach(receiver)
        if loss > 0:
            from softphone.media.netsim import Impairment, impair

            impair(receiver, Impairment(loss=loss, jitter_s=0.04, seed=seed))
        if not arrived.done():
            arrived.set_result(remote)

    if ours:
        from softphone.media._aiortc_audio import use_fec_encoder
        from softphone.media.audio_receive import AudioReceiveStream
        from softphone.media.opus import with_inband_fec

        stream = AudioReceiveStream()
        munge = with_inband_fec
    else:
        munge = lambda sdp: sdp  # noqa: E731
    t0 = time.monotonic()
    sender = caller.addTrack(source)
    if ours:
        use_fec_encoder(sender)
    offer = await caller.createOffer()
    await caller.setLocalDescription(RTCSessionDescription(munge(offer.sdp), "offer"))
    await callee.setRemoteDescription(caller.localDescription)
    answer = await callee.createAnswer()
    await callee.setLocalDescription(RTCSessionDescription(munge(answer.sdp), "answer"))
    await caller.setRemoteDescription(callee.localDescription)
    remote = await asyncio.wait_for(arrived, 10)

    tasks: list[asyncio.Task[Any]] = []
    sink = MemorySink(on_pcm=on_pcm)
    if ours:
        from softphone.media.audio_receive import PulledTrack

        sink.start(PulledTrack(stream, 480 if mode == "latency" else 960))
    elif mode == "latency":
        sink.start(remote)
    else:
        fifo: deque[np.ndarray] = deque()

        async def read() -> None:
            try:
                while True:
                    frame = await remote.recv()
                    assert isinstance(frame, av.AudioFrame)
                    fifo.append(to_mono(frame))
            except MediaStreamError:
                pass

        async def clock() -> None:
            start, n, pending = time.monotonic(), 0, np.zeros(0, np.int16)
            while True:
                n += 1
                await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
                while pending.size < 960 and fifo:
                    pending = np.concatenate([pending, fifo.popleft()])
                if pending.size >= 960:
                    block, pending = pending[:960], pending[960:]
                else:
                    block = np.zeros(960, np.int16)
                on_pcm(block)

        tasks += [asyncio.create_task(read()), asyncio.create_task(clock())]
    await asyncio.sleep(1.0)
    cpu0, wall0 = _cpu(), time.monotonic()
    heard.clear()
    if mode == "latency":
        source.sent.clear()
        onsets.onsets.clear()
    await asyncio.sleep(seconds)
    cpu = (_cpu() - cpu0) / (time.monotonic() - wall0) * 100
    out: dict[str, Any] = {"cpu_percent_per_side": round(cpu / 2, 2)}
    if mode == "tone":  # the burst source is silent for its first 380 ms
        out["first_audio_ms"] = round((first_audio[0] - t0) * 1000, 1) if first_audio else None
    if mode == "latency":
        lat = []
        for t_src in source.sent:
            later = [o for o in onsets.onsets if o >= t_src]
            if later and later[0] - t_src < 1.0:
                lat.append((later[0] - t_src) * 1000)
        out["one_way_ms"] = _summary(lat)
    elif mode == "speech":
        from benchmarks._audio_engine import stoi_of

        out.update(stoi_of(reference, np.concatenate(heard) if heard else reference[:0]))
    else:
        pcm = np.concatenate(heard) if heard else np.zeros(0, np.int16)
        out["tone_heard"] = round(tone_fraction(pcm, 1000.0), 4)
    if ours:
        st = stream.stats()
        out["receive_stats"] = {
            k: (round(v, 1) if isinstance(v, float) else v)
            for k, v in vars(st).items()
            if not k.startswith("first_")
        }
    await sink.stop()
    for task in tasks:
        task.cancel()
    await caller.close()
    await callee.close()
    return out


def _summary(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    s = sorted(xs)
    return {
        "n": len(s),
        "median": round(statistics.median(s), 1),
        "p95": round(s[min(len(s) - 1, int(0.95 * len(s)))], 1),
        "max": round(s[-1], 1),
    }


def _erle() -> dict[str, Any]:
    from softphone.media.constants import BLOCK
    from softphone.media.echo import EchoCanceller
    from tests.media.speech import espeak_speech
    from tests.media.test_echo import echo_path

    far = espeak_speech(6.0)
    mic = echo_path(far)
    apm = EchoCanceller(auto_gain_control=False)
    apm.set_delay_ms(40)
    cpu0 = _cpu()
    out = []
    for i in range(0, far.size - BLOCK + 1, BLOCK):
        apm.far_end(far[i : i + BLOCK])
        out.append(apm.near_end(mic[i : i + BLOCK]))
    cpu = (_cpu() - cpu0) / 6.0 * 100
    res = np.concatenate(out).astype(np.float64)
    m = mic.astype(np.float64)
    windows = []
    for s in range(0, res.size, RATE // 4):
        e = float(np.mean(m[s : s + RATE // 4] ** 2)) + 1e-9
        o = float(np.mean(res[s : s + RATE // 4] ** 2)) + 1e-9
        windows.append(10 * math.log10(e / o))
    converged = next((i * 0.25 for i, w in enumerate(windows) if min(windows[i:]) >= 25), None)
    after = slice(2 * RATE, 6 * RATE)
    erle = 10 * math.log10((np.mean(m[after] ** 2) + 1e-9) / (np.mean(res[after] ** 2) + 1e-9))
    return {
        "erle_db_after_2s": round(float(erle), 1),
        "stays_above_25db_from_s": converged,
        "apm_cpu_percent": round(cpu, 2),
    }


def _child(args: list[str], timeout: float = 120) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.audio", "--child", *args]
    try:
        run = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if run.returncode != 0:
        return {"error": run.stderr[-800:]}
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def _run_child(mode: str, ours: str, seconds: float, loss: float, seed: int) -> dict[str, Any]:
    if mode == "erle":
        return _erle()
    if mode.startswith("engine:"):
        from benchmarks._audio_engine import engine_call

        kind = mode.removeprefix("engine:")
        return asyncio.run(engine_call(kind, seconds, loss, seed, processing=ours == "1"))
    if mode == "device":
        from benchmarks._audio_devices import device_run

        return device_run({"1": "ours", "0": "bare"}.get(ours, ours), seconds)
    return asyncio.run(_run_call(mode, ours == "1", seconds, loss, seed))


def _say(what: str) -> None:
    print(f"[audio {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


SIDES = {"ours_engine": ("engine:", "0"), "ours_pc": ("", "1"), "bare": ("", "0")}


def _compare(name: str, mode: str, secs: float, loss: float, sides: tuple[str, ...]) -> Any:
    out: dict[str, Any] = {}
    for side in sides:
        prefix, flag = SIDES[side]
        _say(f"{name} {side}")
        out[side] = _child([prefix + mode, flag, str(secs), str(loss), "1"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--long", action="store_true", help="add the 10-minute drift run")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "OURS", "SECONDS", "LOSS", "SEED"))
    a = parser.parse_args()
    if a.child:
        mode, ours, seconds, loss, seed = a.child
        print(json.dumps(_run_child(mode, ours, float(seconds), float(loss), int(seed))))
        return
    secs = 5.0 if a.quick else 12.0
    every = ("ours_engine", "ours_pc", "bare")
    report: dict[str, Any] = {"quick": a.quick, "seconds_per_run": secs}
    report["latency_clean"] = _compare("latency clean", "latency", secs, 0.0, every)
    report["tone_clean"] = _compare("tone clean", "tone", secs, 0.0, every)
    for loss in (0.02, 0.05, 0.10):
        name = f"loss_{round(loss * 100)}pct_jitter_40ms"
        report[name] = _compare(name, "tone", secs, loss, every)
        seeds = {"1": report[name]["ours_engine"]}
        for seed in ("2", "3"):
            _say(f"{name} ours_engine seed {seed}")
            seeds[seed] = _child(["engine:tone", "0", str(secs), str(loss), seed])
        heard = [r["tone_heard"] for r in seeds.values() if "tone_heard" in r]
        report[name]["ours_engine_seeds"] = {
            "tone_heard": {k: r.get("tone_heard") for k, r in seeds.items()},
            "loop_stalls": {k: r.get("loop_stalls") for k, r in seeds.items()},
            "mean_tone_heard": round(statistics.mean(heard), 4) if heard else None,
        }
    report["latency_5pct_jitter_40ms"] = _compare(
        "latency 5 % loss", "latency", max(secs, 30.0 if a.quick else 60.0), 0.05, every
    )
    if a.long:
        long_secs = 60.0 if a.quick else 600.0
        _say(f"latency 5 % loss, {long_secs:.0f} s")
        report["latency_5pct_jitter_40ms_long"] = {
            "ours_engine": _child(
                ["engine:latency", "0", str(long_secs), "0.05", "1"], timeout=long_secs + 120
            )
        }
    report["stoi_5pct_jitter_40ms"] = _compare(
        "speech 5 % loss", "speech", max(secs, 10.0), 0.05, ("ours_engine", "ours_pc", "bare")
    )
    _say("cpu with processing")
    with_processing = _child(["engine:tone", "1", str(secs), "0", "1"])
    report["cpu_percent_per_side"] = {
        "ours_engine": report["tone_clean"]["ours_engine"].get("cpu_percent_per_side"),
        "ours_engine_echo_cancellation": with_processing.get("cpu_percent_per_side"),
        "ours_pc": report["tone_clean"]["ours_pc"].get("cpu_percent_per_side"),
        "bare": report["tone_clean"]["bare"].get("cpu_percent_per_side"),
    }
    _say("erle")
    report["echo"] = _child(["erle", "1", "0", "0", "0"])
    devices: dict[str, Any] = {}
    for side, flag in (
        ("ours_engine", "1"), ("bare", "0"), ("rig", "rig"), ("passthrough", "passthrough")
    ):  # fmt: skip
        _say(f"device {side}")
        devices[side] = _child(["device", flag, str(secs), "0", "0"])
    rig = devices["rig"].get("mouth_to_ear_ms", {}).get("median")
    for side in ("ours_engine", "bare", "passthrough"):
        median = devices[side].get("mouth_to_ear_ms", {}).get("median")
        if rig is not None and median is not None:
            devices[side]["mouth_to_ear_minus_rig_ms_median"] = round(median - rig, 1)
    devices["about"] = (
        "mouth_to_ear_ms is raw: probe burst at amic's DAC time to its onset at bspk.monitor's "
        "ADC time. rig: the probe's burst straight from amic.monitor, no call (the null sink "
        "and monitor as PortAudio's timestamps see them); *_minus_rig: raw median minus the "
        "rig's. passthrough: amic.monitor -> our DeviceSource -> DeviceSink.play_stream -> bspk "
        "with no codec, network or jitter buffer: the floor of these devices and settings."
    )
    report["device_mouth_to_ear"] = devices
    report["targets"] = {
        "one_way_ms_median": 35,
        "first_audio_ms": 50,
        "tone_heard": {"2": 0.99, "5": 0.97, "10": 0.93},
        "latency_drift": "no growth",
        "erle_db": 25,
        "erle_converged_s": 2,
        "device_mouth_to_ear_ms": 60,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
