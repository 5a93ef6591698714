"""Device watch figures on a private PulseAudio (benchmarks/_audio_devices.py `private_pulse`).

    python -m benchmarks.devices [--rounds N] [--out FILE]

Prints one JSON object (and writes it to FILE).

- `list_pulse_devices_ms`: one listing of the server's sinks and sources (what every
  `list_devices`, every `pulse:...` stream open and each device change costs), beside
  `pulsectl_connect_timeout_ms`, a bare pulsectl `connect(timeout=2)` measured in the same run
  (what a listing cost before `softphone.media.pulse.connect`).
- `plug_ms`, `unplug_ms`: `pactl load-module module-null-sink` (unload-module) returned ->
  the engine's `media:deviceListChange` naming the sink, on the engine's loop; includes the
  watch's settling time (`settle_ms`).
- `watch_idle_cpu_percent`: CPU of the watch thread (/proc/self/task/TID/stat) over
  `idle_seconds` with nothing changing: the price of waking every 0.25 s for the stop flag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from benchmarks._audio_devices import private_pulse


def _median_ms(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "median": round(statistics.median(ms), 2),
        "p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2),
        "max": round(ms[-1], 2),
    }


def _listing(rounds: int) -> dict[str, Any]:
    import pulsectl  # type: ignore[import-untyped]

    from softphone.media.pulse import list_pulse_devices

    ours = []
    for _ in range(rounds):
        started = time.perf_counter()
        devices, problem = list_pulse_devices()
        ours.append(time.perf_counter() - started)
        assert devices and not problem, problem
    bare = []
    for _ in range(3):
        started = time.perf_counter()
        with pulsectl.Pulse("bench", connect=False) as pulse:
            pulse.connect(autospawn=False, timeout=2.0)
        bare.append(time.perf_counter() - started)
    return {
        "list_pulse_devices_ms": _median_ms(ours),
        "pulsectl_connect_timeout_ms": _median_ms(bare),
    }


def _thread_cpu(name: str) -> float:
    """User+system seconds of this process's thread called `name`."""
    thread = next(t for t in threading.enumerate() if t.name == name)
    with open(f"/proc/self/task/{thread.native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _watch(env: dict[str, str], rounds: int, idle: float) -> dict[str, Any]:
    from softphone.engine import Engine
    from softphone.engine.events import DevicesChanged, EngineEvent
    from softphone.media.pulse_watch import SETTLE

    engine = Engine(audio_out="null")
    changes: asyncio.Queue[tuple[float, DevicesChanged]] = asyncio.Queue()

    def on_event(event: EngineEvent) -> None:
        if isinstance(event, DevicesChanged):
            changes.put_nowait((time.perf_counter(), event))

    engine.subscribe(on_event)

    def pactl(*args: str) -> str:
        return subprocess.run(
            ["pactl", *args], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        while not engine.watching_devices:
            await asyncio.sleep(0.02)
        plug, unplug = [], []
        for i in range(rounds):
            name = f"Bench-{i}"
            module = await asyncio.to_thread(
                pactl, "load-module", "module-null-sink", f"sink_name=bench{i}",
                f"sink_properties=device.description={name}",
            )  # fmt: skip
            done = time.perf_counter()
            at, event = await asyncio.wait_for(changes.get(), 10)
            assert [d.name for d in event.added] == [name], event.added
            plug.append(at - done)
            await asyncio.to_thread(pactl, "unload-module", module)
            done = time.perf_counter()
            at, event = await asyncio.wait_for(changes.get(), 10)
            assert [d.name for d in event.removed] == [name], event.removed
            unplug.append(at - done)
        before = _thread_cpu("softphone-pulse-watch")
        await asyncio.sleep(idle)
        cpu = _thread_cpu("softphone-pulse-watch") - before
    finally:
        await engine.stop()
    return {
        "settle_ms": SETTLE * 1000,
        "plug_ms": _median_ms(plug),
        "unplug_ms": _median_ms(unplug),
        "idle_seconds": idle,
        "watch_idle_cpu_percent": round(100 * cpu / idle, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devices")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    with private_pulse() as env:
        report: dict[str, Any] = {"commit": commit, "rounds": args.rounds}
        print("listing...", file=sys.stderr)
        report |= _listing(args.rounds * 2)
        print("plugging...", file=sys.stderr)
        report |= asyncio.run(_watch(env, args.rounds, args.idle))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
