"""The outgoing-audio track base: framing, real-time pacing, mute and in-band DTMF."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from softphone.media import dtmf
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.levels import LevelMeter

Pcm = npt.NDArray[np.int16]

_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
_PAUSE_MS = 500  # what ',' means in a dial string
# Further behind schedule than this means nobody asked for frames for a while (hold, a stalled
# loop): start the clock afresh instead of bursting the backlog into the network.
_MAX_LATE = 0.2


@dataclass
class SourceStats:
    frames_sent: int = 0
    drops: int = 0  # blocks lost before they could be sent (device sources only)


class AudioSource(MediaStreamTrack):
    """A paced 48 kHz mono s16 track of 960-sample frames; subclasses supply the samples.

    Generated sources override ``_generate``; ``recv`` sleeps until each frame's due time
    computed from the first frame and the sample count, so scheduling jitter never accumulates
    into drift. Device sources override ``_next_block`` and are paced by the hardware instead.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.muted = False
        self.stats = SourceStats()
        self.meter: LevelMeter | None = None  # fed with every block as it is sent
        # Run on each block before mute and DTMF (echo cancellation of a generated source).
        self.processor: Callable[[Pcm], Pcm] | None = None
        self._samples = 0  # pts of the next frame, counted in samples
        self._start: float | None = None
        # play_dtmf may be called from another thread than the one running recv().
        self._dtmf_lock = threading.Lock()
        self._dtmf = np.zeros(0, dtype=np.int16)

    @property
    def dtmf_pending(self) -> bool:
        with self._dtmf_lock:
            return self._dtmf.size > 0

    def play_dtmf(self, digits: str, duration_ms: int = 100, gap_ms: int = 70) -> None:
        """Queue in-band DTMF; while it plays it replaces the outgoing audio (gaps included)."""
        gap = np.zeros(int(SAMPLE_RATE * gap_ms / 1000), dtype=np.int16)
        parts: list[Pcm] = []
        for digit in digits:
            if digit == ",":
                parts.append(np.zeros(int(SAMPLE_RATE * _PAUSE_MS / 1000), dtype=np.int16))
            elif digit.upper() in dtmf.FREQUENCIES:
                parts += [dtmf.tone(digit, duration_ms), gap]
            elif not digit.isspace():
                raise ValueError(f"not a DTMF digit: {digit!r}")
        if parts:
            with self._dtmf_lock:
                self._dtmf = np.concatenate([self._dtmf, *parts])

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        block = await self._next_block()
        if self.processor is not None:
            block = self.processor(block)
        if self.muted:
            block = np.zeros(BLOCK, dtype=np.int16)
        block = self._overlay_dtmf(block)
        if self.meter is not None:
            self.meter.feed(block)
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = _TIME_BASE
        self._samples += BLOCK
        self.stats.frames_sent += 1
        return frame

    async def _next_block(self) -> Pcm:
        """Wait for this frame's due time, then generate it."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            wait = self._start + self._samples / SAMPLE_RATE - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -_MAX_LATE:
                self._start = now - self._samples / SAMPLE_RATE
        return self._generate(self._samples)

    def _generate(self, first_sample: int) -> Pcm:
        """BLOCK samples starting at sample index ``first_sample``; silence by default."""
        return np.zeros(BLOCK, dtype=np.int16)

    def _overlay_dtmf(self, block: Pcm) -> Pcm:
        with self._dtmf_lock:
            if self._dtmf.size == 0:
                return block
            take = self._dtmf[:BLOCK]
            self._dtmf = self._dtmf[BLOCK:]
        out = np.zeros(BLOCK, dtype=np.int16)
        out[: take.size] = take
        return out


class SilenceSource(AudioSource):
    """Digital silence, paced in real time (the fallback when there is no microphone)."""


class ToneSource(AudioSource):
    """A continuous sine wave; the phase runs on across frames so there are no clicks."""

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude

    def _generate(self, first_sample: int) -> Pcm:
        t = (np.arange(BLOCK) + first_sample) / SAMPLE_RATE
        x = self.amplitude * 32767 * np.sin(2 * np.pi * self.frequency * t)
        return np.round(x).astype(np.int16)
