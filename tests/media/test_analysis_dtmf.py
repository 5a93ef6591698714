"""Signal analysis and DTMF, offline (no network, no devices)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from softphone.media import dtmf
from softphone.media.analysis import best_correlation, dominant_frequency, rms
from softphone.media.dtmf import DtmfDetector

RATE = 48000


def sine(freq: float, seconds: float, amplitude: float = 0.3) -> npt.NDArray[np.int16]:
    t = np.arange(int(RATE * seconds)) / RATE
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dial(digits: str, on_ms: int = 100, gap_ms: int = 70) -> npt.NDArray[np.int16]:
    gap = np.zeros(RATE * gap_ms // 1000, np.int16)
    parts = [gap]
    for d in digits:
        parts += [dtmf.tone(d, on_ms), gap]
    return np.concatenate(parts)


def detect(pcm: npt.NDArray[np.int16], block: int = 960) -> str:
    detector = DtmfDetector()
    found: list[str] = []
    for i in range(0, pcm.size, block):
        found += detector.feed(pcm[i : i + block])
    return "".join(found)


@pytest.mark.parametrize("freq", [300.0, 440.0, 1000.0, 3150.5])
def test_dominant_frequency(freq: float) -> None:
    assert dominant_frequency(sine(freq, 0.2)) == pytest.approx(freq, abs=2.0)


def test_rms_full_scale_relative() -> None:
    assert rms(sine(1000, 0.1, 0.5)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert rms(np.zeros(10, np.int16)) == 0.0


def test_best_correlation_finds_delay() -> None:
    rng = np.random.default_rng(3)
    a = (rng.standard_normal(8000) * 3000).astype(np.int16)
    b = np.concatenate([np.zeros(123, np.int16), a[:5000] // 2])  # delayed, quieter
    coef, lag = best_correlation(a, b)
    assert lag == 123
    assert coef > 0.99
    coef2, lag2 = best_correlation(a, a[500:3000])  # b ahead of a
    assert lag2 == -500
    assert coef2 > 0.99
    noise = (rng.standard_normal(4000) * 3000).astype(np.int16)
    assert best_correlation(a, noise)[0] < 0.2


def test_dtmf_table_is_exact() -> None:
    assert dtmf.FREQUENCIES["1"] == (697.0, 1209.0)
    assert dtmf.FREQUENCIES["0"] == (941.0, 1336.0)
    assert dtmf.FREQUENCIES["*"] == (941.0, 1209.0)
    assert dtmf.FREQUENCIES["#"] == (941.0, 1477.0)
    assert dtmf.FREQUENCIES["D"] == (941.0, 1633.0)
    assert sorted(dtmf.DIGITS) == sorted("0123456789*#ABCD")


def test_tone_contains_both_frequencies() -> None:
    x = dtmf.tone("5", 200).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert peaks[0] == pytest.approx(770, abs=6)
    assert peaks[1] == pytest.approx(1336, abs=6)
    with pytest.raises(ValueError):
        dtmf.tone("x", 100)


@pytest.mark.parametrize("digit", list(dtmf.DIGITS))
def test_each_digit_detected_once(digit: str) -> None:
    assert detect(dial(digit)) == digit


def test_sequence_and_repeats() -> None:
    assert detect(dial("0*#0")) == "0*#0"
    assert detect(dial("1100*0#")) == "1100*0#"
    # ragged block sizes must not change the result
    assert detect(dial("5599"), block=333) == "5599"
    assert detect(dial("5599"), block=4801) == "5599"


def test_short_gap_and_minimum_tone() -> None:
    # 40 ms tones with 40 ms gaps are the fastest standard dialling; still distinct digits.
    assert detect(dial("777", on_ms=40, gap_ms=40)) == "777"


def test_speech_like_noise_gives_no_digits() -> None:
    rng = np.random.default_rng(7)
    n = RATE * 3
    t = np.arange(n) / RATE
    # voiced "speech": a 120-180 Hz glottal buzz with many harmonics, syllable envelope, noise
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    buzz = sum(np.sin(k * phase) / k for k in range(1, 30))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    speech = buzz * envelope + 0.3 * rng.standard_normal(n)
    pcm = np.round(speech / np.max(np.abs(speech)) * 0.5 * 32767).astype(np.int16)
    assert detect(pcm) == ""
    white = (rng.standard_normal(n) * 6000).astype(np.int16)
    assert detect(white) == ""
    # a single sine is not a digit either
    assert detect(sine(941, 1.0)) == ""


def test_digits_survive_noise() -> None:
    rng = np.random.default_rng(11)
    clean = dial("0*9#")
    noisy = clean + (rng.standard_normal(clean.size) * 800).astype(np.int16)  # ~ -18 dB
    assert detect(noisy.astype(np.int16)) == "0*9#"


def test_detector_reset_and_silence() -> None:
    detector = DtmfDetector()
    assert detector.feed(np.zeros(48000, np.int16)) == []
    assert detector.feed(dtmf.tone("8", 100)) + detector.feed(np.zeros(4800, np.int16)) == ["8"]
    detector.reset()
    assert detector.feed(np.zeros(100, np.int16)) == []


def test_long_press_is_one_digit_and_levels() -> None:
    long_press = np.concatenate([dtmf.tone("9", 600), np.zeros(4800, np.int16)])
    assert detect(long_press) == "9"
    quiet = np.concatenate([dtmf.tone("0", 100, amplitude=0.03), np.zeros(4800, np.int16)])
    assert detect(quiet) == "0"  # about -27 dBFS per tone: still a digit
    too_quiet = np.concatenate([dtmf.tone("0", 100, amplitude=0.003), np.zeros(4800, np.int16)])
    assert detect(too_quiet) == ""  # below the level floor: line noise, not a key press
