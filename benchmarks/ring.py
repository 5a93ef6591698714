"""The ring tone on a real device: how soon it sounds, whether the first burst is whole, how
soon it stops, whether its edges click, and what ringing costs.

    python -m benchmarks.ring [--rings N] [--out FILE]

A private PulseAudio (benchmarks/_audio_devices.py) with one more null sink, `ring`; an
`Engine(ring_device="pulse:ring")` rings there N times (7 s each: one whole 6 s period and the
next burst's start) while a PortAudio input stream records ring.monitor on PortAudio's clock
(the same clock `time.monotonic()` is on under ALSA). Per ring:

- open_ms: how long `start_ringing()` took (opening the device on the engine's loop);
- onset_ms: `start_ringing()` called -> the first ring sample captured from the monitor;
- first_burst_s: length of the first burst heard (the cadence's is 2.0 s; what the device's
  start swallows is the difference);
- period_s: first burst onset -> second burst onset (the cadence's is 6.0 s);
- stop_ms: `stop_ringing()` called -> the last ring sample captured;
- max_step: the largest sample-to-sample step captured (the cadence's own is ~390; a click
  without a fade would be thousands).
- underruns, underflows, refused: the ring's `DeviceSink` counters (PortAudio's output
  underflows, callbacks given silence for running ahead of real time: the lead-in's job).

cpu_percent: the process's CPU while ringing minus while only recording, in % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import threading
import time
from typing import Any

import numpy as np

from benchmarks._audio_devices import private_pulse, pulse_target

RATE = 48000
LOUD = 0.01 * 32767  # a captured sample above this is ring, not silence
RING_SECONDS = 7.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Recorder:
    """ring.monitor's samples with the monotonic time of each block's first sample."""

    def __init__(self) -> None:
        import sounddevice as sd

        self._lock = threading.Lock()
        self._blocks: list[tuple[float, np.ndarray]] = []
        with pulse_target(PULSE_SOURCE="ring.monitor"):
            self._in = sd.InputStream(
                samplerate=RATE, channels=1, dtype="int16", latency="low", blocksize=480,
                callback=self._record,
            )  # fmt: skip
        self._in.start()

    def _record(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's stream clock is not time.monotonic(): move its ADC time onto it.
        adc = time_info.inputBufferAdcTime - time_info.currentTime + time.monotonic()
        with self._lock:
            self._blocks.append((adc, indata[:, 0].copy()))

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """(time of each sample, samples) recorded since the last take."""
        with self._lock:
            blocks, self._blocks = self._blocks, []
        if not blocks:
            return np.zeros(0), np.zeros(0, np.int16)
        times = np.concatenate([t + np.arange(b.size) / RATE for t, b in blocks])
        return times, np.concatenate([b for _, b in blocks])

    def close(self) -> None:
        self._in.abort()
        self._in.close()


def _bursts(times: np.ndarray, pcm: np.ndarray) -> list[tuple[float, float]]:
    """(onset, end) of each run of loud 10 ms blocks."""
    block = RATE // 100
    n = pcm.size // block
    loud = np.abs(pcm[: n * block].reshape(n, block).astype(np.int32)).max(axis=1) > LOUD
    runs: list[tuple[float, float]] = []
    start: int | None = None
    for i, hot in enumerate([*loud, False]):
        if hot and start is None:
            start = i
        elif not hot and start is not None:
            first = start * block + int(np.argmax(np.abs(pcm[start * block :]) > LOUD))
            last = i * block - 1 - int(np.argmax(np.abs(pcm[: i * block][::-1]) > LOUD))
            runs.append((float(times[first]), float(times[last])))
            start = None
    return runs


async def _ring_once(recorder: Recorder) -> dict[str, Any]:
    from softphone.engine import Engine

    engine = Engine(audio_out="null", ring_device="pulse:Ring")
    await asyncio.sleep(1.0)
    recorder.take()
    cpu0, wall0 = _cpu(), time.monotonic()
    await asyncio.sleep(2.0)
    idle_cpu = (_cpu() - cpu0) / (time.monotonic() - wall0)
    recorder.take()
    called = time.monotonic()
    await engine.start_ringing()
    opened = time.monotonic()
    cpu1 = _cpu()
    await asyncio.sleep(RING_SECONDS)
    ring_cpu = (_cpu() - cpu1) / (time.monotonic() - opened)
    stopping = time.monotonic()
    sink = engine.ringer.sink
    counts = {k: getattr(sink, k, None) for k in ("underruns", "underflows", "refused")}
    await engine.stop_ringing()
    await asyncio.sleep(1.0)
    await engine.stop()
    times, pcm = recorder.take()
    runs = _bursts(times, pcm)
    steps = np.abs(np.diff(pcm.astype(np.int32)))
    return {
        "open_ms": round((opened - called) * 1000, 1),
        "onset_ms": round((runs[0][0] - called) * 1000, 1) if runs else None,
        "first_burst_s": round(runs[0][1] - runs[0][0], 3) if runs else None,
        "period_s": round(runs[1][0] - runs[0][0], 3) if len(runs) > 1 else None,
        "stop_ms": round((runs[-1][1] - stopping) * 1000, 1) if runs else None,
        "max_step": int(steps.max()) if steps.size else None,
        "cpu_percent": round((ring_cpu - idle_cpu) * 100, 2),
        **counts,  # the device sink's: see the module doc
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rings", type=int, default=3)
    parser.add_argument("--out", metavar="FILE")
    args = parser.parse_args()
    import subprocess

    with private_pulse() as env:
        subprocess.run(
            ["pactl", "load-module", "module-null-sink", "rate=48000", "sink_name=ring",
             "sink_properties=device.description=Ring"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        recorder = Recorder()
        try:
            runs = []
            for n in range(args.rings):
                print(f"ring {n + 1}/{args.rings}", file=sys.stderr)
                runs.append(asyncio.run(_ring_once(recorder)))
        finally:
            recorder.close()
    keys = ("open_ms", "onset_ms", "first_burst_s", "period_s", "stop_ms", "max_step")
    report = {
        "cadence": {"frequencies_hz": [440, 480], "on_s": 2.0, "off_s": 4.0},
        "median": {key: _median(runs, key) for key in (*keys, "cpu_percent")},
        "runs": runs,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
