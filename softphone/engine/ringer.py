"""The ring tone of incoming calls, on a ring device of its own.

`Ringer` plays the kit's ring source (`softphone.media.ring`: a cadence, or a file) into a
sink opened from the ring device spec, the same specs as `audio_out`: a device name or index,
"pulse:DESCRIPTION", "default", "null", a WAV file to record into; "none" rings silently. With
no ring device given it follows the call speaker (`MediaSettings.audio_out`) when that is a
device, not when it is a file recording calls. Whoever shows incoming calls decides when to
ring (do not disturb, auto-answer are theirs); the engine only stops the ring when a call is
answered (that call needs the speaker, which may be the same device) and when it closes.

A ring device that cannot be opened gives one `media:error` (device "ring", naming the spec)
per ringing, and nothing else: the caller's other signs (a bell, a notification) go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from softphone.engine.errors import EngineErrorCode, ErrorInfo
from softphone.engine.events import EngineEvent, MediaError
from softphone.engine.sources import MediaSettings
from softphone.media.audio_sink import AudioSink
from softphone.media.ring import TONE, RingStream, is_file, play_ring

NONE = "none"  # the ring device spec of no ring tone at all
# After the fade-out starts, how long the sink keeps playing before it is closed: the next
# pull has to fetch the fade (10 ms) and the device play it (its latency is tens of ms).
FADE_WAIT = 0.08

log = logging.getLogger("softphone.engine")


class Ringer:
    def __init__(
        self,
        media: MediaSettings,
        emit: Callable[[EngineEvent], None],
        device: str | None = None,
        sound: str = TONE,
    ) -> None:
        self.device = device  # None: the speaker's, see the module doc
        self.sound = sound
        self._media = media
        self._emit = emit
        self._sink: AudioSink | None = None
        self._stream: RingStream | None = None
        self._failed = False  # this ringing's device failed: said once, not retried
        self._frames = 0  # blocks the ring sinks of earlier ringings consumed
        self._stopping: set[AudioSink] = set()  # fading out: still playing, still counted

    def spec(self) -> str | None:
        """The ring device's spec, or None: incoming calls ring silently here."""
        if self.device is None:
            speaker = self._media.audio_out
            return None if is_file(speaker) else speaker
        return None if self.device.strip() == NONE else self.device

    @property
    def ringing(self) -> bool:
        """Whether a ring tone is playing now (its fade-out included)."""
        return self._sink is not None or bool(self._stopping)

    @property
    def sink(self) -> AudioSink | None:
        """The ring device's sink while ringing (its counters, for diagnostics)."""
        return self._sink

    @property
    def frames(self) -> int:
        """Blocks of ring tone the ring sinks played so far (all ringings; a device plays
        10 ms blocks, files and the null sink 20 ms)."""
        playing = [self._sink, *self._stopping]
        return self._frames + sum(sink.frames for sink in playing if sink is not None)

    async def start(self) -> None:
        """Ring (again: no-op). Needs the engine's loop: the sink reads on it."""
        if self._sink is not None or self._failed:
            return
        spec = self.spec()
        kit = self._media.kit
        if spec is None or kit.ring_source is None:
            return
        try:
            stream = kit.ring_source(self.sound)
        except kit.unavailable as exc:
            self._fail(f"the ring sound {self.sound!r} cannot be used: {exc}")
            return
        try:
            sink = kit.open_sink(spec)
        except kit.unavailable as exc:
            self._fail(f"the ring device {spec!r} cannot be used: {exc}")
            return
        play_ring(sink, stream)
        self._sink, self._stream = sink, stream

    async def stop(self) -> None:
        """Stop ringing, with a short fade (not ringing: no-op)."""
        self._failed = False
        sink, stream = self._sink, self._stream
        self._sink = self._stream = None
        if sink is None or stream is None:
            return
        self._stopping.add(sink)
        stream.fade_out()
        try:
            await asyncio.sleep(FADE_WAIT)
            await sink.stop()
        finally:
            self._stopping.discard(sink)
            self._frames += sink.frames

    def _fail(self, why: str) -> None:
        self._failed = True
        log.warning("no ring tone: %s", why)
        message = f"No ring tone: {why.rstrip('.')}."
        self._emit(MediaError(ErrorInfo(EngineErrorCode.MEDIA_UNAVAILABLE, message), None, "ring"))


__all__ = ["NONE", "Ringer"]
