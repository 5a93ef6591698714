"""What the engine needs from `softphone.media`, behind one small seam.

`MediaKit` bundles the factories the engine uses (audio sources and sinks from specs, DTMF
detection, the video test pattern); `default_kit()` binds `softphone.media`. Tests or embedders
may pass their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack

from softphone.media.audio import AudioSink, AudioSource, NullSink, SilenceSource
from softphone.media.audio import check_sink as _check_sink
from softphone.media.audio import check_source as _check_source
from softphone.media.audio import open_sink as _open_sink
from softphone.media.audio import open_source as _open_source
from softphone.media.dtmf import DtmfDetector
from softphone.media.echo import EchoCanceller
from softphone.media.errors import MediaUnavailable
from softphone.media.ring import RingStream, open_ring_source
from softphone.media.video import PatternSource, VideoSink, check_camera, open_video_source
from softphone.media.viewer import Viewer


@dataclass(frozen=True)
class MediaKit:
    """`open_*` raise one of `unavailable` for a spec they cannot use. The `check_*` functions
    raise the same without opening a device stream or creating a file (they validate
    `set_audio_input` & co. when no call is live; None: open and close instead). A kit with
    its own `open_source` specs should bring a matching `check_source`."""

    open_source: Callable[[str], AudioSource]
    open_sink: Callable[[str], AudioSink]
    silence: Callable[[], AudioSource]
    null_sink: Callable[[], AudioSink]
    dtmf_detector: Callable[[], DtmfDetector] | None
    video_source: Callable[[int, int, int], MediaStreamTrack] | None  # the test pattern
    video_sink: Callable[[], VideoSink] | None
    unavailable: tuple[type[BaseException], ...]
    # Cameras by spec (`set_camera`): (spec, width, height, fps); None: the pattern only.
    open_video: Callable[[str, int, int, int], MediaStreamTrack] | None = None
    check_source: Callable[[str], None] | None = None
    check_sink: Callable[[str], None] | None = None
    check_camera: Callable[[str], None] | None = None
    # A window for remote video (title → object with start/show/close/notice); Engine shows
    # one per call with video when created with show_video=True.
    window: Callable[[str], Any] | None = None
    # Echo cancellation, noise suppression, gain control for a call's microphone:
    # (echo_cancellation, noise_suppression, auto_gain_control) -> canceller; None: none.
    echo_canceller: Callable[[bool, bool, bool], EchoCanceller] | None = None
    # The ring tone by sound spec ("tone", "wav:PATH"); None: incoming calls ring silently.
    ring_source: Callable[[str], RingStream] | None = None


def default_kit() -> MediaKit:
    """The kit backed by `softphone.media`."""
    return MediaKit(
        open_source=_open_source,
        open_sink=_open_sink,
        silence=SilenceSource,
        null_sink=NullSink,
        dtmf_detector=DtmfDetector,
        video_source=PatternSource,
        video_sink=VideoSink,
        unavailable=(MediaUnavailable, ValueError),
        open_video=open_video_source,
        check_source=_check_source,
        check_sink=_check_sink,
        check_camera=check_camera,
        window=Viewer,
        echo_canceller=_echo_canceller,
        ring_source=open_ring_source,
    )


def _echo_canceller(echo: bool, noise: bool, gain: bool) -> EchoCanceller:
    return EchoCanceller(echo_cancellation=echo, noise_suppression=noise, auto_gain_control=gain)


__all__ = ["MediaKit", "default_kit"]
