"""DTMF: the exact tone pairs, a tone generator and a Goertzel-style detector for 48 kHz PCM."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from softphone.media.constants import SAMPLE_RATE

ROWS: tuple[float, ...] = (697.0, 770.0, 852.0, 941.0)
COLS: tuple[float, ...] = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")

#: digit -> (row Hz, column Hz), from the standard keypad layout.
FREQUENCIES: dict[str, tuple[float, float]] = {
    key: (ROWS[r], COLS[c]) for r, line in enumerate(_KEYPAD) for c, key in enumerate(line)
}
DIGITS = "".join(_KEYPAD)

_RAMP_MS = 3  # short fade in/out so a tone edge is not a click that splatters energy


def tone(
    digit: str, duration_ms: int, rate: int = SAMPLE_RATE, amplitude: float = 0.25
) -> npt.NDArray[np.int16]:
    """int16 samples of one DTMF digit; each of the two sines has peak ``amplitude`` (0..0.5)."""
    key = digit.upper()
    if key not in FREQUENCIES:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    low, high = FREQUENCIES[key]
    n = int(rate * duration_ms / 1000)
    t = np.arange(n) / rate
    x = amplitude * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    ramp = min(n // 2, int(rate * _RAMP_MS / 1000))
    if ramp > 0:
        fade = np.linspace(0.0, 1.0, ramp)
        x[:ramp] *= fade
        x[n - ramp :] *= fade[::-1]
    return np.round(x * 32767).astype(np.int16)


class DtmfDetector:
    """Finds DTMF digits in a stream of 48 kHz mono int16 blocks of any size.

    Every 10 ms it analyses the last 25 ms (1200 samples: 40 Hz bins separate 697/770 Hz) at
    the eight DTMF frequencies. The single-bin DFTs are what Goertzel computes, done as one
    vectorised product because a per-sample Python loop would be far too slow. The product is
    an ``einsum``, never ``@``/``np.dot``: those go to OpenBLAS, whose worker threads then
    spin for a whole core per process after every 10 ms call (measured: 79% vs 9% CPU).

    A window "holds" digit d when the strongest row and column are d's, both are clearly above
    the other rows/columns, the pair carries most of the window's energy (rejects speech and
    noise, which spread their energy) and the twist between them is limited. A digit is
    reported when it has held for ``min_on`` windows and then only again after ``min_off``
    windows without it, so one 100 ms tone is one digit and 70 ms gaps separate repeats.
    """

    WINDOW = 1200
    HOP = 480

    def __init__(
        self,
        rate: int = SAMPLE_RATE,
        min_on: int = 3,
        min_off: int = 2,
        min_level: float = 0.01,
        min_tone_share: float = 0.6,
        max_twist_db: float = 10.0,
        min_separation_db: float = 8.0,
    ) -> None:
        self.rate = rate
        self.min_on = min_on
        self.min_off = min_off
        self.min_level = min_level
        self.min_tone_share = min_tone_share
        self.max_twist = 10 ** (max_twist_db / 10)
        self.min_separation = 10 ** (min_separation_db / 10)
        self.window = int(self.WINDOW * rate / SAMPLE_RATE)
        self.hop = int(self.HOP * rate / SAMPLE_RATE)
        freqs = np.array(ROWS + COLS)
        t = np.arange(self.window) / rate
        phase = 2 * np.pi * np.outer(t, freqs)
        self._basis = np.ascontiguousarray(np.vstack([np.cos(phase).T, np.sin(phase).T]))
        self._buffer = np.zeros(0, dtype=np.float64)
        self._candidate: str | None = None
        self._run = 0
        self._current: str | None = None  # digit being held (already reported)
        self._quiet = 0

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float64)
        self._candidate, self._run, self._current, self._quiet = None, 0, None, 0

    def classify(self, window: npt.NDArray[np.float64]) -> str | None:
        """The digit one analysis window holds, or None."""
        energy = float(np.einsum("i,i->", window, window))
        if energy / window.size < self.min_level**2:
            return None
        # |X(f)|^2 * 2/N relative to the window energy: 1.0 for a lone pure sine, so the
        # row and column shares of a clean DTMF tone add up to about 1.
        re_im = np.einsum("ki,i->k", self._basis, window)  # (16,): 8 real parts, 8 imaginary
        power = (re_im[:8] ** 2 + re_im[8:] ** 2) * (2.0 / window.size) / energy
        rows, cols = power[:4], power[4:]
        r, c = int(np.argmax(rows)), int(np.argmax(cols))
        row_p, col_p = float(rows[r]), float(cols[c])
        if row_p + col_p < self.min_tone_share:
            return None
        if max(row_p, col_p) > self.max_twist * min(row_p, col_p):
            return None
        other_row = float(np.max(np.delete(rows, r)))
        other_col = float(np.max(np.delete(cols, c)))
        if row_p < self.min_separation * other_row or col_p < self.min_separation * other_col:
            return None
        return _KEYPAD[r][c]

    def feed(self, pcm: npt.NDArray[np.generic]) -> list[str]:
        """Add samples; return the digits that started in them (in order)."""
        x = np.asarray(pcm).reshape(-1).astype(np.float64) / 32768.0
        self._buffer = np.concatenate([self._buffer, x])
        found: list[str] = []
        while self._buffer.size >= self.window:
            digit = self.classify(self._buffer[: self.window])
            self._buffer = self._buffer[self.hop :]
            detected = self._step(digit)
            if detected is not None:
                found.append(detected)
        return found

    def _step(self, digit: str | None) -> str | None:
        if digit is not None and digit == self._candidate:
            self._run += 1
        else:
            self._candidate, self._run = digit, 1 if digit is not None else 0
        if digit is None or digit != self._current:
            self._quiet += 1
            if self._quiet >= self.min_off:
                self._current = None
        else:
            self._quiet = 0
        if digit is not None and self._current is None and self._run >= self.min_on:
            self._current = digit
            self._quiet = 0
            return digit
        return None
