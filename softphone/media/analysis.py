"""Small signal measurements used by tests, benchmarks and diagnostics (numpy only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from softphone.media.constants import SAMPLE_RATE

_FULL_SCALE = 32768.0


def _as_float(pcm: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """int16 PCM becomes [-1, 1); float input is taken as already normalised."""
    x = np.asarray(pcm).reshape(-1)
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float64) / _FULL_SCALE
    return x.astype(np.float64)


def rms(pcm: npt.NDArray[np.generic]) -> float:
    """Root mean square relative to full scale (1.0 = a full-scale square wave)."""
    x = _as_float(pcm)
    if x.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(x * x)))


def dominant_frequency(pcm: npt.NDArray[np.generic], rate: int = SAMPLE_RATE) -> float:
    """Frequency (Hz) of the strongest spectral peak, DC excluded.

    A Hann window keeps leakage from a non-integer number of periods from moving the peak, and
    parabolic interpolation on the log magnitude gives sub-bin accuracy.
    """
    x = _as_float(pcm)
    if x.size < 4:
        return 0.0
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size)))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    offset = 0.0
    if 0 < k < spectrum.size - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        denom = a - 2 * b + c
        if denom != 0:
            offset = float(0.5 * (a - c) / denom)
    return (k + offset) * rate / x.size


def best_correlation(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> tuple[float, int]:
    """Peak normalised cross-correlation of b against a, and the lag where it occurs.

    The lag L means ``b[n] ~ a[n - L]`` (b is a copy of a delayed by L samples; negative when b
    is ahead). The coefficient is recomputed exactly over the overlapping samples at that lag,
    so 1.0 means identical shape there, whatever the levels.
    """
    x, y = _as_float(a), _as_float(b)
    if x.size == 0 or y.size == 0:
        return 0.0, 0
    n = x.size + y.size - 1
    size = 1 << (n - 1).bit_length()
    # corr[k] = sum_n y[n] * x[n - L] arranged circularly; FFT keeps it O(n log n).
    corr = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
    lags = np.concatenate([np.arange(0, y.size), np.arange(-(x.size - 1), 0)])
    values = np.concatenate([corr[: y.size], corr[size - (x.size - 1) :]])
    lag = int(lags[int(np.argmax(values))])
    # Overlap: y[n] with x[n - lag] for n in [max(0, lag), min(y.size, x.size + lag)).
    start, stop = max(0, lag), min(y.size, x.size + lag)
    if stop - start < 2:
        return 0.0, lag
    ys, xs = y[start:stop], x[start - lag : stop - lag]
    denom = float(np.sqrt(np.dot(xs, xs) * np.dot(ys, ys)))
    return (float(np.dot(xs, ys)) / denom if denom > 0 else 0.0), lag
