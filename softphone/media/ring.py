"""The ring tone: what the ring device plays while a call comes in.

The default is the North American ringing cadence: 440 Hz + 480 Hz together, 2 s on, 4 s off
(ITU-T E.180 lists it; the US ringer cadence is the same 2 s / 4 s). Chosen over Europe's
single 425 Hz because two tones 40 Hz apart beat into the warble people know as "a phone
ringing", and because a single sine is what the `tone` test source and many bots send: a
listener (or a test) can tell the ring from call audio by its pair of frequencies. Each
component is at -20 dBFS, a moderate level that leaves headroom when another stream plays on
the same device. Every burst fades in and out (raised cosine, 10 ms) so the edges do not click.

`wav:PATH` (or a path ending .wav; any format FFmpeg reads) rings with a file instead, looped
as it is (its own pauses are its cadence), with the same fades at its ends.
"""

from __future__ import annotations

import os
import time

import numpy as np

from softphone.media.audio_file import read_audio_file
from softphone.media.audio_sink import Pcm
from softphone.media.audio_source import AudioSource
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.errors import MediaUnavailable

FREQUENCIES = (440.0, 480.0)
ON_SECONDS = 2.0
OFF_SECONDS = 4.0
LEVEL = 0.1  # of full scale, per frequency: -20 dBFS each, -14 dBFS at the peaks of the beat
FADE_SECONDS = 0.01
TONE = "tone"  # the sound spec of the cadence above
# Silence before the first ring, while a sound device that has just opened settles (its first
# callbacks underrun and its queue is trimmed to its cushion): measured by benchmarks/ring.py.
LEAD_IN = 0.3
# How far ahead of real time the ring runs: a sink with a queue (a sound device's FIFO) holds
# this much, so a late turn of the event loop does not leave a gap in the tone. Two blocks:
# more would be trimmed by the device as standing latency (a jump in the tone).
AHEAD = 2 * BLOCK / SAMPLE_RATE


def _fade(pcm: Pcm, seconds: float = FADE_SECONDS) -> Pcm:
    """`pcm` with a raised-cosine fade in at its start and out at its end."""
    n = min(int(SAMPLE_RATE * seconds), pcm.size // 2)
    if n == 0:
        return pcm.copy()
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
    out = pcm.astype(np.float64)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    faded: Pcm = np.round(out).astype(np.int16)
    return faded


def cadence(
    frequencies: tuple[float, ...] = FREQUENCIES,
    on: float = ON_SECONDS,
    off: float = OFF_SECONDS,
    level: float = LEVEL,
) -> Pcm:
    """One period of the ring: `on` seconds of the frequencies summed, faded at both ends,
    then `off` seconds of silence."""
    t = np.arange(int(SAMPLE_RATE * on)) / SAMPLE_RATE
    burst = sum(level * 32767 * np.sin(2 * np.pi * hz * t) for hz in frequencies)
    tone = _fade(np.round(np.asarray(burst)).astype(np.int16))
    return np.concatenate([tone, np.zeros(int(SAMPLE_RATE * off), np.int16)])


class RingSource(AudioSource):
    """Plays one period of a ring (`cadence()` or a file) over and over, paced in real time.

    `lead_in` seconds of silence come first, once: a sound device that has just opened
    underruns and trims its queue while it settles, which in the middle of a tone would click.
    `fade_out()` ends it softly: the next blocks ramp down to silence, so a sink stopped a
    moment later does not cut the tone off with a click."""

    def __init__(self, period: Pcm, lead_in: float = 0.0) -> None:
        super().__init__()
        if period.size == 0:
            raise ValueError("a ring needs at least one sample")
        self.period = period
        self.lead_in = round(lead_in * SAMPLE_RATE / BLOCK) * BLOCK  # whole blocks, samples
        self._fading_from: int | None = None  # the sample the fade-out starts at

    async def _next_block(self) -> Pcm:
        if self._start is None:  # the first blocks are due at once: the head start
            self._start = time.monotonic() - AHEAD
        return await super()._next_block()

    def fade_out(self) -> None:
        if self._fading_from is None:
            self._fading_from = self._samples

    def _generate(self, first_sample: int) -> Pcm:
        if first_sample < self.lead_in:
            return np.zeros(BLOCK, np.int16)
        index = (np.arange(BLOCK) + first_sample - self.lead_in) % self.period.size
        block = self.period[index]
        start = self._fading_from
        if start is None:
            return block
        fade = int(SAMPLE_RATE * FADE_SECONDS)
        done = np.arange(BLOCK) + first_sample - start  # samples into the fade
        gain = np.clip(1.0 - done / fade, 0.0, 1.0)
        gain = 0.5 - 0.5 * np.cos(np.pi * gain)
        faded: Pcm = np.round(block * gain).astype(np.int16)
        return faded


def open_ring_source(sound: str = TONE, lead_in: float = LEAD_IN) -> RingSource:
    """The ring `sound` names: "tone" (the cadence), "wav:PATH" or a path ending .wav, after
    `lead_in` seconds of silence. Raises MediaUnavailable for a file that cannot be read,
    ValueError for another spec."""
    sound = sound.strip()
    if sound == TONE:
        return RingSource(cadence(), lead_in)
    path = sound.removeprefix("wav:") if sound.startswith("wav:") else None
    if path is None and sound.lower().endswith(".wav"):
        path = sound
    if not path:
        raise ValueError(f'a ring sound is "tone" or wav:PATH, not {sound!r}')
    pcm = read_audio_file(os.path.expanduser(path))
    if pcm.size == 0:
        raise MediaUnavailable(f"Audio file {path!r} contains no audio.")
    return RingSource(_fade(pcm), lead_in)


def is_file(spec: str) -> bool:
    """Whether an audio output spec is a file ("wav:PATH", a path ending .wav), which records
    a call: a place to follow the speaker to for a ring only if asked by name."""
    spec = spec.strip()
    return spec.startswith("wav:") or spec.lower().endswith(".wav")


__all__ = [
    "FREQUENCIES",
    "OFF_SECONDS",
    "ON_SECONDS",
    "TONE",
    "RingSource",
    "cadence",
    "is_file",
    "open_ring_source",
]
