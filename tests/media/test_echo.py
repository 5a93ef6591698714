"""The echo canceller on a simulated echo path, and the level helpers.

Far-end speech is "played" in 20 ms blocks, comes back into the microphone 40 ms later,
attenuated by 12 dB with a short room tail, under a little noise; what the canceller leaves
of it is measured as ERLE (echo return loss enhancement).
"""

from __future__ import annotations

import math

import numpy as np

from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.echo import EchoCanceller
from softphone.media.levels import LevelMeter, level
from tests.media.test_loopback_call import speech_like


def echo_path(far: np.ndarray, delay_s: float = 0.04, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = int(delay_s * SAMPLE_RATE)
    h = np.zeros(d + 600)
    h[d] = 0.25
    h[d:] += rng.standard_normal(600) * np.exp(-np.arange(600) / 120) * 0.05
    echo = np.convolve(far.astype(np.float64), h)[: far.size]
    mic = echo + rng.standard_normal(far.size) * 30
    return np.clip(np.round(mic), -32768, 32767).astype(np.int16)


def run(apm: EchoCanceller, far: np.ndarray, mic: np.ndarray) -> np.ndarray:
    out = []
    for i in range(0, far.size - BLOCK + 1, BLOCK):
        apm.far_end(far[i : i + BLOCK])
        out.append(apm.near_end(mic[i : i + BLOCK]))
    return np.concatenate(out)


def power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2)) + 1e-9


def test_echo_is_cancelled_within_two_seconds() -> None:
    far = speech_like(6.0)
    mic = echo_path(far)
    apm = EchoCanceller(auto_gain_control=False)
    apm.set_delay_ms(40)
    out = run(apm, far, mic)
    later = slice(2 * SAMPLE_RATE, 6 * SAMPLE_RATE)
    erle = 10 * math.log10(power(mic[later]) / power(out[later]))
    print(f"ERLE after 2 s: {erle:.1f} dB")
    assert erle >= 25.0
    assert out.size == mic.size


def test_near_end_speech_passes_when_the_far_end_is_silent() -> None:
    near = speech_like(3.0)
    silence = np.zeros(near.size, np.int16)
    apm = EchoCanceller(auto_gain_control=False)
    out = run(apm, silence, near)
    tail = slice(SAMPLE_RATE, 3 * SAMPLE_RATE)
    loss_db = 10 * math.log10(power(near[tail]) / power(out[tail]))
    print(f"near-end speech attenuated by {loss_db:.1f} dB")
    assert loss_db < 6.0


def test_switched_off_it_passes_audio_untouched() -> None:
    far = speech_like(1.0)
    mic = echo_path(far)
    apm = EchoCanceller(enabled=False)
    assert np.array_equal(run(apm, far, mic), mic[: mic.size - mic.size % BLOCK])
    assert apm.frames == 0


def test_odd_block_sizes_keep_their_length() -> None:
    apm = EchoCanceller()
    x = speech_like(0.5)
    sizes = [441, 512, 960, 37, 1024]
    outs = [apm.near_end(x[:n]) for n in sizes]
    assert [o.size for o in outs] == sizes


def test_levels() -> None:
    t = np.arange(SAMPLE_RATE // 10) / SAMPLE_RATE
    sine = np.round(0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    lv = level(sine)
    assert abs(lv.peak - 0.5) < 0.01 and abs(lv.rms - 0.5 / math.sqrt(2)) < 0.01
    assert abs(lv.rms_dbfs - (-9.03)) < 0.1
    assert level(np.zeros(10, np.int16)).rms_dbfs == -100.0
    meter = LevelMeter()
    meter.feed(sine)
    meter.feed(np.zeros(sine.size, np.int16))
    taken = meter.take()
    assert abs(taken.rms - 0.5 / 2) < 0.01 and abs(taken.peak - 0.5) < 0.01
    assert meter.take() == level(np.zeros(0, np.int16))
    assert abs(meter.max_peak - 0.5) < 0.01
