"""The clocked sink: a call's received audio played by PortAudio's output callback pulling our
jitter buffer (`DeviceSink.play_stream`), into a private PulseAudio null sink, recorded from its
monitor, under seeded loss and jitter injected at the receiver."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from softphone.media._aiortc_audio import use_fec_encoder
from softphone.media.audio import DeviceSink, ToneSource
from softphone.media.audio_device import OUTPUT_BLOCK
from softphone.media.audio_receive import AudioReceiveStream
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.echo import EchoCanceller
from softphone.media.heard import tone_blocks
from softphone.media.netsim import Impairment, impair
from softphone.media.opus import with_inband_fec
from tests.media.conftest import Pulse

Pcm = npt.NDArray[np.int16]


async def receive_into(
    stream: AudioReceiveStream, source: MediaStreamTrack, impairment: Impairment
) -> tuple[RTCPeerConnection, RTCPeerConnection]:
    """A one-way call whose far end's audio receiver feeds `stream`, through `impairment`."""
    config = RTCConfiguration(iceServers=[])
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    arrived = asyncio.get_running_loop().create_future()

    @callee.on("track")
    def _on_track(remote: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in callee.getTransceivers() if t.kind == "audio")
        stream.attach(receiver)
        impair(receiver, impairment)
        if not arrived.done():
            arrived.set_result(remote)

    use_fec_encoder(caller.addTrack(source))
    offer = await caller.createOffer()
    await caller.setLocalDescription(RTCSessionDescription(with_inband_fec(offer.sdp), "offer"))
    await callee.setRemoteDescription(caller.localDescription)
    answer = await callee.createAnswer()
    await callee.setLocalDescription(RTCSessionDescription(with_inband_fec(answer.sdp), "answer"))
    await caller.setRemoteDescription(callee.localDescription)
    await asyncio.wait_for(arrived, 10)
    return caller, callee


def record(pulse: Pulse, source: str, into: Path) -> subprocess.Popen[bytes]:
    with into.open("wb") as out:
        return subprocess.Popen(
            ["parec", f"--device={source}", "--format=s16le", "--rate=48000", "--channels=1",
             "--latency-msec=20"],
            env=pulse.env, stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip


@dataclass
class Playout:
    played: list[Pcm]
    far_end: list[Pcm]
    frames: int
    underflows: int
    refused: int
    latency: float
    net: Impairment
    stats: Any
    recording: Pcm


async def play_once(pulse: Pulse, recording: Path) -> Playout:
    """Seven seconds of a 1 kHz tone received under 2 % loss + 40 ms jitter, played by a
    DeviceSink pulling the stream on vspk, recorded from vspk's monitor."""
    stream = AudioReceiveStream()
    played: list[Pcm] = []
    speaker = DeviceSink(on_pcm=played.append)  # vspk, the default sink
    canceller = EchoCanceller()
    far_end: list[Pcm] = []
    feed = canceller.far_end

    def far_end_seen(pcm: Pcm) -> None:
        far_end.append(pcm.copy())
        feed(pcm)

    canceller.far_end = far_end_seen  # type: ignore[method-assign]
    speaker.reference = canceller  # fed with exactly what the callback played
    net = Impairment(loss=0.02, jitter_s=0.04, seed=11)
    parec = record(pulse, "vspk.monitor", recording)
    caller, callee = await receive_into(stream, ToneSource(1000.0, 0.5), net)
    try:
        speaker.play_stream(stream)
        await asyncio.sleep(7.0)  # the ALSA pulse plugin starts output ~1.7 s late
        latency = speaker.latency_ms
    finally:
        await speaker.stop()
        parec.terminate()
        parec.wait(5)
        await caller.close()
        await callee.close()
    pcm = np.frombuffer(recording.read_bytes(), dtype="<i2")
    return Playout(
        played,
        far_end,
        speaker.frames,
        speaker.underflows,
        speaker.refused,
        latency,
        net,
        stream.stats(),
        pcm,
    )


def offset_of(blocks: list[Pcm], within: list[Pcm]) -> int | None:
    """Where `blocks` appear in `within` as a contiguous run, if they do."""
    for start in range(len(within) - len(blocks) + 1):
        if all(np.array_equal(a, b) for a, b in zip(blocks, within[start:], strict=False)):
            return start
    return None


async def test_device_pulls_the_jitter_buffer_under_jitter(
    pulse: Pulse, loopback_only: None, tmp_path: Path
) -> None:
    """Network jitter and loss must never reach the speaker as dropouts. A machine too busy
    to run the device's callback in time underflows the device itself (PortAudio says so):
    such a run shows nothing about jitter and is repeated, three times at most."""
    for attempt in range(3):
        run = await play_once(pulse, tmp_path / f"vspk{attempt}.raw")
        if run.underflows <= 2:
            break
        print(f"attempt {attempt}: the device underflowed {run.underflows} times; again")
    played, far_end, net, stats, latency = (
        run.played, run.far_end, run.net, run.stats, run.latency
    )  # fmt: skip
    pcm = run.recording
    onset = int(np.argmax(np.abs(pcm) > 3000))
    heard = pcm[onset + SAMPLE_RATE // 2 : -SAMPLE_RATE // 4]  # from 0.5 s after the onset
    flags = tone_blocks(heard, 1000.0)
    blocks = [heard[i : i + BLOCK] for i in range(0, heard.size - BLOCK + 1, BLOCK)]
    silent = sum(1 for b in blocks if not b.any())
    report = (
        f"tone in {sum(flags)}/{len(flags)} recorded blocks, {silent} silent; device "
        f"underflows {run.underflows} (refused {run.refused}), output latency "
        f"{latency:.1f} ms; lost "
        f"{net.dropped}/{net.dropped + net.delivered}; jitter buffer {stats}"
    )
    print(report)
    # The callback pulled exactly the blocks it played, and on_pcm saw every one of them.
    assert played and all(b.size == OUTPUT_BLOCK for b in played), report
    assert run.underflows <= 2, report  # three runs in a row: the device path cannot keep up
    assert run.frames == len(played)
    assert all(b.size == OUTPUT_BLOCK for b in far_end)
    # The reference also saw the silence the device played before play_stream (the device
    # starts at once; on a busy machine its first callbacks come before the call is up):
    # what the stream fed follows those silent blocks, block for block.
    start = offset_of(played, far_end)
    assert start is not None, report
    assert not any(b.any() for b in far_end[:start]), report
    assert net.dropped > 0 and stats.concealed + stats.fec > 0, report
    # What the null sink actually played: the tone in (nearly) every 20 ms block, no dropouts.
    assert len(flags) >= 150, report
    assert sum(flags) / len(flags) >= 0.95, report
    assert silent == 0, report
    assert latency > 0, report  # the device latency is known (stats report it)
