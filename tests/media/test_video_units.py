"""Test pattern, barcode and camera errors, without a network."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from softphone.media.errors import MediaUnavailable
from softphone.media.video import VIDEO_CLOCK, CameraSource, PatternSource, read_frame_number


async def test_pattern_numbers_pts_and_pacing() -> None:
    source = PatternSource(320, 240, fps=30)
    start = time.monotonic()
    frames = [await source.recv() for _ in range(16)]
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed <= 0.7  # 15 intervals of 1/30 s
    assert [read_frame_number(f) for f in frames] == list(range(16))
    assert [f.pts for f in frames] == [i * VIDEO_CLOCK // 30 for i in range(16)]
    assert (frames[0].width, frames[0].height) == (320, 240)
    # the picture moves (an encoder must spend bits on it)
    a, b = (np.asarray(f.to_ndarray(format="gray"))[200:] for f in frames[:2])
    assert not np.array_equal(a, b)


async def test_barcode_survives_format_conversion_and_noise() -> None:
    source = PatternSource()
    source.frames_sent = 0xBEEF  # jump ahead: every bit pattern must read back
    frame = await source.recv()
    assert read_frame_number(frame) == 0xBEEF
    yuv = frame.reformat(format="yuv420p")
    assert read_frame_number(yuv) == 0xBEEF
    rng = np.random.default_rng(1)
    rgb = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.int16)
    noisy = np.clip(rgb + rng.integers(-50, 50, rgb.shape), 0, 255).astype(np.uint8)
    assert read_frame_number(av.VideoFrame.from_ndarray(noisy, format="bgr24")) == 0xBEEF


async def test_muted_pattern_is_black_and_unnumbered() -> None:
    source = PatternSource(160, 120)
    source.muted = True
    frame = await source.recv()
    assert not np.any(frame.to_ndarray(format="bgr24"))
    assert read_frame_number(frame) is None


def test_random_picture_has_no_frame_number() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert read_frame_number(av.VideoFrame.from_ndarray(image, format="bgr24")) is None


def test_missing_camera_is_media_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MediaUnavailable, match="camera"):
        CameraSource(str(tmp_path / "video9"))
