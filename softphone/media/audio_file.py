"""WAV file source (any rate/channels, via FFmpeg) and sink (stdlib wave, 48 kHz mono 16-bit)."""

from __future__ import annotations

import os
import wave
from collections.abc import Callable
from typing import Any, BinaryIO

import av
import numpy as np
import numpy.typing as npt

from softphone.media.audio_sink import AudioSink, Pcm
from softphone.media.audio_source import AudioSource
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.errors import MediaUnavailable


def read_audio_file(path: str | os.PathLike[str]) -> Pcm:
    """The whole file as 48 kHz mono s16 samples (raises MediaUnavailable if unreadable)."""
    blocks: list[npt.NDArray[Any]] = []
    try:
        with av.open(os.fspath(path)) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                blocks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            blocks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except (OSError, av.FFmpegError, IndexError) as exc:
        raise MediaUnavailable(f"Cannot read audio file {os.fspath(path)!r}: {exc}.") from exc
    return np.concatenate(blocks).astype(np.int16) if blocks else np.zeros(0, np.int16)


class WavSource(AudioSource):
    """Plays a file (decoded up front: call files are small), looping or then silence."""

    def __init__(self, path: str | os.PathLike[str], loop: bool = True) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.loop = loop
        self.pcm = read_audio_file(path)
        if self.pcm.size == 0:
            raise MediaUnavailable(f"Audio file {self.path!r} contains no audio.")

    @property
    def finished(self) -> bool:
        return not self.loop and self._samples >= self.pcm.size

    def _generate(self, first_sample: int) -> Pcm:
        if self.loop:
            index = (np.arange(BLOCK) + first_sample) % self.pcm.size
            return self.pcm[index]
        out = np.zeros(BLOCK, dtype=np.int16)
        chunk = self.pcm[first_sample : first_sample + BLOCK]
        out[: chunk.size] = chunk
        return out


class WavSink(AudioSink):
    """Writes what it receives to a 48 kHz mono 16-bit WAV file."""

    def __init__(
        self, path: str | os.PathLike[str], on_pcm: Callable[[Pcm], None] | None = None
    ) -> None:
        super().__init__(on_pcm)
        self.path = os.fspath(path)
        try:
            # Kept open across writes; close() (from AudioSink.stop) finalises the header.
            # Opened here, not by wave.open(path): a Wave_write that failed to open its file
            # complains from __del__.
            self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115
        except OSError as exc:
            raise MediaUnavailable(f"Cannot write WAV file {self.path!r}: {exc}.") from exc
        self._wav: wave.Wave_write | None = wave.open(self._file, "wb")  # noqa: SIM115
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)

    def write(self, pcm: Pcm) -> None:
        if self._wav is not None:
            self._wav.writeframes(pcm.astype("<i2").tobytes())

    def close(self) -> None:
        # wave patches the header sizes on close, so an unclosed file would read as empty.
        wav, self._wav = self._wav, None
        file, self._file = self._file, None
        try:
            if wav is not None:
                wav.close()
        finally:
            if file is not None:
                file.close()
