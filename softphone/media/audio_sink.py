"""The incoming-audio base: read a remote aiortc track, convert to 48 kHz mono s16, hand on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from softphone.media.constants import SAMPLE_RATE

if TYPE_CHECKING:
    from softphone.media.audio_receive import AudioReceiveStream

Pcm = npt.NDArray[np.int16]

log = logging.getLogger(__name__)


def to_mono(frame: av.AudioFrame) -> Pcm:
    """48 kHz mono s16 samples of one decoded frame.

    aiortc's Opus decoder delivers packed s16 stereo at 48 kHz (shape (1, 2*n)); that case is
    a plain average of the interleaved channels. Anything else goes through FFmpeg's resampler.
    """
    channels = len(frame.layout.channels)
    if frame.format.name == "s16" and frame.sample_rate == SAMPLE_RATE:
        data = np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1)
        if channels == 1:
            return data.copy()
        wide = data.reshape(-1, channels).astype(np.int32)
        mono: Pcm = (wide.sum(axis=1) // channels).astype(np.int16)
        return mono
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    blocks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    return np.concatenate(blocks).astype(np.int16) if blocks else np.zeros(0, np.int16)


class AudioSink:
    """Consumes a remote audio track on the current loop; subclasses decide where PCM goes.

    ``on_pcm`` sees every mono block (DTMF detection, level meters, tests). It runs on the
    event loop, so it must be quick.
    """

    def __init__(self, on_pcm: Callable[[Pcm], None] | None = None) -> None:
        self.on_pcm = on_pcm
        self.frames = 0
        self.samples = 0
        self.callback_errors = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, track: MediaStreamTrack) -> None:
        if self.running:
            raise RuntimeError("this sink is already consuming a track")
        self._task = asyncio.get_running_loop().create_task(self._consume(track))

    def play_stream(self, stream: AudioReceiveStream) -> None:
        """Play a call's received audio (our jitter buffer). Sinks without a clock of their
        own pull it in 20 ms steps on a monotonic timer (`PulledTrack`); a sound device
        overrides this and pulls from its output callback."""
        from softphone.media.audio_receive import PulledTrack

        self.start(PulledTrack(stream))

    def detach(self) -> None:
        """Stop reading the track at once (its pending read is cancelled), e.g. before another
        sink starts on it; `stop()` still has to be awaited to release the output."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Stop reading and release the output (file, device); safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.close()

    def _hand_on(self, pcm: Pcm) -> None:
        """on_pcm is someone else's code: a bug there must not silence the call."""
        if self.on_pcm is None:
            return
        try:
            self.on_pcm(pcm)
        except Exception:
            self.callback_errors += 1
            if self.callback_errors == 1:
                log.exception("on_pcm failed (further failures are only counted)")

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                pcm = to_mono(frame)  # type: ignore[arg-type]
                self.frames += 1
                self.samples += pcm.size
                self.write(pcm)
                self._hand_on(pcm)
        except MediaStreamError:
            pass  # the remote track ended: the call closed

    def write(self, pcm: Pcm) -> None:
        """Deliver one mono block; the null sink discards it."""

    def close(self) -> None:
        """Release whatever write() uses."""


class NullSink(AudioSink):
    """Discards audio (still counts it and still calls on_pcm)."""


class MemorySink(AudioSink):
    """Keeps everything received, for tests and benchmarks."""

    def __init__(self, on_pcm: Callable[[Pcm], None] | None = None) -> None:
        super().__init__(on_pcm)
        self._blocks: list[Pcm] = []

    def write(self, pcm: Pcm) -> None:
        self._blocks.append(pcm)

    @property
    def pcm(self) -> Pcm:
        """All samples so far as one array."""
        if not self._blocks:
            return np.zeros(0, dtype=np.int16)
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        return self._blocks[0]
