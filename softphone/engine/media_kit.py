"""What the engine needs from `softphone.media`, behind one small seam.

`MediaKit` bundles the factories the engine uses (audio sources and sinks from specs, DTMF
detection, the video test pattern); `default_kit()` binds `softphone.media`. Tests or embedders
may pass their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiortc import MediaStreamTrack

from softphone.media.audio import AudioSink, AudioSource, NullSink, SilenceSource
from softphone.media.audio import open_sink as _open_sink
from softphone.media.audio import open_source as _open_source
from softphone.media.dtmf import DtmfDetector
from softphone.media.errors import MediaUnavailable
from softphone.media.video import PatternSource, VideoSink


@dataclass(frozen=True)
class MediaKit:
    open_source: Callable[[str], AudioSource]
    open_sink: Callable[[str], AudioSink]
    silence: Callable[[], AudioSource]
    null_sink: Callable[[], AudioSink]
    dtmf_detector: Callable[[], DtmfDetector] | None
    video_source: Callable[[int, int, int], MediaStreamTrack] | None
    video_sink: Callable[[], VideoSink] | None
    unavailable: tuple[type[BaseException], ...]


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
    )


__all__ = ["MediaKit", "default_kit"]
