"""The devices new calls use, and opening them for one call with a fallback that says why.

`MediaSettings` holds the three specs (`audio_in`, `audio_out`, `camera`: what `--audio-in`,
`--audio-out` and `--camera` take), the audio processing calls apply (`AudioProcessing`) and
the `MediaKit` that opens them. An unavailable device never fails a call: it gives
`media:error` and silence, the null sink or the test pattern.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from aiortc import MediaStreamTrack

from softphone.engine.errors import EngineError, EngineErrorCode, ErrorInfo
from softphone.engine.events import DeviceKind, EngineEvent, MediaError
from softphone.engine.media_kit import MediaKit, default_kit
from softphone.media.audio_sink import AudioSink
from softphone.media.audio_switch import SwitchableSource
from softphone.media.dtmf import DtmfDetector
from softphone.media.echo import EchoCanceller
from softphone.media.video import SwitchableVideo

PATTERN = "pattern"  # the camera spec of the moving test pattern (the default)

log = logging.getLogger("softphone.engine")

EchoMode = Literal["auto", "on", "off"]
ECHO_MODES: tuple[str, ...] = get_args(EchoMode)


@dataclass(frozen=True, slots=True)
class AudioProcessing:
    """Echo cancellation, noise suppression and gain control of what calls send (WebRTC's
    audio processing module, `softphone.media.echo`).

    `echo_cancellation`: "auto" processes microphones only (a sound device as audio input),
    never files, tones or bots; "on" processes every input (tests, measurements); "off"
    cancels no echo. `noise_suppression` and `auto_gain` apply wherever processing runs.
    """

    echo_cancellation: EchoMode = "auto"
    noise_suppression: bool = True
    auto_gain: bool = True

    def __post_init__(self) -> None:
        if self.echo_cancellation not in ECHO_MODES:
            raise ValueError(
                f"echo_cancellation must be one of {', '.join(ECHO_MODES)}, "
                f"not {self.echo_cancellation!r}"
            )

    def flags(self, device_input: bool) -> tuple[bool, bool, bool] | None:
        """(echo cancellation, noise suppression, gain control) for a call whose input is a
        sound device or not; None when nothing is to run."""
        mode = self.echo_cancellation
        if not (device_input or mode == "on"):
            return None
        wanted = (mode != "off", self.noise_suppression, self.auto_gain)
        return wanted if any(wanted) else None


class MediaSettings:
    """Device specs for new calls (live calls switch through `softphone.engine.devices`)."""

    def __init__(
        self,
        emit: Callable[[EngineEvent], None],
        *,
        audio_in: str,
        audio_out: str,
        camera: str,
        kit: MediaKit | None,
        processing: AudioProcessing | None = None,
    ) -> None:
        self.audio_in = audio_in
        self.audio_out = audio_out
        self.camera = camera
        self.processing = processing or AudioProcessing()
        self._kit = kit
        self._emit = emit

    @property
    def kit(self) -> MediaKit:
        if self._kit is None:  # softphone.media loads PortAudio and FFmpeg: only when used
            self._kit = default_kit()
        return self._kit

    def _unavailable(self, exc: BaseException, call_id: str | None, device: DeviceKind) -> None:
        info = ErrorInfo(EngineErrorCode.MEDIA_UNAVAILABLE, str(exc))
        self._emit(MediaError(info, call_id, device))

    def open_source(self, call_id: str) -> SwitchableSource:
        """A call's outgoing audio, switchable mid-call."""
        kit = self.kit
        try:
            return SwitchableSource(kit.open_source(self.audio_in))
        except kit.unavailable as exc:
            self._unavailable(exc, call_id, "audio_in")
            return SwitchableSource(kit.silence())

    def open_sink(self, call_id: str) -> AudioSink:
        kit = self.kit
        try:
            return kit.open_sink(self.audio_out)
        except kit.unavailable as exc:
            self._unavailable(exc, call_id, "audio_out")
            return kit.null_sink()

    def open_video(self, call_id: str, size: tuple[int, int], fps: int = 15) -> SwitchableVideo:
        """A call's outgoing video from `camera`, switchable mid-call; a camera that cannot
        be opened gives `media:error` and the test pattern."""
        try:
            source = self.open_camera(self.camera, size, fps)
        except self.kit.unavailable as exc:
            self._unavailable(exc, call_id, "camera")
            source = self.open_camera(PATTERN, size, fps)
        return SwitchableVideo(source, size, fps)

    def open_camera(self, spec: str, size: tuple[int, int], fps: int) -> MediaStreamTrack:
        kit = self.kit
        if spec != PATTERN and kit.open_video is not None:
            return kit.open_video(spec, size[0], size[1], fps)
        if kit.video_source is None:
            raise EngineError(EngineErrorCode.NOT_SUPPORTED, "no video source available")
        return kit.video_source(size[0], size[1], fps)

    def echo_canceller(
        self, device_input: bool, current: EchoCanceller | None = None
    ) -> EchoCanceller | None:
        """The processing a call with this kind of input gets now (`current` if it already
        does just that), or None (off, not wanted, or not available: then the call goes on
        unprocessed and the log says why)."""
        flags = self.processing.flags(device_input)
        make = self.kit.echo_canceller
        if flags is None or make is None:
            return None
        if current is not None and current.flags == flags:
            return current
        try:
            return make(*flags)
        except Exception:  # a missing native library must not fail the call
            log.exception("audio processing unavailable; the microphone is sent unprocessed")
            return None

    def dtmf_detector(self) -> DtmfDetector | None:
        make = self.kit.dtmf_detector
        return make() if make is not None else None

    def window(self, title: str) -> Any:
        """A window for remote video (a viewer process), or None where the kit has none."""
        make = self.kit.window
        return make(title) if make is not None else None


__all__ = ["ECHO_MODES", "PATTERN", "AudioProcessing", "EchoMode", "MediaSettings"]
