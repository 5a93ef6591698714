"""Every touch of aiortc's internals that the audio path needs, in one place.

Written against aiortc 1.16.0 (pinned in pyproject.toml); importing this module with any other
version raises ImportError at once, so an upgrade fails loudly instead of silently bypassing our
jitter buffer. What it relies on, all per object (no module-level patching):

- `RTCRtpReceiver._RTCRtpReceiver__jitter_buffer`: the receiver calls only its
  `add(packet) -> (pli_flag, frame | None)`, from `_handle_rtp_packet` on the event loop, after
  the RTCP statistics are fed and with `packet._data` already depayloaded. `tap_receiver` puts
  a stand-in there that hands Opus packets to us and returns no frame, so aiortc's decoder
  thread and the remote track see nothing (other codecs still go to aiortc's own buffer).
- `RTCRtpReceiver._RTCRtpReceiver__kind` and `__codecs` (payload type -> codec).
- `RTCRtpSender._next_encoded_frame(codec)` and `_RTCRtpSender__encoder`: the sender creates
  its encoder lazily on the first frame; `use_fec_encoder` wraps that call on one sender so an
  Opus stream gets an encoder with in-band FEC on.
- `RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms)`, called by the DTLS transport for
  every RTP packet: `intercept_rtp` wraps it on one receiver (tests and benchmarks inject loss
  and delay there).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiortc

AIORTC_VERSION = "1.16.0"
if aiortc.__version__ != AIORTC_VERSION:
    raise ImportError(
        f"softphone's audio path was written for aiortc {AIORTC_VERSION} internals, "
        f"found aiortc {aiortc.__version__}: re-check softphone/media/_aiortc_audio.py"
    )

from aiortc.codecs.opus import OpusEncoder  # noqa: E402
from aiortc.rtcrtpparameters import RTCRtpCodecParameters  # noqa: E402
from aiortc.rtcrtpreceiver import RTCRtpReceiver  # noqa: E402
from aiortc.rtcrtpsender import RTCRtpSender  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from softphone.media.opus import ENCODER_OPTIONS  # noqa: E402

_JITTER = "_RTCRtpReceiver__jitter_buffer"
_KIND = "_RTCRtpReceiver__kind"
_CODECS = "_RTCRtpReceiver__codecs"
_ENCODER = "_RTCRtpSender__encoder"


@dataclass(frozen=True)
class RtpAudioPacket:
    """One received Opus packet, as our jitter buffer wants it."""

    seq: int
    timestamp: int
    ssrc: int
    payload: bytes  # depayloaded: the Opus packet
    arrival: float  # time.monotonic() when aiortc handed it over


PacketHandler = Callable[[RtpAudioPacket], None]
RtpHandler = Callable[[RtpPacket, int], Awaitable[None]]


class _Tap:
    """Stands in for an audio receiver's JitterBuffer."""

    def __init__(self, receiver: RTCRtpReceiver, handler: PacketHandler, original: Any) -> None:
        self._codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, _CODECS)
        self._handler = handler
        self.original = original

    @property
    def capacity(self) -> int:
        return int(self.original.capacity)

    def add(self, packet: RtpPacket) -> tuple[bool, Any]:
        codec = self._codecs.get(packet.payload_type)
        if codec is None or codec.name.lower() != "opus":
            return self.original.add(packet)  # type: ignore[no-any-return]
        data: bytes = getattr(packet, "_data", packet.payload)
        if data:
            self._handler(
                RtpAudioPacket(
                    packet.sequence_number, packet.timestamp, packet.ssrc, data, time.monotonic()
                )
            )
        return False, None


def tap_receiver(receiver: RTCRtpReceiver, handler: PacketHandler) -> Callable[[], None]:
    """Send this audio receiver's Opus packets to `handler` (on the event loop, as they arrive)
    instead of aiortc's jitter buffer and decoder. Returns a function that undoes it."""
    if getattr(receiver, _KIND) != "audio":
        raise ValueError("only an audio receiver can be tapped (video keeps aiortc's path)")
    original = getattr(receiver, _JITTER)
    if isinstance(original, _Tap):
        raise RuntimeError("this receiver is already tapped")
    tap = _Tap(receiver, handler, original)
    setattr(receiver, _JITTER, tap)

    def detach() -> None:
        if getattr(receiver, _JITTER) is tap:
            setattr(receiver, _JITTER, original)

    return detach


class FecOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder with in-band FEC and an expected loss rate set."""

    def __init__(self) -> None:
        super().__init__()
        self.codec.options = dict(ENCODER_OPTIONS)


def use_fec_encoder(sender: RTCRtpSender) -> None:
    """Make this sender encode Opus with in-band FEC (any other codec is left alone).

    Call it before the sender's first frame, e.g. right after `addTrack`."""
    original = sender._next_encoded_frame

    async def next_encoded_frame(codec: RTCRtpCodecParameters) -> Any:
        if getattr(sender, _ENCODER) is None and codec.name.lower() == "opus":
            setattr(sender, _ENCODER, FecOpusEncoder())
        return await original(codec)

    sender._next_encoded_frame = next_encoded_frame  # type: ignore[method-assign]


def intercept_rtp(
    receiver: RTCRtpReceiver, hook: Callable[[RtpPacket, int, RtpHandler], Awaitable[None]]
) -> None:
    """Route every RTP packet for this receiver through `hook(packet, arrival_ms, deliver)`,
    which may drop it, delay it or pass it on with `await deliver(packet, arrival_ms)`."""
    deliver: RtpHandler = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        await hook(packet, arrival_time_ms, deliver)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
