"""Audio sources and sinks without a network: framing, pacing, files, specs, downmix."""

from __future__ import annotations

import asyncio
import fractions
import time
import wave
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from softphone.media import audio, devices
from softphone.media.analysis import best_correlation, dominant_frequency
from softphone.media.audio import (
    BLOCK,
    SAMPLE_RATE,
    AudioSource,
    MediaUnavailable,
    MemorySink,
    NullSink,
    SilenceSource,
    ToneSource,
    WavSink,
    WavSource,
    open_sink,
    open_source,
    to_mono,
)
from softphone.media.dtmf import DtmfDetector


async def collect(source: AudioSource, frames: int) -> npt.NDArray[np.int16]:
    blocks = []
    for _ in range(frames):
        frame = await source.recv()
        assert isinstance(frame, av.AudioFrame)
        assert frame.sample_rate == SAMPLE_RATE
        assert frame.samples == BLOCK
        assert frame.format.name == "s16"
        assert len(frame.layout.channels) == 1
        assert frame.time_base == fractions.Fraction(1, SAMPLE_RATE)
        blocks.append(frame.to_ndarray().reshape(-1))
    return np.concatenate(blocks).astype(np.int16)


def write_wav(path: Path, rate: int, channels: npt.NDArray[np.int16]) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(channels.T.astype("<i2").tobytes())


def chirp(rate: int, seconds: float) -> npt.NDArray[np.float64]:
    t = np.arange(int(rate * seconds)) / rate
    return np.asarray(0.4 * np.sin(2 * np.pi * (200 * t + 400 * t**2)), dtype=np.float64)


async def test_tone_source_frames_pts_and_frequency() -> None:
    source = ToneSource(1000.0, 0.5)
    pts = []
    pcm = []
    for _ in range(10):
        frame = await source.recv()
        pts.append(frame.pts)
        pcm.append(frame.to_ndarray().reshape(-1))
    assert pts == [i * BLOCK for i in range(10)]
    x = np.concatenate(pcm)
    assert dominant_frequency(x) == pytest.approx(1000, abs=2)
    assert np.max(np.abs(x)) == pytest.approx(0.5 * 32767, rel=0.01)
    assert source.stats.frames_sent == 10


async def test_generated_source_is_paced_in_real_time() -> None:
    source = SilenceSource()
    start = time.monotonic()
    await collect(source, 26)  # first frame immediately, then 25 x 20 ms
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed <= 0.7


async def test_pacing_restarts_after_a_long_pause_instead_of_bursting() -> None:
    source = SilenceSource()
    await collect(source, 2)
    await asyncio.sleep(0.5)  # nobody read for 25 frames' time (e.g. on hold)
    start = time.monotonic()
    frames = [await source.recv() for _ in range(6)]
    elapsed = time.monotonic() - start
    assert elapsed >= 0.08  # 6 frames, the first at once: paced again, not a burst of 25
    assert [f.pts for f in frames] == [(2 + i) * BLOCK for i in range(6)]  # pts contiguous


async def test_mute_sends_silence_but_keeps_pts() -> None:
    source = ToneSource(440)
    await source.recv()
    source.muted = True
    frame = await source.recv()
    assert frame.pts == BLOCK
    assert not np.any(frame.to_ndarray())
    source.muted = False
    assert np.any((await source.recv()).to_ndarray())


async def test_play_dtmf_replaces_audio_and_is_detectable() -> None:
    source = ToneSource(440)
    source.play_dtmf("4,#")
    assert source.dtmf_pending
    detector = DtmfDetector()
    found: list[str] = []
    frames = 0
    while source.dtmf_pending:
        frame = await source.recv()
        found += detector.feed(frame.to_ndarray().reshape(-1))
        frames += 1
    # 2 x (100 + 70) ms + 500 ms pause = 840 ms = 42 frames
    assert frames == 42
    assert "".join(found) == "4#"
    with pytest.raises(ValueError):
        source.play_dtmf("12x")


async def test_stopped_source_raises_media_stream_error() -> None:
    source = SilenceSource()
    source.stop()
    with pytest.raises(MediaStreamError):
        await source.recv()


async def test_wav_source_resamples_stereo_44k1(tmp_path: Path) -> None:
    left = np.round(chirp(44100, 1.0) * 32767).astype(np.int16)
    right = left.copy()
    path = tmp_path / "in.wav"
    write_wav(path, 44100, np.stack([left, right]))
    source = WavSource(path, loop=False)
    assert source.pcm.size == pytest.approx(48000, abs=64)
    got = await collect(source, 50)
    reference = np.round(chirp(48000, 1.0) * 32767).astype(np.int16)
    coef, lag = best_correlation(reference, got)
    assert coef > 0.95
    assert abs(lag) < 100
    assert source.finished


async def test_wav_source_loops(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    write_wav(path, 48000, np.arange(1000, dtype=np.int16).reshape(1, -1))
    source = WavSource(path)
    got = await collect(source, 2)
    assert list(got[998:1003]) == [998, 999, 0, 1, 2]


def test_wav_source_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaUnavailable, match="Cannot read audio file"):
        WavSource(tmp_path / "nope.wav")


class FakeTrack(MediaStreamTrack):
    """Replays given frames, then ends like a closed call."""

    kind = "audio"

    def __init__(self, frames: list[av.AudioFrame]) -> None:
        super().__init__()
        self._frames = frames

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(0)
        if not self._frames:
            raise MediaStreamError
        return self._frames.pop(0)


def stereo_frame(left: npt.NDArray[np.int16], right: npt.NDArray[np.int16]) -> av.AudioFrame:
    """What aiortc delivers: packed s16 stereo at 48 kHz, shape (1, 2n)."""
    packed = np.stack([left, right], axis=1).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
    frame.sample_rate = SAMPLE_RATE
    return frame


def test_downmix_averages_left_and_right() -> None:
    t = np.arange(BLOCK) / SAMPLE_RATE
    left = np.round(8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)
    right = np.round(8000 * np.sin(2 * np.pi * 1500 * t)).astype(np.int16)
    mono = to_mono(stereo_frame(left, right))
    assert mono.dtype == np.int16
    assert mono.size == BLOCK
    expected = (left.astype(np.int32) + right) // 2
    assert np.max(np.abs(mono.astype(np.int32) - expected)) <= 1
    spectrum = np.abs(np.fft.rfft(mono.astype(np.float64)))
    bin500, bin1500 = 500 * BLOCK // SAMPLE_RATE, 1500 * BLOCK // SAMPLE_RATE
    assert spectrum[bin500] == pytest.approx(spectrum[bin1500], rel=0.02)
    # other formats go through the resampler and still give 48 kHz mono
    f32 = av.AudioFrame.from_ndarray(np.zeros((2, 441), np.float32), format="fltp", layout="stereo")
    f32.sample_rate = 44100
    assert to_mono(f32).size in range(400, 481)


async def test_memory_and_wav_sinks_keep_what_they_got(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    blocks = [(rng.standard_normal(BLOCK) * 3000).astype(np.int16) for _ in range(5)]
    seen: list[int] = []
    memory = MemorySink(on_pcm=lambda pcm: seen.append(pcm.size))
    memory.start(FakeTrack([stereo_frame(b, b) for b in blocks]))
    path = tmp_path / "out.wav"
    wav_sink = WavSink(path)
    wav_sink.start(FakeTrack([stereo_frame(b, b) for b in blocks]))
    null = NullSink()
    null.start(FakeTrack([stereo_frame(b, b) for b in blocks]))
    for _ in range(100):
        if memory.frames == wav_sink.frames == null.frames == 5:
            break
        await asyncio.sleep(0.01)
    await memory.stop()
    await wav_sink.stop()
    await null.stop()
    await wav_sink.stop()  # twice is fine
    assert seen == [BLOCK] * 5
    assert np.array_equal(memory.pcm, np.concatenate(blocks))
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48000, 1, 2)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.array_equal(data, np.concatenate(blocks))


def test_open_source_specs(tmp_path: Path) -> None:
    tone = open_source("tone")
    assert isinstance(tone, ToneSource) and tone.frequency == 440
    tone2 = open_source("tone:1000")
    assert isinstance(tone2, ToneSource) and tone2.frequency == 1000
    assert isinstance(open_source("silence"), SilenceSource)
    path = tmp_path / "x.wav"
    write_wav(path, 8000, np.ones((1, 800), np.int16))
    assert isinstance(open_source(str(path)), WavSource)
    assert isinstance(open_source(f"wav:{path}"), WavSource)
    with pytest.raises(ValueError):
        open_source("tone:loud")
    assert isinstance(open_sink("null"), NullSink)
    sink = open_sink(str(tmp_path / "o.wav"))
    assert isinstance(sink, WavSink)
    sink.close()
    sink2 = open_sink(f"wav:{tmp_path / 'recording'}")
    assert isinstance(sink2, WavSink) and sink2.path.endswith("recording")
    sink2.close()


async def test_unknown_device_is_media_unavailable() -> None:
    with pytest.raises(MediaUnavailable):
        open_source("no such microphone 1234")
    with pytest.raises(MediaUnavailable):
        open_sink("no such speaker 1234")
    with pytest.raises(MediaUnavailable):
        open_source("987")
    with pytest.raises(MediaUnavailable):
        open_source("device:no such microphone 1234")


async def test_missing_portaudio_is_media_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MediaUnavailable, match="PortAudio"):
        open_source("default")
    with pytest.raises(MediaUnavailable, match="PortAudio"):
        open_sink("default")
    assert devices.list_audio_devices() == []
    assert "PortAudio" in devices.last_device_problem()
    ok, reason = devices.portaudio_available()
    assert not ok and "PortAudio" in reason


def test_device_listing_never_raises() -> None:
    ok, _ = devices.portaudio_available()
    listed = devices.list_audio_devices()
    assert isinstance(listed, list)
    if not listed:
        assert devices.last_device_problem()
    assert all(p.startswith("/dev/video") for p in devices.list_video_devices())
    assert ok or listed == []
    assert audio.SAMPLE_RATE == 48000 and audio.BLOCK == 960


async def test_default_device_without_devices_is_media_unavailable() -> None:
    if devices.list_audio_devices():
        pytest.skip("this machine has audio devices; the no-device path is not reachable")
    with pytest.raises(MediaUnavailable, match="No usable audio input"):
        open_source("default")
    with pytest.raises(MediaUnavailable, match="No usable audio output"):
        open_sink("default")


async def test_failing_callback_does_not_stop_the_sink() -> None:
    def broken(pcm: npt.NDArray[np.int16]) -> None:
        raise RuntimeError("bug in the consumer")

    block = np.ones(BLOCK, np.int16)
    sink = MemorySink(on_pcm=broken)
    sink.start(FakeTrack([stereo_frame(block, block) for _ in range(3)]))
    for _ in range(100):
        if sink.frames == 3:
            break
        await asyncio.sleep(0.01)
    await sink.stop()
    assert sink.frames == 3 and sink.callback_errors == 3
    assert sink.pcm.size == 3 * BLOCK
