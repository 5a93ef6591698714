"""An outgoing-audio track whose source can be replaced while it is being sent.

A call sends one `SwitchableSource`; the microphone, file or tone behind it (`inner`) can be
swapped at any time (`switch`). The far end keeps receiving one continuous stream: the RTP
track, its timestamps, mute and in-band DTMF all belong to this track, so nothing has to be
renegotiated and a muted call stays muted with the new source.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from softphone.media.audio_sink import Pcm, to_mono
from softphone.media.audio_source import AudioSource
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.switching import abandon, retire

_BLOCK_SECONDS = BLOCK / SAMPLE_RATE
_MAX_LATE = 0.2


class SwitchableSource(AudioSource):
    """Sends what `inner` delivers (any audio track; an `AudioSource` as a rule).

    Pacing is the inner source's: generated sources pace themselves in real time, devices by
    their clock. A read waiting on the old source (a dead microphone never delivers) is
    abandoned as soon as `switch` is called. Until the new source delivers (a microphone
    starts ~1.7 s after it opened), silence goes out in real time, so the far end sees no gap.
    """

    def __init__(self, inner: MediaStreamTrack) -> None:
        super().__init__()
        self._inner = inner
        self._pending = np.zeros(0, dtype=np.int16)  # samples beyond the last whole block
        self._read: asyncio.Future[Any] | None = None  # the inner source's recv() in flight
        self._filling = False  # switched, and the new source has not delivered yet
        self._due = 0.0  # when the next filler block is due (monotonic)

    @property
    def inner(self) -> MediaStreamTrack:
        return self._inner

    def switch(self, source: MediaStreamTrack) -> MediaStreamTrack:
        """Send `source` from now on; the previous source is stopped and returned."""
        old, self._inner = self._inner, source
        self._pending = np.zeros(0, dtype=np.int16)
        self._drop_read()  # a reader waiting on it wakes up and reads from `source`
        self._filling = True
        self._due = time.monotonic() + _BLOCK_SECONDS
        retire(old, source)
        return old

    def _drop_read(self) -> None:
        read, self._read = self._read, None
        abandon(read)

    async def _next_block(self) -> Pcm:
        while self._pending.size < BLOCK:
            self._pending = np.concatenate([self._pending, await self._pull()])
        block, self._pending = self._pending[:BLOCK], self._pending[BLOCK:]
        return block

    async def _pull(self) -> Pcm:
        """The next frame of the current inner source, as 48 kHz mono samples."""
        while True:
            inner = self._inner
            read = self._read
            if read is None:
                read = self._read = asyncio.ensure_future(inner.recv())
            timeout = None
            if self._filling:
                now = time.monotonic()
                self._due = max(self._due, now - _MAX_LATE)  # after a stall: no burst
                timeout = max(0.0, self._due - now)
            try:
                await asyncio.wait((read,), timeout=timeout)
            except asyncio.CancelledError:  # nobody wants the frame any more (call ended)
                if self._read is read:
                    self._drop_read()
                raise
            if inner is not self._inner:
                continue  # switched meanwhile
            if read.done():
                if self._read is read:
                    self._read = None
                if read.cancelled():
                    continue
                self._filling = False
                return to_mono(read.result())
            self._due += _BLOCK_SECONDS  # the new source has nothing yet: silence meanwhile
            return np.zeros(BLOCK, dtype=np.int16)

    def stop(self) -> None:
        super().stop()
        self._drop_read()
        with contextlib.suppress(Exception):
            self._inner.stop()
