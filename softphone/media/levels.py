"""Audio levels for meters: peak and RMS of a block, and a meter that keeps them per call or
per device (numpy only; cheap enough for an audio callback)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_FULL_SCALE = 32768.0
SILENCE_DBFS = -100.0


def to_dbfs(value: float) -> float:
    """A linear level (1.0 = full scale) in dBFS, floored at SILENCE_DBFS."""
    return 20.0 * math.log10(value) if value > 10 ** (SILENCE_DBFS / 20) else SILENCE_DBFS


@dataclass(frozen=True)
class Level:
    peak: float  # 0..1 of full scale
    rms: float

    @property
    def peak_dbfs(self) -> float:
        return to_dbfs(self.peak)

    @property
    def rms_dbfs(self) -> float:
        return to_dbfs(self.rms)


def level(pcm: npt.NDArray[np.int16]) -> Level:
    """Peak and RMS of one block of int16 PCM."""
    if pcm.size == 0:
        return Level(0.0, 0.0)
    x = pcm.astype(np.float64) / _FULL_SCALE
    return Level(float(np.max(np.abs(x))), float(np.sqrt(np.mean(x * x))))


class LevelMeter:
    """Feed every block; read the level since the last read (`take`) and the call's peak."""

    def __init__(self) -> None:
        self.max_peak = 0.0
        self._peak = 0.0
        self._energy = 0.0
        self._samples = 0

    def feed(self, pcm: npt.NDArray[np.int16]) -> None:
        if pcm.size == 0:
            return
        x = pcm.astype(np.float64) / _FULL_SCALE
        peak = float(np.max(np.abs(x)))
        self._peak = max(self._peak, peak)
        self.max_peak = max(self.max_peak, peak)
        self._energy += float(np.dot(x, x))
        self._samples += pcm.size

    @property
    def fed(self) -> bool:
        """Whether any audio came since the last `take`."""
        return self._samples > 0

    def take(self) -> Level:
        """The level since the previous `take` (e.g. 10 times a second for a meter)."""
        rms = math.sqrt(self._energy / self._samples) if self._samples else 0.0
        out = Level(self._peak, rms)
        self._peak, self._energy, self._samples = 0.0, 0.0, 0
        return out
