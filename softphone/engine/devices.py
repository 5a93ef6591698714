"""Devices: listing audio devices and cameras, and switching what calls use, mid-call included.

Every call sends a `SwitchableSource` (and, with video, a `SwitchableVideo`): switching opens
the new source for each live call and puts it behind that call's track, so the far end keeps
receiving the same RTP stream with no renegotiation, and mute and hold (which silence the
track itself) carry over. Received audio moves by starting a new sink on the same remote track.
A spec that cannot be used raises and changes nothing: all new sources (sinks) are opened
before any call switches.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from softphone.engine import errors
from softphone.engine.call import CallRecord
from softphone.engine.core import PATTERN, EngineCore, _quietly, _Res
from softphone.engine.errors import EngineError
from softphone.engine.events import DeviceKind, MediaDeviceChange
from softphone.media.audio import describe
from softphone.media.audio_switch import SwitchableSource
from softphone.media.devices import (
    AudioDevice,
    last_device_problem,
    list_audio_devices,
    list_video_devices,
    rescan_audio_devices,
)
from softphone.media.video import SwitchableVideo, describe_camera

log = logging.getLogger("softphone.engine")

_OTHER_AUDIO = {
    "input": "tone, tone:HZ, silence, default, or a .wav file",
    "output": "null, default, or a .wav file to record into",
}


@dataclass(frozen=True, slots=True)
class DeviceList:
    """What `list_devices` found, and the specs the engine uses now."""

    inputs: tuple[AudioDevice, ...]  # PortAudio devices that can capture
    outputs: tuple[AudioDevice, ...]  # ... that can play
    cameras: tuple[str, ...]  # V4L2 nodes (/dev/video0, ...)
    audio_in: str  # the specs in use (what set_audio_input & co. were given)
    audio_out: str
    camera: str
    problem: str = ""  # why there are no audio devices ("" when there are)
    # The specs in use, readable ("tone 440 Hz", a device's name): as in media:deviceChange.
    audio_in_label: str = ""
    audio_out_label: str = ""
    camera_label: str = ""


class Devices(EngineCore):
    # -- listing -----------------------------------------------------------------------------

    async def list_devices(self, *, rescan: bool = False) -> DeviceList:
        """Audio inputs and outputs (PortAudio: readable name, index, default flags) and
        cameras. Never raises for missing devices or libraries: `problem` says why the lists
        are empty. `rescan` makes PortAudio look again (a headset plugged in, a sound server
        started later); it is refused while a call has media open."""
        if rescan:
            media = self._live(lambda res: res.source is not None or res.sink is not None)
            busy = [rec.id for rec, _ in media]
            if busy:
                raise EngineError(
                    errors.INVALID_STATE,
                    f"cannot rescan audio devices while calls have media open ({busy[0]})",
                )
            rescan_audio_devices()
        audio = list_audio_devices()
        return DeviceList(
            inputs=tuple(d for d in audio if d.max_input_channels > 0),
            outputs=tuple(d for d in audio if d.max_output_channels > 0),
            cameras=tuple(list_video_devices()),
            audio_in=self.audio_in,
            audio_out=self.audio_out,
            camera=self.camera,
            problem=last_device_problem(),
            audio_in_label=describe(self.audio_in, "input"),
            audio_out_label=describe(self.audio_out, "output"),
            camera_label=describe_camera(self.camera),
        )

    # -- switching ---------------------------------------------------------------------------

    async def set_audio_input(self, spec: str) -> None:
        """Send audio from `spec` (what `--audio-in` takes: a device name or index,
        "default", a WAV path, "tone", "tone:HZ", "silence"/"null") in new calls and, at once,
        in every live call. Raises EngineError (naming the spec and what is available) if it
        cannot be used; then nothing changed."""
        spec = _clean(spec)
        live = self._live(lambda res: isinstance(res.source, SwitchableSource))
        kit = self.kit
        opened = self._open_all(
            "input", spec, len(live), kit.open_source, kit.check_source, lambda s: s.stop()
        )
        self.audio_in = spec
        for (_rec, res), source in zip(live, opened, strict=True):
            res.source.switch(source)
        self._changed("audio_in", spec, describe(spec, "input"), live)

    async def set_audio_output(self, spec: str) -> None:
        """Play received audio on `spec` (what `--audio-out` takes: a device name or index,
        "default", a WAV path to record into, "null") in new calls and, at once, in every live
        call. Raises EngineError (naming the spec and what is available) if it cannot be used;
        then nothing changed."""
        spec = _clean(spec)
        live = self._live(lambda res: res.sink is not None and res.sink_track is not None)
        kit = self.kit
        opened = self._open_all("output", spec, len(live), kit.open_sink, kit.check_sink, None)
        self.audio_out = spec
        old_sinks = []
        for (_rec, res), sink in zip(live, opened, strict=True):
            old = res.sink
            old.detach()  # it stops reading before the new sink starts on the same track
            sink.on_pcm = old.on_pcm
            sink.start(res.sink_track)
            res.sink = sink
            old_sinks.append(old)
        self._changed("audio_out", spec, describe(spec, "output"), live)
        for old in old_sinks:
            await _quietly(old.stop())

    async def set_camera(self, spec: str) -> None:
        """Send video from `spec` ("pattern", "default" for the first camera, "/dev/videoN"
        or "N") in new video calls and, at once, in every live call that sends video. Raises
        EngineError if it cannot be used; then nothing changed."""
        spec = _clean(spec)
        kit = self.kit
        if spec != PATTERN and kit.open_video is None:
            raise EngineError(errors.NOT_SUPPORTED, f"cameras are not supported here ({spec!r})")
        live = self._live(lambda res: isinstance(res.video, SwitchableVideo))
        opened: list[Any] = []
        try:
            for _rec, res in live:
                opened.append(self._open_camera(spec, res.video.size, res.video.fps))
            if not live and spec != PATTERN and kit.check_camera is not None:
                kit.check_camera(spec)
        except kit.unavailable as exc:
            for source in opened:
                with contextlib.suppress(Exception):
                    source.stop()
            cameras = ", ".join(list_video_devices()) or "none found"
            raise EngineError(
                errors.MEDIA_UNAVAILABLE,
                f"cannot use camera {spec!r}: {exc} Cameras: {cameras}; or pattern.",
            ) from exc
        self.camera = spec
        for (_rec, res), source in zip(live, opened, strict=True):
            res.video.switch(source)
        self._changed("camera", spec, describe_camera(spec), live)

    # -- helpers -----------------------------------------------------------------------------

    def _live(self, uses: Callable[[_Res], Any]) -> list[tuple[CallRecord, _Res]]:
        """Calls not ended whose resources satisfy `uses`."""
        return [
            (rec, self._res[rec.id])
            for rec in self._calls.values()
            if not rec.terminal and uses(self._res[rec.id])
        ]

    def _open_all(
        self,
        direction: Literal["input", "output"],
        spec: str,
        count: int,
        opener: Callable[[str], Any],
        check: Callable[[str], None] | None,
        close: Callable[[Any], None] | None,
    ) -> list[Any]:
        """`count` new sources or sinks from `spec` (none: only check it), all or nothing."""
        kit = self.kit
        opened: list[Any] = []
        try:
            for _ in range(count):
                opened.append(opener(spec))
            if not count:
                if check is not None:
                    check(spec)
                else:
                    probe = opener(spec)
                    _close(probe, close)
        except kit.unavailable as exc:
            for item in opened:
                _close(item, close)
            code = errors.INVALID_PARAM if isinstance(exc, ValueError) else errors.MEDIA_UNAVAILABLE
            raise EngineError(code, _unusable(direction, spec, exc)) from exc
        return opened

    def _changed(
        self, kind: DeviceKind, spec: str, label: str, live: Sequence[tuple[CallRecord, _Res]]
    ) -> None:
        ids = tuple(rec.id for rec, _ in live)
        log.info("%s is now %r (%s); switched calls: %s", kind, spec, label, ids or "none")
        self._emit(MediaDeviceChange(kind, spec, label, ids))


def _clean(spec: str) -> str:
    spec = spec.strip()
    if not spec:
        raise EngineError(errors.INVALID_PARAM, "empty device spec")
    return spec


def _close(item: Any, close: Callable[[Any], None] | None) -> None:
    """Release a source (close) or a sink that never started (its output only)."""
    with contextlib.suppress(Exception):
        if close is not None:
            close(item)
        else:
            item.close()


def _unusable(direction: Literal["input", "output"], spec: str, exc: BaseException) -> str:
    """The error text: what failed, and what could be used instead."""
    found = []
    for d in list_audio_devices():
        if direction == "input":
            channels, default = d.max_input_channels, d.default_input
        else:
            channels, default = d.max_output_channels, d.default_output
        if channels > 0:
            found.append(f"{d.name!r} (#{d.index}{', default' if default else ''})")
    if found:
        available = f"audio {direction}s: {', '.join(found)}"
    else:
        available = f"no audio {direction} devices ({last_device_problem() or 'none found'})"
    reason = str(exc).rstrip(".")
    return (
        f"cannot use audio {direction} {spec!r}: {reason}. Available {available}; "
        f"or {_OTHER_AUDIO[direction]}."
    )


__all__ = ["DeviceList", "Devices"]
