"""One side of a call in its own process, for per-side CPU (`benchmarks.calls` phase 3).

    python -m benchmarks._calls_side --mode engine|bare --role caller|callee [--video]
        [--server URL] --secs S --warmup W

Talks JSON lines: stdout {"ready"}, {"offer"|"answer": sdp} (bare), {"result": {...}};
stdin "go" (engine caller) or the peer's SDP (bare). CPU is getrusage(RUSAGE_SELF) over the
window (all threads: aiortc's encoder and decoder threads included) divided by wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from typing import Any

from benchmarks._calls_common import (
    PASSWORD,
    BarePeer,
    Side,
    force_loopback,
    new_trial,
    pattern,
)
from softphone.media.audio import ToneSource


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


async def read_line() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def window(secs: float) -> dict[str, Any]:
    c0, w0 = cpu(), time.monotonic()
    await asyncio.sleep(secs)
    c1, w1 = cpu(), time.monotonic()
    return {"cpu_percent": round((c1 - c0) / (w1 - w0) * 100, 1), "window_s": round(w1 - w0, 1)}


async def engine_side(args: argparse.Namespace) -> dict[str, Any]:
    from softphone.client import Backoff
    from softphone.engine import Engine

    engine = Engine(audio_in="tone", audio_out="null")
    frames = [0]
    engine.add_video_listener(lambda cid, f: frames.__setitem__(0, frames[0] + 1))
    side = Side(engine, args.role, asyncio.get_running_loop())
    side.answer_video = args.video
    side.attach()
    user = "alice" if args.role == "caller" else "bob"
    await engine.start(
        args.server, user, lambda: PASSWORD, backoff=Backoff(base=0.05, cap=0.2, jitter=0.0)
    )
    trial = side.trial = new_trial()
    emit({"ready": True})
    call_id = None
    if args.role == "caller":
        await read_line()
        call_id = await engine.make("bob", video=args.video)
    need = f"{args.role}_first_audio"
    deadline = time.monotonic() + 15
    while need not in trial.marks and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(args.warmup)
    f0 = frames[0]
    result = await window(args.secs)
    result["video_fps_received"] = round((frames[0] - f0) / result["window_s"], 1)
    if call_id is not None:
        await engine.end(call_id)
    else:
        await asyncio.sleep(0.5)
    await engine.stop()
    return result


async def bare_side(args: argparse.Namespace) -> dict[str, Any]:
    peer = BarePeer(ToneSource(), pattern() if args.video else None)
    if args.role == "caller":
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        emit({"offer": peer.pc.localDescription.sdp})
        from aiortc import RTCSessionDescription

        answer = json.loads(await read_line())["answer"]
        await peer.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    else:
        from aiortc import RTCSessionDescription

        emit({"ready": True})
        offer = json.loads(await read_line())["offer"]
        await peer.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        emit({"answer": peer.pc.localDescription.sdp})
    deadline = time.monotonic() + 15
    while peer.first("audio") is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(args.warmup)
    video = peer.drains.get("video")
    f0 = video.frames if video else 0
    result = await window(args.secs)
    f1 = video.frames if video else 0
    result["video_fps_received"] = round((f1 - f0) / result["window_s"], 1)
    await peer.close()
    return result


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["engine", "bare"], required=True)
    ap.add_argument("--role", choices=["caller", "callee"], required=True)
    ap.add_argument("--video", action="store_true")
    ap.add_argument("--server", default="")
    ap.add_argument("--secs", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=1.5)
    args = ap.parse_args()
    force_loopback()
    if args.mode == "engine":
        result = await engine_side(args)
    else:
        result = await bare_side(args)
    emit({"result": result})


if __name__ == "__main__":
    asyncio.run(main())
