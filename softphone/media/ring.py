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
import threading
from typing import TYPE_CHECKING, cast

import numpy as np

from softphone.media.audio_file import read_audio_file
from softphone.media.audio_sink import AudioSink, Pcm
from softphone.media.audio_source import AudioSource
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.errors import MediaUnavailable

if TYPE_CHECKING:
    from softphone.media.audio_receive import AudioReceiveStream

FREQUENCIES = (440.0, 480.0)
ON_SECONDS = 2.0
OFF_SECONDS = 4.0
LEVEL = 0.1  # of full scale, per frequency: -20 dBFS each, -14 dBFS at the peaks of the beat
FADE_SECONDS = 0.01
TONE = "tone"  # the sound spec of the cadence above
# Silence before the first ring, while a sound device that has just opened settles: without
# it benchmarks/ring.py caught steps of 860-2648 in 3 first rings of 5 on PulseAudio (the
# tone's own largest step is 394), with it none; the ring sounds 0.33 s after start instead
# of 0.03 s.
LEAD_IN = 0.3


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


class RingStream:
    """One period of a ring (`cadence()` or a file) over and over, pulled by the output clock
    (`play_ring`): a sound device's output callback, or `RingTrack`'s 20 ms timer for a sink
    without a clock. Pulled, not pushed through the device's queue: a late turn of the event
    loop can neither leave a gap in the tone nor pile up audio the device then trims, and
    either would click (benchmarks/ring.py measured both with a pushed track).

    `lead_in` seconds of silence come first, once: a sound device that has just opened asks
    for its first blocks in a burst and is given silence while ahead of real time.
    `fade_out()` ends it softly: what is pulled next ramps down to silence, so a sink stopped
    a moment later does not cut the tone off with a click. Thread-safe."""

    def __init__(self, period: Pcm, lead_in: float = 0.0) -> None:
        if period.size == 0:
            raise ValueError("a ring needs at least one sample")
        self.period = period
        self.lead_in = int(lead_in * SAMPLE_RATE)  # samples
        self._lock = threading.Lock()
        self._position = 0  # samples pulled so far
        self._fading_from: int | None = None  # the sample the fade-out starts at

    @property
    def pulled(self) -> int:
        """Samples pulled so far (lead-in included)."""
        with self._lock:
            return self._position

    def fade_out(self) -> None:
        with self._lock:
            if self._fading_from is None:
                self._fading_from = self._position

    def pull(self, samples: int, now: float | None = None) -> Pcm:
        """The next `samples` of the ring (`now`: unused, the output clock's time)."""
        with self._lock:
            first, fading = self._position, self._fading_from
            self._position += samples
        at = np.arange(samples) + first
        out = np.zeros(samples, np.int16)
        ringing = at >= self.lead_in
        out[ringing] = self.period[(at[ringing] - self.lead_in) % self.period.size]
        if fading is None:
            return out
        fade = int(SAMPLE_RATE * FADE_SECONDS)
        left = np.clip(1.0 - (at - fading) / fade, 0.0, 1.0)  # 1 before the fade, 0 after
        faded: Pcm = np.round(out * (0.5 - 0.5 * np.cos(np.pi * left))).astype(np.int16)
        return faded


class RingTrack(AudioSource):
    """A ring stream as a paced track, for sinks without a clock of their own (a file, the
    null sink): 20 ms blocks in real time."""

    def __init__(self, stream: RingStream) -> None:
        super().__init__()
        self.stream = stream

    def _generate(self, first_sample: int) -> Pcm:
        return self.stream.pull(BLOCK)


def play_ring(sink: AudioSink, stream: RingStream) -> None:
    """Start `sink` on the ring: a sink with a clock of its own (a sound device overrides
    `play_stream`) pulls it from its output callback, where only `pull` is asked of a stream;
    any other sink reads it as a `RingTrack`."""
    if type(sink).play_stream is AudioSink.play_stream:
        sink.start(RingTrack(stream))
    else:
        sink.play_stream(cast("AudioReceiveStream", stream))


def open_ring_source(sound: str = TONE, lead_in: float = LEAD_IN) -> RingStream:
    """The ring `sound` names: "tone" (the cadence), "wav:PATH" or a path ending .wav, after
    `lead_in` seconds of silence. Raises MediaUnavailable for a file that cannot be read,
    ValueError for another spec."""
    sound = sound.strip()
    if sound == TONE:
        return RingStream(cadence(), lead_in)
    path = sound.removeprefix("wav:") if sound.startswith("wav:") else None
    if path is None and sound.lower().endswith(".wav"):
        path = sound
    if not path:
        raise ValueError(f'a ring sound is "tone" or wav:PATH, not {sound!r}')
    pcm = read_audio_file(os.path.expanduser(path))
    if pcm.size == 0:
        raise MediaUnavailable(f"Audio file {path!r} contains no audio.")
    return RingStream(_fade(pcm), lead_in)


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
    "RingStream",
    "RingTrack",
    "cadence",
    "is_file",
    "open_ring_source",
    "play_ring",
]
