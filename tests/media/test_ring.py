"""The ring tone's sound: the cadence, soft edges, a WAV file as the ring, a soft stop."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from softphone.media.analysis import rms
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.errors import MediaUnavailable
from softphone.media.ring import (
    FREQUENCIES,
    LEAD_IN,
    OFF_SECONDS,
    ON_SECONDS,
    RingStream,
    cadence,
    open_ring_source,
)

# The largest step between neighbouring samples of a 440+480 Hz pair at the ring's level is
# 2π·(440+480)/48000·0.1·32767 ≈ 395; a tone switched on or off without a fade jumps by
# thousands.
SMOOTH = 450


def steps(pcm: np.ndarray) -> int:
    return int(np.abs(np.diff(pcm.astype(np.int32))).max())


def test_one_period_is_a_burst_of_both_frequencies_then_silence() -> None:
    period = cadence()
    on, off = int(ON_SECONDS * SAMPLE_RATE), int(OFF_SECONDS * SAMPLE_RATE)
    assert period.size == on + off
    assert not period[on:].any()
    burst = period[:on].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(burst))
    hz = np.fft.rfftfreq(burst.size, 1 / SAMPLE_RATE)
    peaks = sorted(hz[np.argsort(spectrum)[-2:]])
    assert peaks == pytest.approx(list(FREQUENCIES), abs=1)
    # Moderate: about -17 dBFS RMS, far from full scale.
    assert 0.09 < rms(period[SAMPLE_RATE // 10 : on - SAMPLE_RATE // 10]) < 0.11
    assert np.abs(period).max() < 0.21 * 32768


def test_the_edges_fade_instead_of_clicking() -> None:
    period = cadence()
    # The first and last 10 ms ramp (a raised cosine): quiet at the very edge.
    on = int(ON_SECONDS * SAMPLE_RATE)
    full = rms(period[BLOCK : 2 * BLOCK])
    assert rms(period[:48]) < full / 20 and rms(period[on - 48 : on]) < full / 20
    # A burst that stops mid-cycle (425 Hz for 1.0013 s) still ends smoothly.
    odd = cadence((425.0,), on=1.0013, off=0.5, level=0.2)
    assert steps(odd) < 2 * np.pi * 425 / SAMPLE_RATE * 0.2 * 32767 * 1.05
    # Across the loop point too: the period repeats as the source plays it.
    assert steps(np.concatenate([period, period[:BLOCK]])) < SMOOTH


def test_the_stream_loops_the_period_whatever_the_pull_size() -> None:
    period = cadence()
    stream = RingStream(period)
    sizes = [480, 960, 7, 4093] * 200  # device callbacks, PulledTrack, odd ones
    played = np.concatenate([stream.pull(n) for n in sizes])
    assert stream.pulled == played.size > 2 * period.size
    assert np.array_equal(played[: period.size], period)
    assert np.array_equal(played[period.size : 2 * period.size], period)


def test_the_first_ring_waits_for_the_device_to_settle() -> None:
    stream = open_ring_source()
    lead = int(LEAD_IN * SAMPLE_RATE)
    assert stream.lead_in == lead
    assert not stream.pull(lead).any()
    assert np.array_equal(stream.pull(BLOCK), cadence()[:BLOCK])


def test_fade_out_ramps_down_to_silence_without_a_click() -> None:
    stream = RingStream(cadence())
    stream.pull(SAMPLE_RATE // 2)  # into the middle of a burst
    stream.fade_out()
    tail = np.concatenate([stream.pull(480) for _ in range(6)])
    assert steps(tail) < SMOOTH
    assert tail[:48].any() and not tail[BLOCK:].any()  # silent after the 10 ms fade


def test_a_wav_file_rings_as_it_is_with_faded_ends(tmp_path: Path) -> None:
    path = tmp_path / "bell.wav"
    square = np.where(np.arange(SAMPLE_RATE) % 96 < 48, 8000, -8000).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(square.tobytes())
    stream = open_ring_source(f"wav:{path}")
    assert stream.period.size == square.size
    assert stream.period[0] == 0 and abs(int(stream.period[-1])) < 100
    middle = slice(SAMPLE_RATE // 4, 3 * SAMPLE_RATE // 4)
    assert np.array_equal(stream.period[middle], square[middle])


def test_a_ring_sound_that_cannot_be_used_says_why(tmp_path: Path) -> None:
    with pytest.raises(MediaUnavailable, match="Cannot read audio file"):
        open_ring_source(f"wav:{tmp_path / 'missing.wav'}")
    with pytest.raises(ValueError, match="tone"):
        open_ring_source("bells")
