"""Receivers that outlive an RTCP BYE: the one touch of aiortc's receiver RTCP handling.

aiortc 1.16.0's `RTCRtpReceiver._handle_rtcp_packet` stops the receiver's decoder thread on an
RTCP BYE, and the decoder's end ends the remote track for good: nothing received afterwards is
decoded. Peers send a BYE whenever they stop sending for a while, not only when they leave:
Firefox does when our hold re-offer makes it stop sending, and resumes on the same SSRC after
the unhold. The call's life is the signaling's business (and the receiver's own `stop()` on
renegotiation or close still stops the decoder), so a BYE reaching a receiver is dropped here;
RTP that resumes is decoded as before. Sender reports and everything else pass through.

Importing this module with any other aiortc raises ImportError: re-check the method first.
"""

from __future__ import annotations

import logging

import aiortc

AIORTC_VERSION = "1.16.0"
if aiortc.__version__ != AIORTC_VERSION:
    raise ImportError(
        f"softphone's RTCP BYE patch was written for aiortc {AIORTC_VERSION} internals, found "
        f"aiortc {aiortc.__version__}: re-check softphone/engine/_aiortc_rtcp.py"
    )

from aiortc.rtcrtpreceiver import RTCRtpReceiver  # noqa: E402
from aiortc.rtp import AnyRtcpPacket, RtcpByePacket  # noqa: E402

log = logging.getLogger("softphone.engine.rtcp")
_MARK = "softphone_survives_bye"


def survive_bye() -> None:
    """Make every RTCRtpReceiver ignore RTCP BYE (idempotent)."""
    original = RTCRtpReceiver._handle_rtcp_packet
    if getattr(original, _MARK, False):
        return

    async def handle_rtcp_packet(self: RTCRtpReceiver, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpByePacket):
            log.debug("RTCP BYE for %s: receiver kept", packet.sources)
            return
        await original(self, packet)

    setattr(handle_rtcp_packet, _MARK, True)
    RTCRtpReceiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


__all__ = ["survive_bye"]
