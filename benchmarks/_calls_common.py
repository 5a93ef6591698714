"""Shared pieces of `benchmarks.calls`: loopback ICE, the burst source and onset detector, the
aiortc send/receive hooks for the latency breakdown, statistics, machine load, the in-process
server, engine parties that auto-answer, and bare aiortc peer pairs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import itertools
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from softphone.engine import Engine
from softphone.engine.events import (
    CallMediaConnectionChange,
    CallStateChange,
    EngineEvent,
)
from softphone.engine.media_kit import MediaKit, default_kit
from softphone.engine.states import CallState
from softphone.media.audio import AudioSource, open_source, to_mono
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.video import PatternSource

Pcm = np.ndarray[Any, Any]
PASSWORD = "bench-password-123"
USERS = ("alice", "bob", "carol", "dave")
BURST_PERIOD = 25  # frames: one 20 ms burst every 0.5 s
BIG = 40  # Opus payload bytes: silence is a few bytes, the 1 kHz burst far more


def log(msg: str) -> None:
    print(f"[calls {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def force_loopback() -> None:
    """aioice never offers 127.0.0.1 by itself; every candidate here is 127.0.0.1."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


# -------------------------------------------------------------------------------- stats


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    if not s:
        return math.nan
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "min": round(min(xs), 1),
        "median": round(pct(xs, 50), 1),
        "p90": round(pct(xs, 90), 1),
        "max": round(max(xs), 1),
        "stdev": round(statistics.pstdev(xs), 2),
    }


def ratio(a: float, b: float) -> float | None:
    if not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


# -------------------------------------------------------------------------------- machine load


def _proc_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [float(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


def _pid_cpu(pid: int) -> float:
    """utime+stime seconds of a live process (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


class LoadWindow:
    """Machine load over a window: load average, whole-machine CPU, ours and everyone else's
    (all as percent of one core). `pids` are live children whose CPU counts as ours."""

    def __init__(self, pids: list[int] | None = None) -> None:
        self.pids = list(pids or [])
        self.t0 = time.monotonic()
        self.busy0, _ = _proc_busy()
        self.own0 = _own_cpu()
        self.kids0 = {p: _pid_cpu(p) for p in self.pids}

    def add_pid(self, pid: int) -> None:
        self.pids.append(pid)
        self.kids0[pid] = _pid_cpu(pid)

    def done(self) -> dict[str, Any]:
        wall = max(1e-6, time.monotonic() - self.t0)
        busy1, _ = _proc_busy()
        kids = sum(max(0.0, _pid_cpu(p) - self.kids0[p]) for p in self.pids)
        own = _own_cpu() - self.own0 + kids
        machine = (busy1 - self.busy0) / os.sysconf("SC_CLK_TCK")
        return {
            "wall_s": round(wall, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "machine_cpu_percent": round(machine / wall * 100, 1),
            "ours_cpu_percent": round(own / wall * 100, 1),
            "other_cpu_percent": round(max(0.0, machine - own) / wall * 100, 1),
            "cores": os.cpu_count(),
        }


def top_other_processes(limit: int = 5) -> list[dict[str, Any]]:
    """The busiest other processes over 0.5 s (name, percent of one core)."""
    me = os.getpid()

    def snap() -> dict[int, tuple[str, float]]:
        out: dict[int, tuple[str, float]] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == me:
                continue
            try:
                with open(f"/proc/{d}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            out[int(d)] = (name, _pid_cpu(int(d)))
        return out

    a = snap()
    time.sleep(0.5)
    b = snap()
    rows = sorted(
        ((round((c - a[p][1]) / 0.5 * 100, 1), p, n) for p, (n, c) in b.items() if p in a),
        reverse=True,
    )
    return [{"pid": p, "name": n, "cpu_percent": c} for c, p, n in rows[:limit] if c > 1.0]


# -------------------------------------------------------------------------------- media


class BurstSource(AudioSource):
    """Silence with a 20 ms 1 kHz burst at the start of every BURST_PERIOD-th frame; `sent`
    holds the monotonic time each burst frame left recv()."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []
        t = np.arange(BLOCK) / SAMPLE_RATE
        self._burst = np.round(0.8 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)

    def _generate(self, first_sample: int) -> Any:
        if (first_sample // BLOCK) % BURST_PERIOD == BURST_PERIOD - 1:
            return self._burst.copy()
        return np.zeros(BLOCK, dtype=np.int16)

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        if ((frame.pts or 0) // BLOCK) % BURST_PERIOD == BURST_PERIOD - 1:
            self.sent.append(time.monotonic())
        return frame


class OnsetDetector:
    """on_pcm callback: the time of each rising edge of loud audio (plus its offset in the
    block)."""

    def __init__(self) -> None:
        self.onsets: list[float] = []
        self.first: float | None = None
        self._hot = False

    def __call__(self, pcm: Pcm) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        idx = np.nonzero(np.abs(pcm) > 0.3 * 32767)[0]
        if len(idx) and not self._hot:
            self.onsets.append(now + float(idx[0]) / SAMPLE_RATE)
        self._hot = bool(len(idx))


class Wire:
    """Hooks aiortc's RTP send (after Opus) and RTP receive: times of big audio packets."""

    installed = False
    tx: list[float] = []
    rx: list[float] = []

    @classmethod
    def install(cls) -> None:
        if cls.installed:
            return
        import aiortc.rtcdtlstransport as dt
        import aiortc.rtcrtpreceiver as rr
        from aiortc.rtp import RtpPacket

        orig_send = dt.RTCDtlsTransport._send_rtp
        orig_rx = rr.RTCRtpReceiver._handle_rtp_packet

        async def send_hook(self: Any, data: bytes) -> None:
            # RTP (not RTCP: payload types 192-223) packets carrying more than silence.
            big = len(data) > 12 + BIG and not 192 <= data[1] <= 223
            if big and len(RtpPacket.parse(data).payload) > BIG:
                cls.tx.append(time.monotonic())
            await orig_send(self, data)

        async def rx_hook(self: Any, packet: Any, arrival_time_ms: int) -> None:
            if self._RTCRtpReceiver__kind == "audio" and len(packet.payload) > BIG:
                cls.rx.append(time.monotonic())
            await orig_rx(self, packet, arrival_time_ms)

        dt.RTCDtlsTransport._send_rtp = send_hook  # type: ignore[method-assign]
        rr.RTCRtpReceiver._handle_rtp_packet = rx_hook  # type: ignore[method-assign]
        cls.installed = True

    @classmethod
    def reset(cls) -> None:
        cls.tx.clear()
        cls.rx.clear()


def _first_after(xs: list[float], t: float) -> float | None:
    i = bisect.bisect_left(xs, t)
    return xs[i] if i < len(xs) else None


def latency_report(sent: list[float], onsets: list[float], wire: bool = True) -> dict[str, Any]:
    """Per burst: source recv() → far-end on_pcm onset, split at the RTP send and receive."""
    tx, rx = sorted(Wire.tx), sorted(Wire.rx)
    onsets = sorted(onsets)
    total, enc, net, jb = [], [], [], []
    for t_src in sent:
        t_out = _first_after(onsets, t_src)
        if t_out is None or t_out - t_src > 1.0:
            continue
        total.append((t_out - t_src) * 1000)
        t_tx = _first_after(tx, t_src) if wire else None
        t_rx = _first_after(rx, t_tx) if t_tx is not None else None
        if t_tx is not None and t_rx is not None and t_rx <= t_out:
            enc.append((t_tx - t_src) * 1000)
            net.append((t_rx - t_tx) * 1000)
            jb.append((t_out - t_rx) * 1000)
    gaps = [(b - a) * 1000 - BURST_PERIOD * 20 for a, b in itertools_pairwise(sent)]
    out: dict[str, Any] = {
        "bursts_sent": len(sent),
        "bursts_matched": len(total),
        "one_way_ms": summary(total),
        "jitter_ms_p90_minus_p10": round(pct(total, 90) - pct(total, 10), 2) if total else None,
        "source_pacing_error_ms": summary([abs(g) for g in gaps]),
    }
    if wire:
        out["breakdown_ms"] = {
            "encode_and_packetize": summary(enc),
            "loopback_udp_srtp": summary(net),
            "jitter_buffer_decode_queue_sink": summary(jb),
        }
    return out


def itertools_pairwise(xs: list[float]) -> list[tuple[float, float]]:
    return list(itertools.pairwise(xs))


class BurstKit:
    """A MediaKit whose source spec "burst" opens a BurstSource (the latest is kept)."""

    def __init__(self) -> None:
        self.latest: BurstSource | None = None
        base = default_kit()

        def opener(spec: str) -> AudioSource:
            if spec == "burst":
                self.latest = BurstSource()
                return self.latest
            return open_source(spec)

        self.kit: MediaKit = dataclasses.replace(base, open_source=opener)


# -------------------------------------------------------------------------------- server


@contextlib.asynccontextmanager
async def inprocess_server(extra: str = "") -> Any:
    """The real server app (`softphone serve`'s `start_server`) on this loop, 127.0.0.1:0;
    `extra`: more configuration (e.g. a [turn] section)."""
    from softphone.config import parse_config
    from softphone.server.passwords import hash_password
    from softphone.server.runner import start_server
    from softphone.server.services import SERVICES

    with tempfile.TemporaryDirectory(prefix="softphone-calls-") as tmp:
        config = parse_config(f"""
[server]
data_dir = "{Path(tmp)}"
ring_timeout = 30
resume_window = 2
[rate_limits]
login_per_minute = 10000
anonymous_per_minute = 10000
{extra}""")
        server = await start_server(config, host="127.0.0.1", port=0)
        store = server.app[SERVICES].store
        hashed = hash_password(PASSWORD)
        for name in USERS:
            store.add_user(name, hashed, False)
        try:
            yield server
        finally:
            await server.stop()


# -------------------------------------------------------------------------------- engine parties


class Trial:
    """Marks (monotonic) of one call setup."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}
        self.done = asyncio.Event()
        self.need = {"caller_connected", "caller_ice", "callee_first_audio", "caller_first_audio"}

    def ms(self) -> dict[str, float]:
        return {k: (v - self.t0) * 1000 for k, v in self.marks.items()}


class Side:
    """One engine's hooks: auto-answer, and marks into the current Trial. Callbacks run on the
    engine's loop (whichever thread that is)."""

    def __init__(self, engine: Engine, role: str, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.role = role
        self.loop = loop
        self.trial: Trial | None = None
        self.answer_video = False
        self.detector = OnsetDetector()
        self._seen_pcm: set[str] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self.call_ids: list[str] = []

    def attach(self) -> None:
        self.engine.subscribe(self.on_event)
        self.engine.add_pcm_listener(self.on_pcm)

    def _mark(self, key: str) -> None:
        trial = self.trial
        if trial is not None:
            _mark_any(trial, key)

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, CallStateChange):
            if event.state == CallState.CONNECTED:
                self._mark(f"{self.role}_connected")
            if self.role == "callee" and event.state in (CallState.RINGING, CallState.INITIATED):
                rec = self.engine.get(event.call_id)
                if rec.direction == "incoming" and event.call_id not in self.call_ids:
                    self.call_ids.append(event.call_id)
                    task = asyncio.ensure_future(
                        self.engine.answer(event.call_id, video=self.answer_video)
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        elif isinstance(event, CallMediaConnectionChange) and event.state in (
            "connected",
            "completed",
        ):
            self._mark(f"{self.role}_ice")

    def on_pcm(self, call_id: str, pcm: Pcm) -> None:
        if call_id not in self._seen_pcm:
            self._seen_pcm.add(call_id)
            self._mark(f"{self.role}_first_audio")
        self.detector(pcm)


def _mark_any(trial: Trial, key: str) -> None:
    """Record a mark from any thread: the time now, the Event set on the trial's loop."""
    if key in trial.marks:
        return
    trial.marks[key] = time.monotonic()
    if trial.need <= trial.marks.keys():
        loop = trial_loop.get(id(trial))
        if loop is not None:
            loop.call_soon_threadsafe(trial.done.set)


trial_loop: dict[int, asyncio.AbstractEventLoop] = {}


def new_trial() -> Trial:
    trial = Trial()
    trial_loop[id(trial)] = asyncio.get_running_loop()
    return trial


# -------------------------------------------------------------------------------- bare aiortc


class Drain:
    """Consumes a remote track like the engine's sinks do (audio → to_mono → on_pcm)."""

    def __init__(self, on_pcm: Callable[[Pcm], None] | None = None) -> None:
        self.on_pcm = on_pcm
        self.first: float | None = None
        self.frames = 0
        self.task: asyncio.Task[None] | None = None

    def start(self, track: MediaStreamTrack) -> None:
        self.task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames += 1
                if self.first is None:
                    self.first = time.monotonic()
                if track.kind == "audio":
                    pcm = to_mono(frame)  # type: ignore[arg-type]
                    if self.on_pcm is not None:
                        self.on_pcm(pcm)
        except MediaStreamError:
            pass


class BarePeer:
    """An RTCPeerConnection with iceServers=[] and drains on its remote tracks."""

    def __init__(self, audio: MediaStreamTrack | None, video: MediaStreamTrack | None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connected = asyncio.Event()
        self.connected_at: float | None = None
        self.drains: dict[str, Drain] = {}
        self.on_pcm: Callable[[Pcm], None] | None = None
        self.tracks = [t for t in (audio, video) if t is not None]
        for t in self.tracks:
            self.pc.addTrack(t)

        @self.pc.on("connectionstatechange")
        def _changed() -> None:
            if self.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()
                self.connected.set()

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            drain = Drain(self.on_pcm if track.kind == "audio" else None)
            self.drains[track.kind] = drain
            drain.start(track)

    def first(self, kind: str) -> float | None:
        d = self.drains.get(kind)
        return d.first if d else None

    async def close(self) -> None:
        for t in self.tracks:
            t.stop()
        await self.pc.close()
        for d in self.drains.values():
            if d.task is not None:
                d.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await d.task


async def bare_connect(a: BarePeer, b: BarePeer) -> None:
    """Offer/answer exchanged directly (no signaling server)."""
    await a.pc.setLocalDescription(await a.pc.createOffer())
    await b.pc.setRemoteDescription(a.pc.localDescription)
    await b.pc.setLocalDescription(await b.pc.createAnswer())
    await a.pc.setRemoteDescription(b.pc.localDescription)


def pattern(fps: int = 15) -> PatternSource:
    return PatternSource(640, 480, fps)
