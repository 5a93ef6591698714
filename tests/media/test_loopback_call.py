"""Media through the real aiortc stack: two peer connections over 127.0.0.1, Opus and VP8."""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from softphone.media.analysis import best_correlation, dominant_frequency, rms
from softphone.media.audio import MemorySink, ToneSource, WavSource
from softphone.media.dtmf import DtmfDetector
from softphone.media.video import PatternSource, VideoSink, read_frame_number
from tests.media.conftest import Connect

RATE = 48000


async def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for media")
        await asyncio.sleep(0.02)


async def test_tone_arrives_at_far_end(connect: Connect) -> None:
    sink = MemorySink()
    sink.start(await connect(ToneSource(1000.0, 0.3)))
    await wait_for(lambda: sink.samples >= RATE, 10)
    await sink.stop()
    tail = sink.pcm[-RATE // 2 :]  # the start may still hold the decoder's ramp-up
    assert abs(dominant_frequency(tail) - 1000) < 3
    # 0.3 peak = 0.212 rms; aiortc's encoder upmixes mono to stereo with FFmpeg's -3 dB pan
    # law, so 0.15 arrives in each channel. Halving here would mean a broken downmix.
    assert 0.13 < rms(tail) < 0.17


async def test_wav_content_arrives(connect: Connect, tmp_path: Path) -> None:
    # 1 s of content that no lag but the right one matches: a chirp plus a melody
    t = np.arange(RATE) / RATE
    x = 0.3 * np.sin(2 * np.pi * (150 * t + 600 * t**2)) + 0.15 * np.sin(
        2 * np.pi * np.where(t < 0.5, 330, 523) * t
    )
    original = np.round(x * 32767).astype(np.int16)
    path = tmp_path / "content.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(original.astype("<i2").tobytes())
    sink = MemorySink()
    sink.start(await connect(WavSource(path, loop=True)))
    await wait_for(lambda: sink.samples >= int(1.8 * RATE), 10)
    await sink.stop()
    received = sink.pcm[-RATE // 2 :]
    coef, lag = best_correlation(np.tile(original, 3), received)
    print(f"WAV through Opus: correlation {coef:.3f} at lag {lag}")
    assert coef > 0.8, coef


async def test_inband_dtmf_through_opus(connect: Connect) -> None:
    source = ToneSource(440.0, 0.2)  # speech stand-in before and after the digits
    detector = DtmfDetector()
    found: list[tuple[str, float]] = []

    def on_pcm(pcm: npt.NDArray[np.int16]) -> None:
        found.extend((d, time.monotonic()) for d in detector.feed(pcm))

    sink = MemorySink(on_pcm=on_pcm)
    sink.start(await connect(source))
    await wait_for(lambda: sink.samples >= RATE // 5, 10)
    sent_at = time.monotonic()
    source.play_dtmf("123*0#")
    await wait_for(lambda: not source.dtmf_pending and len(found) >= 6, 10)
    await asyncio.sleep(0.3)
    await sink.stop()
    assert "".join(d for d, _ in found) == "123*0#"
    # first digit: 100 ms tone + ~90 ms jitter buffer; report it for the record
    latency = found[0][1] - sent_at
    print(f"first DTMF digit detected {latency * 1000:.0f} ms after play_dtmf()")
    assert latency < 0.5


async def test_pattern_frames_arrive_in_order(connect: Connect) -> None:
    numbers: list[int | None] = []
    sizes: list[tuple[int, int]] = []

    def on_frame(frame: av.VideoFrame) -> None:
        numbers.append(read_frame_number(frame))
        sizes.append((frame.width, frame.height))

    source = PatternSource(640, 480, fps=15)
    sink = VideoSink(on_frame)
    sink.start(await connect(source))
    await wait_for(lambda: sink.frames >= 20, 15)
    await sink.stop()
    read = [n for n in numbers if n is not None]
    print(f"video: {len(read)}/{len(numbers)} barcodes read, last {read[-1] if read else None}")
    assert len(read) >= 0.9 * len(numbers)
    assert read == sorted(read) and len(set(read)) == len(read)
    assert read[-1] >= 19
    assert read[-1] <= source.frames_sent
    assert sizes[-1] == (640, 480)


def speech_like(seconds: float) -> npt.NDArray[np.int16]:
    """A voiced buzz (110-190 Hz, many harmonics) with syllable envelope and breath noise."""
    rng = np.random.default_rng(9)
    n = int(RATE * seconds)
    t = np.arange(n) / RATE
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.9 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    buzz = sum(np.sin(k * phase) / k for k in range(1, 25))
    syllables = np.sin(2 * np.pi * 3.5 * t) ** 2
    x = np.asarray(buzz * syllables + 0.2 * rng.standard_normal(n), dtype=np.float64)
    pcm: npt.NDArray[np.int16] = np.round(x / np.max(np.abs(x)) * 0.6 * 32767).astype(np.int16)
    return pcm


async def test_speech_through_opus_gives_no_false_digits(connect: Connect, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(speech_like(1.2).astype("<i2").tobytes())
    source = WavSource(path)
    detector = DtmfDetector()
    found: list[str] = []
    sink = MemorySink(on_pcm=lambda pcm: found.extend(detector.feed(pcm)))
    sink.start(await connect(source))
    await wait_for(lambda: sink.samples >= int(1.2 * RATE), 10)
    assert found == []  # over a second of speech-like audio, decoded from Opus
    source.play_dtmf("0*")
    await wait_for(lambda: not source.dtmf_pending, 5)
    heard = sink.samples
    await wait_for(lambda: sink.samples >= heard + int(0.6 * RATE), 5)  # speech again
    await sink.stop()
    assert "".join(found) == "0*"
