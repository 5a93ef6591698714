"""Call benchmark: setup time, one-way audio latency, CPU, pacing under a busy UI loop, and
browser interop setup, each beside a bare-aiortc (or engine) reference measured in the same run.

Run from the repository root::

    python -m benchmarks.calls [--quick] [--skip-browser] [--skip-interop | --only-interop]

One JSON object goes to stdout; progress goes to stderr. Everything stays on 127.0.0.1 (aioice's
host candidates are forced to 127.0.0.1); Chromium only runs inside a private network namespace
(`unshare -n`, when root; as the web tests do).

Phases (engine = `softphone.engine.Engine` through the real server app started in this process
with `softphone.server.runner.start_server`, i.e. what `softphone serve` runs; bare = two
`RTCPeerConnection(iceServers=[])` exchanging SDP directly in one process):

1. setup: make → Connected (the engine's call state: answer applied), → ICE connected, → first
   remote audio frame decoded at the callee and at the caller; engine and bare calls alternate,
   the first (cold) call of each is reported separately.
2. latency: one-way audio, source `recv()` → far-end `on_pcm` of a 1 kHz 20 ms burst every
   0.5 s, with a breakdown at aiortc's RTP send (after Opus) and RTP receive hooks.
3. cpu: each side in its own process (`benchmarks._calls_side`), getrusage over a window:
   audio call and 640x480 VP8 PatternSource (15 fps, the engine's rate) call, engine vs bare.
4. busy_loop: the latency of (2) with engines on `EngineThread`s, idle; with a second event
   loop in another thread burning ~10 ms of CPU every 16 ms (UI redraws); and with that burn
   forced onto the sending engine's own loop.
5. browser (`benchmarks._calls_browser`, skipped by --skip-browser): make → Connected median
   of N for browser↔browser, browser→engine, engine→browser, engine↔engine, one server.
6. interop (`benchmarks._calls_interop`, skipped by --skip-interop; issue 11), in a private
   network namespace with a default route on `lo`: per peer (engine, Firefox ESR, Chromium,
   GStreamer webrtcbin, engine↔engine relay-only through coturn) setup make → audio both ways
   (pages with trickle ICE on and off, and make → Connected), media death (peer killed, DTLS
   failure, path dropped) → the user told and → the call ended, restart_media time and the
   audio gap around it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
from typing import Any

from benchmarks._calls_common import (
    PASSWORD,
    BarePeer,
    BurstKit,
    BurstSource,
    LoadWindow,
    OnsetDetector,
    Side,
    Trial,
    Wire,
    bare_connect,
    force_loopback,
    inprocess_server,
    latency_report,
    log,
    new_trial,
    ratio,
    summary,
    top_other_processes,
)
from softphone.client import Backoff
from softphone.engine import Engine, EngineThread
from softphone.engine.states import CallState
from softphone.media.audio import SilenceSource, ToneSource
from softphone.server.runner import RunningServer

FAST = Backoff(base=0.05, cap=0.2, jitter=0.0)
REFERENCE = {
    "source": "/work/shared/reference/stack-probe.md (same machine class, earlier run)",
    "bare_setup_connected_ms": 30.6,
    "bare_setup_first_audio_ms": 112.9,
    "bare_one_way_audio_latency_ms": 88.5,
    "bare_audio_call_cpu_both_ends_percent": 21.6,
    "bare_vp8_640x480_30fps_cpu_sender_receiver_percent": [28.6, 10.3],
}
SETUP_KEYS = ("caller_connected", "caller_ice", "callee_first_audio", "caller_first_audio")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5)
        return done.stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _git_state() -> dict[str, Any]:
    """The commit, and which files under softphone/ differ from it (uncommitted work in the
    checkout is what was measured)."""
    status = _git("status", "--porcelain", "--", "softphone") or ""
    return {
        "commit": (_git("rev-parse", "--short", "HEAD") or "").strip() or None,
        "softphone_uncommitted": [line[3:] for line in status.splitlines() if line.strip()],
    }


async def _settle(*engines: Engine, timeout: float = 5.0) -> None:
    """Until no engine has a live call (so calls never overlap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(
            c.state in (CallState.ENDED, CallState.CANCELLED) for e in engines for c in e.get_all()
        ):
            return
        await asyncio.sleep(0.02)


async def _engine_pair(
    server: RunningServer,
    caller_in: str = "tone",
    callee_in: str = "tone",
    kit: BurstKit | None = None,
    inband_dtmf: bool = True,
) -> tuple[Engine, Engine, Side, Side]:
    loop = asyncio.get_running_loop()
    opts: dict[str, Any] = {"audio_out": "null", "inband_dtmf": inband_dtmf}
    caller = Engine(audio_in=caller_in, media=kit.kit if kit else None, **opts)
    callee = Engine(audio_in=callee_in, **opts)
    a, b = Side(caller, "caller", loop), Side(callee, "callee", loop)
    a.attach()
    b.attach()
    await caller.start(server.url, "alice", lambda: PASSWORD, backoff=FAST)
    await callee.start(server.url, "bob", lambda: PASSWORD, backoff=FAST)
    return caller, callee, a, b


# ---------------------------------------------------------------------------- 1. setup


async def _engine_setup_once(caller: Engine, callee: Engine, a: Side, b: Side) -> dict[str, float]:
    trial = new_trial()
    a.trial = b.trial = trial
    call_id = await caller.make("bob")
    try:
        await asyncio.wait_for(trial.done.wait(), 10)
    except TimeoutError:
        log(f"engine setup incomplete: {sorted(trial.marks)}")
    row = trial.ms()
    a.trial = b.trial = None
    await caller.end(call_id)
    await _settle(caller, callee)
    return row


async def _bare_setup_once() -> dict[str, float]:
    a = BarePeer(ToneSource(440), None)
    b = BarePeer(ToneSource(660), None)
    trial = Trial()
    await bare_connect(a, b)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        a.connected_at and a.first("audio") and b.first("audio")
    ):
        await asyncio.sleep(0.002)
    marks = {
        "caller_connected": a.connected_at,
        "callee_first_audio": b.first("audio"),
        "caller_first_audio": a.first("audio"),
    }
    await a.close()
    await b.close()
    return {k: (v - trial.t0) * 1000 for k, v in marks.items() if v is not None}


async def phase_setup(server: RunningServer, n: int) -> dict[str, Any]:
    caller, callee, a, b = await _engine_pair(server)
    engine_rows: list[dict[str, float]] = []
    bare_rows: list[dict[str, float]] = []
    load = LoadWindow()
    try:
        for i in range(n + 1):
            engine_rows.append(await _engine_setup_once(caller, callee, a, b))
            bare_rows.append(await _bare_setup_once())
            if i % 5 == 0:
                log(f"setup {i}/{n}: engine {engine_rows[-1]} bare {bare_rows[-1]}")
    finally:
        await caller.stop()
        await callee.stop()

    def col(rows: list[dict[str, float]], key: str) -> list[float]:
        return [r[key] for r in rows[1:] if key in r]

    engine = {k: summary(col(engine_rows, k)) for k in SETUP_KEYS}
    bare = {k: summary(col(bare_rows, k)) for k in SETUP_KEYS if k != "caller_ice"}

    def med(d: dict[str, Any], k: str) -> float:
        return float(d[k].get("median", float("nan")))

    return {
        "calls": n,
        "server": "in-process: softphone.server.runner.start_server (the `softphone serve` app)"
        " on this process's loop, both engines on the same loop",
        "what": "ms from make() (engine) / createOffer() (bare). engine caller_connected = the "
        "engine's Connected state (answer applied; ICE may still be checking); caller_ice = "
        "ICE connected at the caller; bare caller_connected = RTCPeerConnection.connectionState "
        "connected (ICE + DTLS); first_audio = first remote audio block decoded (on_pcm). "
        "Engine calls include ringing feedback and three REST round trips + websocket pushes; "
        "engine and bare calls alternate",
        "engine": engine,
        "bare_aiortc": bare,
        "cold_first_call": {
            "engine": {k: round(v, 1) for k, v in engine_rows[0].items()},
            "bare_aiortc": {k: round(v, 1) for k, v in bare_rows[0].items()},
        },
        "ratio_engine_over_bare_median": {
            "callee_first_audio": ratio(
                med(engine, "callee_first_audio"), med(bare, "callee_first_audio")
            ),
            "caller_first_audio": ratio(
                med(engine, "caller_first_audio"), med(bare, "caller_first_audio")
            ),
            "caller_ice_vs_bare_connected": ratio(
                med(engine, "caller_ice"), med(bare, "caller_connected")
            ),
            "target": 1.3,
        },
        "machine": load.done(),
    }


# ---------------------------------------------------------------------------- 2. latency


async def _engine_latency(
    server: RunningServer, secs: float, inband_dtmf: bool = True
) -> dict[str, Any]:
    kit = BurstKit()
    caller, callee, a, b = await _engine_pair(server, "burst", "silence", kit, inband_dtmf)
    try:
        trial = new_trial()
        a.trial = b.trial = trial
        call_id = await caller.make("bob")
        await asyncio.wait_for(trial.done.wait(), 10)
        Wire.reset()
        b.detector.onsets.clear()
        assert kit.latest is not None
        kit.latest.sent.clear()
        await asyncio.sleep(secs)
        report = latency_report(list(kit.latest.sent), list(b.detector.onsets))
        await caller.end(call_id)
        await _settle(caller, callee)
        return report
    finally:
        await caller.stop()
        await callee.stop()


async def _bare_latency(secs: float) -> dict[str, Any]:
    src = BurstSource()
    a = BarePeer(src, None)
    b = BarePeer(SilenceSource(), None)
    det = OnsetDetector()
    b.on_pcm = det
    await bare_connect(a, b)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and b.first("audio") is None:
        await asyncio.sleep(0.01)
    Wire.reset()
    src.sent.clear()
    det.onsets.clear()
    await asyncio.sleep(secs)
    report = latency_report(list(src.sent), list(det.onsets))
    await a.close()
    await b.close()
    return report


async def phase_latency(server: RunningServer, secs: float) -> dict[str, Any]:
    load = LoadWindow()
    engine = await _engine_latency(server, secs)
    log(f"latency engine: {engine['one_way_ms']}")
    bare = await _bare_latency(secs)
    log(f"latency bare: {bare['one_way_ms']}")
    no_dtmf = await _engine_latency(server, secs, inband_dtmf=False)
    log(f"latency engine without in-band DTMF detection: {no_dtmf['one_way_ms']}")
    return {
        "what": "one-way ms, burst frame leaving the source's recv() -> onset seen in the far "
        "end's on_pcm (+ its offset in the block). Breakdown at RTCDtlsTransport._send_rtp "
        "(after Opus) and RTCRtpReceiver._handle_rtp_packet. Engine: engines on the main loop "
        "with the server",
        "seconds_each": secs,
        "engine": engine,
        "bare_aiortc": bare,
        "engine_inband_dtmf_off": no_dtmf,
        "ratio_engine_over_bare_median": ratio(
            engine["one_way_ms"].get("median", float("nan")),
            bare["one_way_ms"].get("median", float("nan")),
        ),
        "machine": load.done(),
    }


# ---------------------------------------------------------------------------- 3. cpu


async def _spawn_side(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks._calls_side",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **env},
    )


async def _read(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError("side process ended early")
    data: dict[str, Any] = json.loads(line)
    return data


def _write(proc: asyncio.subprocess.Process, obj: Any) -> None:
    assert proc.stdin is not None
    proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)).encode() + b"\n")


async def _cpu_run(
    server: RunningServer,
    mode: str,
    video: bool,
    secs: float,
    warmup: float,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    common = ["--mode", mode, "--secs", str(secs), "--warmup", str(warmup)]
    common += ["--server", server.url] + (["--video"] if video else [])
    callee = await _spawn_side([*common, "--role", "callee"], env or {})
    caller = await _spawn_side([*common, "--role", "caller"], env or {})
    procs = [caller, callee]
    load = LoadWindow([p.pid for p in procs])
    try:
        await _read(callee, 30)  # ready
        if mode == "engine":
            await _read(caller, 30)  # ready
            _write(caller, "go")
        else:
            offer = await _read(caller, 30)
            _write(callee, offer)
            answer = await _read(callee, 30)
            _write(caller, answer)
        t_wait = secs + warmup + 30
        res_caller = (await _read(caller, t_wait))["result"]
        res_callee = (await _read(callee, t_wait))["result"]
        machine = load.done()
        for p in procs:
            await asyncio.wait_for(p.wait(), 10)
        return {
            "caller_cpu_percent": res_caller["cpu_percent"],
            "callee_cpu_percent": res_callee["cpu_percent"],
            "caller_video_fps_received": res_caller["video_fps_received"],
            "callee_video_fps_received": res_callee["video_fps_received"],
            "window_s": res_caller["window_s"],
            "machine": machine,
        }
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()


async def phase_cpu(server: RunningServer, secs: float, warmup: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "what": "percent of one core per side process (getrusage RUSAGE_SELF incl. codec "
        "threads) over the window after warm-up; each side in its own process "
        "(benchmarks._calls_side). Both directions carry audio (tone); the video call sends "
        "640x480 PatternSource VP8 at 15 fps both ways (the engine's video rate; bare uses the "
        "same source). Engine sides log in to the in-process server; bare sides exchange SDP "
        "through this process's pipes. engine_openblas_num_threads_1 is a diagnostic: the same "
        "engine with OPENBLAS_NUM_THREADS=1 in its environment, kept as a guard: numpy's "
        "OpenBLAS worker thread busy-waits after every BLAS product, so any BLAS call per "
        "received block (the DTMF detector once did one) shows up here as a gap)",
        "seconds": secs,
    }
    for kind in ("audio", "video_vp8_640x480_15fps"):
        video = kind != "audio"
        row: dict[str, Any] = {}
        for name, mode, env in (
            ("engine", "engine", None),
            ("bare_aiortc", "bare", None),
            ("engine_openblas_num_threads_1", "engine", {"OPENBLAS_NUM_THREADS": "1"}),
        ):
            row[name] = await _cpu_run(server, mode, video, secs, warmup, env)
            log(f"cpu {kind} {name}: {row[name]}")
        b = row["bare_aiortc"]
        for name in ("engine", "engine_openblas_num_threads_1"):
            e = row[name]
            row[f"ratio_{name}_over_bare"] = {
                "caller": ratio(e["caller_cpu_percent"], b["caller_cpu_percent"]),
                "callee": ratio(e["callee_cpu_percent"], b["callee_cpu_percent"]),
            }
        out[kind] = row
    return out


# ---------------------------------------------------------------------------- 4. busy loop


class UiBurner:
    """UI-like work on an event loop: every 16 ms tick, burn ~10 ms of this thread's CPU."""

    def __init__(self, burn_ms: float = 10.0, period_ms: float = 16.0) -> None:
        self.burn = burn_ms / 1000
        self.period = period_ms / 1000
        self.running = True
        self.ticks = 0
        self.late_ms: list[float] = []
        self.cpu_s = 0.0

    async def run(self) -> None:
        nxt = time.monotonic()
        while self.running:
            now = time.monotonic()
            self.late_ms.append(max(0.0, (now - nxt) * 1000))
            c0 = time.thread_time()
            x = 0
            while time.thread_time() - c0 < self.burn:
                for i in range(200):
                    x += i * i
            self.cpu_s += time.thread_time() - c0
            self.ticks += 1
            nxt += self.period
            if nxt < time.monotonic():
                nxt = time.monotonic()
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    def report(self, wall: float) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "ticks_expected": int(wall / self.period),
            "burn_cpu_percent": round(self.cpu_s / wall * 100, 1),
            "tick_lateness_ms": summary(self.late_ms),
        }


async def _thread_latency(server: RunningServer, secs: float, busy: str) -> dict[str, Any]:
    """busy: "none", "other_thread" (own loop in another thread) or "engine_loop"."""
    kit = BurstKit()
    caller = await asyncio.to_thread(
        lambda: EngineThread(audio_in="burst", audio_out="null", media=kit.kit)
    )
    callee = await asyncio.to_thread(lambda: EngineThread(audio_in="silence", audio_out="null"))
    a = Side(caller.engine, "caller", caller.loop)
    b = Side(callee.engine, "callee", callee.loop)
    a.attach()
    b.attach()
    burner = UiBurner()
    ui_thread: threading.Thread | None = None
    try:
        await asyncio.to_thread(caller.start, server.url, "alice", lambda: PASSWORD, backoff=FAST)
        await asyncio.to_thread(callee.start, server.url, "bob", lambda: PASSWORD, backoff=FAST)
        trial = new_trial()
        a.trial = b.trial = trial
        call_id = await asyncio.to_thread(caller.make, "bob")
        await asyncio.wait_for(trial.done.wait(), 10)
        await asyncio.sleep(0.5)
        if busy == "other_thread":
            ui_thread = threading.Thread(target=lambda: asyncio.run(burner.run()), daemon=True)
            ui_thread.start()
        elif busy == "engine_loop":
            asyncio.run_coroutine_threadsafe(burner.run(), caller.loop)
        await asyncio.sleep(0.3)
        Wire.reset()
        b.detector.onsets.clear()
        assert kit.latest is not None
        kit.latest.sent.clear()
        t0 = time.monotonic()
        await asyncio.sleep(secs)
        wall = time.monotonic() - t0
        report = latency_report(list(kit.latest.sent), list(b.detector.onsets))
        burner.running = False
        if busy != "none":
            report["ui_loop"] = burner.report(wall)
        await asyncio.to_thread(caller.end, call_id)
        return report
    finally:
        burner.running = False
        if ui_thread is not None:
            ui_thread.join(2)
        await asyncio.to_thread(caller.close)
        await asyncio.to_thread(callee.close)


async def phase_busy(server: RunningServer, secs: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "what": "latency of phase 2 with both engines on EngineThreads (server on the main "
        "loop). ui_busy_other_thread: a second asyncio loop in its own thread burns ~10 ms of "
        "CPU every 16 ms (pure Python, holds the GIL); engine_on_busy_loop: the same burn as a "
        "task on the sending engine's own loop. jitter = p90 - p10 of the one-way latency",
        "seconds_each": secs,
    }
    load = LoadWindow()
    for name, busy in (
        ("idle", "none"),
        ("ui_busy_other_thread", "other_thread"),
        ("engine_on_busy_loop", "engine_loop"),
    ):
        out[name] = await _thread_latency(server, secs, busy)
        log(f"busy {name}: {out[name]['one_way_ms']} jitter {out[name]['jitter_ms_p90_minus_p10']}")
    out["machine"] = load.done()
    return out


# ---------------------------------------------------------------------------- 5. browser


async def _phase_in_netns(
    module: str, name: str, calls: int, timeout: float, setup: str
) -> dict[str, Any]:
    """Run `python -m module --calls N` (as root: in a private network namespace prepared by
    the shell command `setup`) and take the JSON it prints last."""
    cmd = [sys.executable, "-m", module, "--calls", str(calls)]
    env = dict(os.environ)
    if os.geteuid() == 0:
        cmd = ["unshare", "-n", "sh", "-c", f'{setup} && exec "$@"', "sh", *cmd]
        env["SOFTPHONE_CALLS_NETNS"] = "1"
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": f"{name} phase timed out after {timeout} s"}
    for line in err.decode(errors="replace").splitlines():
        if line.startswith("[calls"):
            print(line, file=sys.stderr, flush=True)
    if proc.returncode != 0 or not out.strip():
        return {"error": f"exit {proc.returncode}", "stderr_tail": err.decode()[-2000:]}
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def phase_browser(calls: int, timeout: float) -> dict[str, Any]:
    setup = "ip link set lo up"
    return await _phase_in_netns("benchmarks._calls_browser", "browser", calls, timeout, setup)


# ---------------------------------------------------------------------------- main


async def phase_interop(calls: int, timeout: float) -> dict[str, Any]:
    # Firefox gathers no candidates without a default route (reference/interop.md).
    setup = "ip link set lo up && ip route add default dev lo src 127.0.0.1"
    return await _phase_in_netns("benchmarks._calls_interop", "interop", calls, timeout, setup)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    n_setup = 8 if quick else 20
    lat_secs = 5.0 if quick else 12.0
    cpu_secs, warmup = (3.0, 1.0) if quick else (8.0, 1.5)
    busy_secs = 4.0 if quick else 10.0
    t_start = time.monotonic()
    import aiortc

    report: dict[str, Any] = {
        "benchmark": "calls",
        "mode": "quick" if quick else "full",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": _git_state(),
        "python": platform.python_version(),
        "aiortc": aiortc.__version__,
        "cores": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "busiest_other_processes_at_start": top_other_processes(),
        "reference_probe": REFERENCE,
    }
    if args.only_interop:
        log("phase 6 only: interop and media robustness per peer")
        report["interop"] = await phase_interop(2 if quick else 6, 600 if quick else 1500)
        report["total_s"] = round(time.monotonic() - t_start, 1)
        return report
    force_loopback()
    Wire.install()
    async with inprocess_server() as server:
        log(f"server on {server.url}; phase 1: setup x{n_setup + 1} (engine and bare alternate)")
        report["setup"] = await phase_setup(server, n_setup)
        log("phase 2: one-way audio latency")
        report["latency"] = await phase_latency(server, lat_secs)
        log("phase 3: CPU per side (subprocesses)")
        report["cpu"] = await phase_cpu(server, cpu_secs, warmup)
        log("phase 4: latency with a busy UI loop")
        report["busy_loop"] = await phase_busy(server, busy_secs)
    if args.skip_browser:
        report["browser"] = {"skipped": "--skip-browser"}
    else:
        log("phase 5: browser interop setup (Chromium in a private network namespace)")
        report["browser"] = await phase_browser(5 if quick else 10, 120)
    if args.skip_interop:
        report["interop"] = {"skipped": "--skip-interop"}
    else:
        log("phase 6: interop and media robustness per peer (Firefox, Chromium, webrtcbin, coturn)")
        report["interop"] = await phase_interop(2 if quick else 6, 600 if quick else 1500)
    report["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["busiest_other_processes_at_end"] = top_other_processes()
    report["total_s"] = round(time.monotonic() - t_start, 1)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer calls, shorter windows")
    ap.add_argument("--skip-browser", action="store_true", help="omit phase 5 (Chromium)")
    ap.add_argument(
        "--skip-interop", action="store_true", help="omit phase 6 (Firefox, webrtcbin, coturn)"
    )
    ap.add_argument(
        "--only-interop", action="store_true", help="run phase 6 only (interop figures)"
    )
    args = ap.parse_args()
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=1), flush=True)


if __name__ == "__main__":
    main()
