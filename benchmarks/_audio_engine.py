"""`benchmarks.audio`'s engine runs: two engines calling through the real server (in this
process, on loopback), and the measures shared with the bare runs (STOI, latency drift).

One call per process: alice calls bob, bob answers at once; seeded loss and uniform jitter are
injected at bob's audio receiver (`softphone.media.netsim`) once he has answered. Bob plays on
the null sink, i.e. our jitter buffer pulled on a 20 ms clock (`PulledTrack`).
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import statistics
import tempfile
import time
import wave
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 48000
Pcm = npt.NDArray[np.int16]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def summary(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    s = sorted(xs)
    return {
        "n": len(s),
        "median": round(statistics.median(s), 1),
        "p95": round(s[min(len(s) - 1, int(0.95 * len(s)))], 1),
        "max": round(s[-1], 1),
    }


def burst_latencies(sent: list[float], onsets: list[float]) -> list[tuple[float, float]]:
    """(send time, ms to the first onset after it) for every burst heard within a second."""
    out = []
    for t_src in sent:
        later = [o for o in onsets if o >= t_src]
        if later and later[0] - t_src < 1.0:
            out.append((t_src, (later[0] - t_src) * 1000))
    return out


def drift(pairs: list[tuple[float, float]], windows: int) -> dict[str, Any]:
    """Median latency per window of the run (first to last), and last minus first."""
    if len(pairs) < windows * 3:
        return {"n": len(pairs)}
    t0, t1 = pairs[0][0], pairs[-1][0] + 1e-9
    per: list[list[float]] = [[] for _ in range(windows)]
    for t, ms in pairs:
        per[min(windows - 1, int((t - t0) / (t1 - t0) * windows))].append(ms)
    medians = [round(statistics.median(w), 1) if w else None for w in per]
    known = [m for m in medians if m is not None]
    return {
        "window_s": round((t1 - t0) / windows, 1),
        "medians": medians,
        "last_minus_first_ms": round(known[-1] - known[0], 1) if known else None,
    }


class LoopStalls:
    """How late this process's event loop woke a 10 ms sleep: the benchmark's two engines,
    server and network impairment share one loop, so a stall (this process descheduled on a
    busy machine, or something blocking the loop) delays packets and pulls alike and shows up
    as concealment. Recorded beside the figures it can spoil."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.lags_ms.append((now - last - 0.01) * 1000)
            last = now

    def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
        lags = self.lags_ms or [0.0]
        return {
            "over_50ms": sum(1 for lag in lags if lag > 50),
            "over_20ms": sum(1 for lag in lags if lag > 20),
            "max_ms": round(max(lags), 1),
        }


def write_wav(path: str, pcm: Pcm) -> None:
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.astype("<i2").tobytes())


def speech_once() -> Pcm:
    """One pass of the espeak-ng test speech (tests/media/speech.py), 48 kHz."""
    from tests.media.speech import espeak_once

    return espeak_once()


def stoi_of(reference: Pcm, heard: Pcm, chunk_s: float = 2.0) -> dict[str, Any]:
    """STOI of what was heard against the looped reference, 2 s chunks each aligned on its
    own (the jitter buffer drops and inserts frames, which shifts everything after them)."""
    from pystoi import stoi  # type: ignore[import-untyped]

    period = reference.size
    ref = np.tile(reference, 3).astype(np.float64)
    chunk = int(chunk_s * RATE)
    scores = []
    for s in range(0, heard.size - chunk + 1, chunk):
        h = heard[s : s + chunk].astype(np.float64)
        if float(np.sqrt(np.mean(h**2))) < 100:  # a pause in the speech: nothing to score
            continue
        seg = ref[: period + chunk]
        n = 1 << math.ceil(math.log2(seg.size + chunk))
        x = np.fft.irfft(np.fft.rfft(seg, n) * np.conj(np.fft.rfft(h, n)), n)[:period]
        lag = int(np.argmax(x))
        scores.append(float(stoi(ref[lag : lag + chunk], h, RATE, extended=False)))
    return {"stoi": round(statistics.mean(scores), 3) if scores else None, "chunks": len(scores)}


async def engine_call(
    mode: str, seconds: float, loss: float, seed: int, processing: bool
) -> dict[str, Any]:
    """One call between two engines through the in-process server; see the module doc.

    mode: "latency" (bursts; one-way ms and their drift), "tone" (1 kHz: share of blocks heard,
    make -> first audible audio), "speech" (espeak-ng: STOI). `processing`: both sides run echo
    cancellation, noise suppression and gain control ("on"), else none (tones and files get
    none under "auto")."""
    from benchmarks._calls_common import (
        PASSWORD,
        BurstKit,
        OnsetDetector,
        force_loopback,
        inprocess_server,
    )
    from softphone.engine import Engine
    from softphone.engine.events import CallReceive, EngineEvent
    from softphone.media.heard import tone_fraction
    from softphone.media.netsim import Impairment, impair

    force_loopback()
    kit = BurstKit()
    tmp = tempfile.TemporaryDirectory(prefix="softphone-audio-")
    reference = np.zeros(0, np.int16)
    if mode == "speech":
        reference = speech_once()
        source = os.path.join(tmp.name, "speech.wav")
        write_wav(source, reference)
    else:
        source = {"latency": "burst", "tone": "tone:1000"}[mode]
    options: dict[str, Any] = {
        "echo_cancellation": "on" if processing else "off",
        "noise_suppression": processing,
        "auto_gain": processing,
        "inband_dtmf": False,
    }
    out: dict[str, Any] = {}
    async with inprocess_server() as server:
        alice = Engine(audio_in=source, audio_out="null", media=kit.kit, **options)
        bob = Engine(audio_in="tone:600", audio_out="null", **options)
        onsets = OnsetDetector()
        heard: list[Pcm] = []
        first: list[float] = []
        net = Impairment(loss=loss, jitter_s=0.04 if loss else 0.0, seed=seed)
        answered: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_pcm(_cid: str, pcm: Pcm) -> None:
            if not first and int(np.max(np.abs(pcm))) > 1000:
                first.append(time.monotonic())
            onsets(pcm)
            heard.append(pcm.copy())

        async def answer(call_id: str) -> None:
            await bob.answer(call_id)
            if loss:
                peer = bob.session(call_id).peer
                assert peer is not None
                receiver = next(t.receiver for t in peer.pc.getTransceivers() if t.kind == "audio")
                impair(receiver, net)
            answered.set_result(call_id)

        tasks: set[asyncio.Task[None]] = set()

        def on_event(event: EngineEvent) -> None:
            if isinstance(event, CallReceive):
                task = asyncio.ensure_future(answer(event.call_id))
                tasks.add(task)

        bob.subscribe(on_event)
        bob.add_pcm_listener(on_pcm)
        await alice.start(server.url, "alice", lambda: PASSWORD)
        await bob.start(server.url, "bob", lambda: PASSWORD)
        t0 = time.monotonic()
        a_id = await alice.make("bob")
        b_id = await asyncio.wait_for(answered, 10)
        await asyncio.sleep(1.5)
        heard.clear()
        onsets.onsets.clear()
        burst = kit.latest
        if burst is not None:
            burst.sent.clear()
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        stalls = LoopStalls()
        stalls.start()
        await asyncio.sleep(seconds)
        out["loop_stalls"] = stalls.stop()
        wall = time.monotonic() - wall0
        cpu = (cpu_seconds() - cpu0) / wall * 100
        # Both engines and the (idle) server share this process: half is one call side.
        out["cpu_percent_per_side"] = round(cpu / 2, 2)
        stats = await bob.get_stats(b_id)
        pcm = np.concatenate(heard) if heard else np.zeros(0, np.int16)
        if mode == "latency" and burst is not None:
            pairs = burst_latencies(burst.sent, onsets.onsets)
            out["one_way_ms"] = summary([ms for _, ms in pairs])
            out["drift"] = drift(pairs, max(3, min(10, round(seconds / 60))))
        elif mode == "tone":
            out["first_audio_ms"] = round((first[0] - t0) * 1000, 1) if first else None
            out["tone_heard"] = round(tone_fraction(pcm, 1000.0), 4)
        else:
            out.update(stoi_of(reference, pcm))
        if loss:
            out["lost"] = net.dropped
            out["packets"] = net.dropped + net.delivered
        out["jitter_buffer"] = stats["audio"].get("jitter_buffer")
        await alice.end(a_id)
        for engine in (alice, bob):
            await engine.stop()
    tmp.cleanup()
    return out
