"""Opus for the receive path: decoding that conceals and uses in-band FEC, and the FEC settings
of the send side.

The decoder is libopus itself (Debian's libopus0) through `opuslib-next`, a maintained fork of
`opuslib` (ctypes, BSD-3; PyAV's FFmpeg wrapper can neither conceal nor decode FEC). It decodes
straight to 48 kHz mono: libopus downmixes a stereo stream itself.

- `decode(packet)`: normal decoding; a packet libopus rejects is concealed instead.
- `conceal(samples)`: packet loss concealment (libopus called with no packet). After
  `fade_after_ms` of consecutive concealment the output fades to silence over `fade_ms`.
- `recover(next_packet, samples)`: the lost frame rebuilt from the in-band FEC (SILK LBRR data)
  that the *following* packet carries; None when that packet has none (CELT-only packets never
  do), so the caller conceals.

Send side: `ENCODER_OPTIONS` turn on the encoder's in-band FEC with an expected loss (FFmpeg's
libopus options; with them libopus also prefers the SILK/hybrid modes that can carry FEC), and
`with_inband_fec(sdp)` adds `useinbandfec=1` to the Opus fmtp of an SDP, telling the far end's
encoder that we can use it. FEC stays inside the Opus bitstream, so any decoder (Chrome, Firefox,
aiortc's own) plays it as before.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from softphone.media.constants import SAMPLE_RATE
from softphone.media.errors import MediaUnavailable

try:
    import opuslib_next
except Exception as exc:  # it raises a bare Exception when libopus0 is missing
    raise MediaUnavailable(f"libopus is not available: {exc}") from exc

Pcm = npt.NDArray[np.int16]

MAX_SAMPLES = SAMPLE_RATE * 120 // 1000  # the longest Opus packet
EXPECTED_LOSS_PERCENT = 10
ENCODER_OPTIONS = {
    "application": "voip",
    "fec": "1",
    "packet_loss": str(EXPECTED_LOSS_PERCENT),
}

# frame duration in 1/10 ms by TOC config (RFC 6716 section 3.1)
_SILK_MS10 = (100, 200, 400, 600)
_HYBRID_MS10 = (100, 200)
_CELT_MS10 = (25, 50, 100, 200)


def packet_samples(packet: bytes, rate: int = SAMPLE_RATE) -> int | None:
    """Samples in an Opus packet, from its TOC byte; None if it is malformed."""
    if not packet:
        return None
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:
        ms10 = _SILK_MS10[config % 4]
    elif config < 16:
        ms10 = _HYBRID_MS10[config % 2]
    else:
        ms10 = _CELT_MS10[config % 4]
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    elif len(packet) < 2:
        return None
    else:
        frames = packet[1] & 0x3F
    samples = frames * ms10 * rate // 10_000
    return samples if 0 < samples <= MAX_SAMPLES else None


def has_fec(packet: bytes) -> bool:
    """Does this packet carry LBRR (FEC) data for the frame before it?

    Only SILK and hybrid packets can. In a single-frame packet the SILK layer starts with the
    VAD flag and then the LBRR flag of the mid channel (then, in stereo, the side channel's
    two), range-coded at probability 1/2, which makes them the leading bits of the first byte
    (libopus 1.5's opus_packet_has_lbrr reads them the same way).
    """
    if len(packet) < 2 or packet[0] >> 3 >= 16 or packet[0] & 3 != 0:
        return False
    stereo = bool(packet[0] & 0x04)
    first = packet[1]
    return bool(first & 0x40) or (stereo and bool(first & 0x10))


class OpusDecoder:
    """Mono 48 kHz decoding with concealment, FEC and a fade to silence (a `FrameDecoder`)."""

    def __init__(self, fade_after_ms: float = 60.0, fade_ms: float = 100.0) -> None:
        self._decoder = opuslib_next.Decoder(SAMPLE_RATE, 1)
        self._fade_after = int(fade_after_ms * SAMPLE_RATE / 1000)
        self._fade_len = max(1, int(fade_ms * SAMPLE_RATE / 1000))
        self._concealed = 0  # consecutive samples made up so far
        self.errors = 0

    def decode(self, payload: bytes) -> Pcm:
        try:
            pcm = self._pcm(self._decoder.decode(payload, MAX_SAMPLES))
        except opuslib_next.OpusError:
            self.errors += 1
            return self.conceal(packet_samples(payload) or SAMPLE_RATE // 50)
        self._concealed = 0
        return pcm

    def conceal(self, samples: int) -> Pcm:
        try:
            pcm = self._pcm(self._decoder.decode(b"", samples))
        except opuslib_next.OpusError:
            self.errors += 1
            pcm = np.zeros(samples, np.int16)
        start = self._concealed
        self._concealed += samples
        if self._concealed <= self._fade_after:
            return pcm
        j = np.arange(start, start + samples) - self._fade_after
        gain = np.clip(1.0 - j / self._fade_len, 0.0, 1.0)
        return np.round(pcm * gain).astype(np.int16)

    def recover(self, following: bytes, samples: int) -> Pcm | None:
        if not has_fec(following):
            return None
        try:
            pcm = self._pcm(self._decoder.decode(following, samples, decode_fec=True))
        except opuslib_next.OpusError:
            self.errors += 1
            return None
        self._concealed = 0
        return pcm

    def reset(self) -> None:
        self._decoder.reset_state()
        self._concealed = 0

    @staticmethod
    def _pcm(data: bytes) -> Pcm:
        return np.frombuffer(data, dtype=np.int16).copy()


_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.IGNORECASE | re.MULTILINE)


def with_inband_fec(sdp: str) -> str:
    """`sdp` with `useinbandfec=1` in the fmtp line of every Opus payload type."""
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(eol)
    for pt in _RTPMAP.findall(sdp):
        prefix = f"a=fmtp:{pt} "
        fmtp = next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)
        if fmtp is None:
            rtpmap = next(i for i, line in enumerate(lines) if line.startswith(f"a=rtpmap:{pt} "))
            lines.insert(rtpmap + 1, f"{prefix}useinbandfec=1")
        elif "useinbandfec=" not in lines[fmtp]:
            lines[fmtp] += ";useinbandfec=1"
        else:
            lines[fmtp] = re.sub(r"useinbandfec=\d", "useinbandfec=1", lines[fmtp])
    return eol.join(lines)
