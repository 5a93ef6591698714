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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from softphone.engine.call_media import CallMedia
from softphone.engine.errors import EngineError, EngineErrorCode, ErrorInfo
from softphone.engine.events import DeviceKind, EngineEvent, MediaDeviceChange, MediaError
from softphone.engine.sources import PATTERN, AudioProcessing, MediaSettings
from softphone.media.audio import describe
from softphone.media.devices import (
    AudioDevice,
    last_device_problem,
    list_audio_devices,
    list_video_devices,
    rescan_audio_devices,
)
from softphone.media.video import describe_camera

if TYPE_CHECKING:
    from softphone.engine.session import CallSession

log = logging.getLogger("softphone.engine")

Code = EngineErrorCode

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
    # Echo cancellation & co. as set (`set_audio_processing`), and whether calls with the
    # audio input in use get echo cancellation now (the status line's "echo cancellation on").
    audio_processing: AudioProcessing = field(default_factory=AudioProcessing)
    echo_cancellation_active: bool = False


class Devices:
    """Listing devices and switching the ones calls use; `Engine` delegates to this."""

    def __init__(
        self,
        media: MediaSettings,
        emit: Callable[[EngineEvent], None],
        live: Callable[[], list[CallSession]],
    ) -> None:
        self._media = media
        self._emit = emit
        self._live_sessions = live

    # -- listing -----------------------------------------------------------------------------

    def list_devices(self, *, rescan: bool = False) -> DeviceList:
        """Audio inputs and outputs (PortAudio: readable name, index, default flags) and
        cameras. Never raises for missing devices or libraries: `problem` says why the lists
        are empty. `rescan` makes PortAudio look again (a headset plugged in, a sound server
        started later); it is refused while a call has media open."""
        media = self._media
        if rescan:
            busy = self._live(lambda m: m.source is not None or m.sink is not None)
            if busy:
                raise EngineError(
                    Code.INVALID_STATE,
                    f"cannot rescan audio devices while calls have media open ({busy[0][0]})",
                )
            rescan_audio_devices()
        audio = list_audio_devices()
        return DeviceList(
            inputs=tuple(d for d in audio if d.max_input_channels > 0),
            outputs=tuple(d for d in audio if d.max_output_channels > 0),
            cameras=tuple(list_video_devices()),
            audio_in=media.audio_in,
            audio_out=media.audio_out,
            camera=media.camera,
            problem=last_device_problem(),
            audio_in_label=describe(media.audio_in, "input"),
            audio_out_label=describe(media.audio_out, "output"),
            camera_label=describe_camera(media.camera),
            audio_processing=media.processing,
            echo_cancellation_active=self._echo_cancelled(),
        )

    def _echo_cancelled(self) -> bool:
        """Whether echo is cancelled: in the live calls that send audio if there are any,
        else in a new call with the audio input in use."""
        live = self._live(lambda m: m.source is not None)
        if live:
            return any(media.processing["echo_cancellation"] for _, media in live)
        mode = self._media.processing.echo_cancellation
        if mode != "auto":
            return mode == "on"
        spec = self._media.audio_in.strip()
        generated = spec.partition(":")[0] == "tone" or spec in ("silence", "null")
        return not generated and not spec.lower().endswith(".wav") and not spec.startswith("wav:")

    # -- audio processing --------------------------------------------------------------------

    def set_audio_processing(
        self,
        echo_cancellation: str | None = None,
        noise_suppression: bool | None = None,
        auto_gain: bool | None = None,
    ) -> AudioProcessing:
        """Change echo cancellation ("auto", "on", "off"), noise suppression and gain control
        (None: leave as is) for new calls and, at once, for every live call; returns the new
        settings. A bad value raises EngineError and changes nothing."""
        now = self._media.processing
        try:
            new = AudioProcessing(
                echo_cancellation=now.echo_cancellation  # type: ignore[arg-type]
                if echo_cancellation is None
                else echo_cancellation,
                noise_suppression=now.noise_suppression
                if noise_suppression is None
                else bool(noise_suppression),
                auto_gain=now.auto_gain if auto_gain is None else bool(auto_gain),
            )
        except ValueError as exc:
            raise EngineError(Code.INVALID_PARAM, str(exc)) from exc
        self._media.processing = new
        for _call_id, media in self._live(lambda m: m.source is not None):
            media.reprocess()
        log.info("audio processing is now %s", new)
        return new

    # -- switching ---------------------------------------------------------------------------

    async def set_audio_input(self, spec: str, *, unplugged: str = "") -> None:
        """Send audio from `spec` (what `--audio-in` takes: a device name or index,
        "default", a WAV path, "tone", "tone:HZ", "silence"/"null") in new calls and, at once,
        in every live call. Raises EngineError (naming the spec and what is available) if it
        cannot be used; then nothing changed. `unplugged`: the device this replaces was
        unplugged (for `media:deviceChange`)."""
        spec = _clean(spec)
        live = self._live(lambda m: m.source is not None)
        kit = self._media.kit
        opened = self._open_all(
            "input", spec, len(live), kit.open_source, kit.check_source, lambda s: s.stop()
        )
        self._media.audio_in = spec
        for (_call_id, media), source in zip(live, opened, strict=True):
            media.switch_input(source)
        self._changed("audio_in", spec, describe(spec, "input"), live, unplugged)

    async def set_audio_output(self, spec: str, *, unplugged: str = "") -> None:
        """Play received audio on `spec` (what `--audio-out` takes: a device name or index,
        "default", a WAV path to record into, "null") in new calls and, at once, in every live
        call. Raises EngineError (naming the spec and what is available) if it cannot be used;
        then nothing changed. `unplugged` as for `set_audio_input`."""
        spec = _clean(spec)
        live = self._live(lambda m: m.sink is not None and m.sink_track is not None)
        kit = self._media.kit
        opened = self._open_all("output", spec, len(live), kit.open_sink, kit.check_sink, None)
        self._media.audio_out = spec
        old_sinks = [
            media.switch_output(sink) for (_call_id, media), sink in zip(live, opened, strict=True)
        ]
        self._changed("audio_out", spec, describe(spec, "output"), live, unplugged)
        for old in old_sinks:
            with contextlib.suppress(Exception):
                await old.stop()

    async def set_camera(self, spec: str) -> None:
        """Send video from `spec` ("pattern", "default" for the first camera, "/dev/videoN"
        or "N") in new video calls and, at once, in every live call that sends video. Raises
        EngineError if it cannot be used; then nothing changed."""
        spec = _clean(spec)
        kit = self._media.kit
        if spec != PATTERN and kit.open_video is None:
            raise EngineError(Code.NOT_SUPPORTED, f"cameras are not supported here ({spec!r})")
        live = self._live(lambda m: m.video is not None)
        opened: list[Any] = []
        try:
            for _call_id, media in live:
                video = media.video
                assert video is not None
                opened.append(self._media.open_camera(spec, video.size, video.fps))
            if not live and spec != PATTERN and kit.check_camera is not None:
                kit.check_camera(spec)
        except kit.unavailable as exc:
            for source in opened:
                with contextlib.suppress(Exception):
                    source.stop()
            cameras = ", ".join(list_video_devices()) or "none found"
            raise EngineError(
                Code.MEDIA_UNAVAILABLE,
                f"cannot use camera {spec!r}: {exc} Cameras: {cameras}; or pattern.",
            ) from exc
        self._media.camera = spec
        for (_call_id, media), source in zip(live, opened, strict=True):
            media.switch_camera(source)
        self._changed("camera", spec, describe_camera(spec), live)

    async def unplugged(self, kind: Literal["audio_in", "audio_out"], name: str) -> None:
        """The device `kind` uses, `name`, was unplugged: move new and live calls to the
        default device (the sound server may have moved our streams already, or dropped
        them), and say so in a `media:error`. The calls go on either way."""
        speaker = kind == "audio_out"
        what = "Speaker" if speaker else "Microphone"
        try:
            if speaker:
                await self.set_audio_output("default", unplugged=name)
            else:
                await self.set_audio_input("default", unplugged=name)
        except EngineError as exc:
            text = f"{what} {name!r} was unplugged; the default one cannot be used: {exc.message}"
        else:
            text = f"{what} {name!r} was unplugged: " + (
                "playing on the default speaker" if speaker else "using the default microphone"
            )
        log.warning("%s", text)
        self._emit(MediaError(ErrorInfo(Code.MEDIA_UNAVAILABLE, text), None, kind))

    # -- helpers -----------------------------------------------------------------------------

    def _live(self, uses: Callable[[CallMedia], bool]) -> list[tuple[str, CallMedia]]:
        """(call id, media) of the calls not ended whose media satisfy `uses`."""
        return [(s.id, s.media) for s in self._live_sessions() if uses(s.media)]

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
        kit = self._media.kit
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
            code = Code.INVALID_PARAM if isinstance(exc, ValueError) else Code.MEDIA_UNAVAILABLE
            raise EngineError(code, _unusable(direction, spec, exc)) from exc
        return opened

    def _changed(
        self,
        kind: DeviceKind,
        spec: str,
        label: str,
        live: Sequence[tuple[str, CallMedia]],
        unplugged: str = "",
    ) -> None:
        ids = tuple(call_id for call_id, _ in live)
        log.info("%s is now %r (%s); switched calls: %s", kind, spec, label, ids or "none")
        self._emit(MediaDeviceChange(kind, spec, label, ids, unplugged))


def _clean(spec: str) -> str:
    spec = spec.strip()
    if not spec:
        raise EngineError(Code.INVALID_PARAM, "empty device spec")
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
