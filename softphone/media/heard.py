"""Was a tone heard? Per-block spectral check of received audio (tests and benchmarks)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from softphone.media.analysis import dominant_frequency, rms
from softphone.media.constants import BLOCK


def tone_blocks(
    pcm: npt.NDArray[np.int16],
    hz: float,
    block: int = BLOCK,
    min_rms: float = 0.02,
    tolerance_hz: float = 50.0,
) -> list[bool]:
    """For each whole block: is its strongest frequency within `tolerance_hz` of `hz` (one FFT
    bin of a 20 ms block: concealment may shift the pitch a little), at a level above `min_rms`?"""
    out = []
    for i in range(0, pcm.size - block + 1, block):
        b = pcm[i : i + block]
        out.append(rms(b) >= min_rms and abs(dominant_frequency(b) - hz) <= tolerance_hz)
    return out


def tone_fraction(pcm: npt.NDArray[np.int16], hz: float, block: int = BLOCK) -> float:
    """Share of the blocks in which the tone is heard (0 for no blocks)."""
    flags = tone_blocks(pcm, hz, block)
    return sum(flags) / len(flags) if flags else 0.0
