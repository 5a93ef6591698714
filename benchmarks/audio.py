"""Audio receive path figures: ours (softphone.media.audio_receive) beside bare aiortc, same run.

    python -m benchmarks.audio [--quick]

Prints one JSON object. Every call is two RTCPeerConnections over 127.0.0.1 in a fresh
subprocess (our per-connection hooks never touch the bare runs; CPU is that process's, i.e.
both sides of one call). Ours: FEC encoder and useinbandfec SDP, our jitter buffer pulled by a
clock (10 ms blocks for latency, 20 ms for the rest). Bare: aiortc's remote track as is; for
the loss runs its frames go through a 20 ms clocked FIFO (silence on underrun), as a device.

- latency: a 20 ms 1 kHz burst every 400 ms; source recv() -> onset in the pulled/received PCM.
- first_audio: createOffer -> first audible PCM at the callee (tone runs; `tone_clean` has no
  impairment).
- loss: 1 kHz tone, seeded random loss at the receiver plus 40 ms uniform jitter; share of the
  20 ms blocks with the tone (softphone.media.heard), from 1 s in.
- erle: the APM on the simulated echo path of tests/media/test_echo.py (no call).
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
    out: dict[str, Any] = {"cpu_percent_both_sides": round(cpu, 1)}
    if mode != "latency":  # the burst source is silent for its first 380 ms
        out["first_audio_ms"] = round((first_audio[0] - t0) * 1000, 1) if first_audio else None
    if mode == "latency":
        lat = []
        for t_src in source.sent:
            later = [o for o in onsets.onsets if o >= t_src]
            if later and later[0] - t_src < 1.0:
                lat.append((later[0] - t_src) * 1000)
        out["one_way_ms"] = _summary(lat)
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
    from tests.media.test_echo import echo_path
    from tests.media.test_loopback_call import speech_like

    far = speech_like(6.0)
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


def _child(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.audio", "--child", *args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    if run.returncode != 0:
        return {"error": run.stderr[-800:]}
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "OURS", "SECONDS", "LOSS", "SEED"))
    a = parser.parse_args()
    if a.child:
        mode, ours, seconds, loss, seed = a.child
        if mode == "erle":
            print(json.dumps(_erle()))
            return
        res = asyncio.run(_run_call(mode, ours == "1", float(seconds), float(loss), int(seed)))
        print(json.dumps(res))
        return
    secs = 5.0 if a.quick else 12.0
    report: dict[str, Any] = {"quick": a.quick, "seconds_per_run": secs}
    for side in ("ours", "bare"):
        flag = "1" if side == "ours" else "0"
        print(f"latency {side}", file=sys.stderr)
        report.setdefault("latency_clean", {})[side] = _child(
            ["latency", flag, str(secs), "0", "0"]
        )
        for loss in (0.0, 0.02, 0.05, 0.10):
            print(f"loss {loss} {side}", file=sys.stderr)
            name = f"loss_{round(loss * 100)}pct_jitter_40ms" if loss else "tone_clean"
            report.setdefault(name, {})[side] = _child(["tone", flag, str(secs), str(loss), "1"])
    report["echo"] = _child(["erle", "1", "0", "0", "0"])
    report["targets"] = {
        "one_way_ms_median": 35,
        "first_audio_ms": 50,
        "tone_heard": {"2": 0.99, "5": 0.97, "10": 0.93},
        "erle_db": 25,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
