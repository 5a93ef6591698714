"""DTLS interop with RSA peers: the one touch of aiortc's DTLS internals.

aiortc 1.16.0 builds each DTLS context in `RTCCertificate._create_ssl_context` with a cipher
list of ECDHE-ECDSA suites only. A TLS 1.2 suite names the *server's* key type, so as DTLS
client (`a=setup:active`, i.e. whenever the engine answers) aiortc could not talk to a server
whose certificate is RSA (GStreamer's webrtcbin by default, FreeSWITCH, many SBCs): "no shared
cipher". We keep aiortc's context and widen the list with the same suites for RSA. As DTLS
server our certificate is still ECDSA, so OpenSSL picks an ECDSA suite as before; the peer's
client certificate may be RSA or ECDSA either way (that never depended on the suite).

Two more touches live here, for the session's media health and restarts:
- `record_dtls_failures`: aiortc says why a handshake failed only in a debug log line
  ("x DTLS handshake failed (fingerprint mismatch)"); we keep that reason on the transport
  (`dtls_failure`), so a person can be told why the secure media connection failed.
- `share_certificate`: every peer connection of one call uses the call's first certificate
  (aiortc 1.16's RTCConfiguration takes none; RTCPeerConnection keeps its list in a private
  attribute read when each DTLS transport is made), so a media restart on a new connection
  keeps the fingerprint the far end already knows.

Importing this module with any other aiortc raises ImportError: re-check the method first.
"""

from __future__ import annotations

from typing import Any

import aiortc

AIORTC_VERSION = "1.16.0"
if aiortc.__version__ != AIORTC_VERSION:
    raise ImportError(
        f"softphone's DTLS patch was written for aiortc {AIORTC_VERSION} internals, found "
        f"aiortc {aiortc.__version__}: re-check softphone/engine/_aiortc_dtls.py"
    )

from aiortc import RTCPeerConnection  # noqa: E402
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport  # noqa: E402

# aiortc's four ECDSA suites, each followed by its RSA twin.
CIPHERS = b":".join(
    (
        b"ECDHE-ECDSA-AES128-GCM-SHA256",
        b"ECDHE-RSA-AES128-GCM-SHA256",
        b"ECDHE-ECDSA-CHACHA20-POLY1305",
        b"ECDHE-RSA-CHACHA20-POLY1305",
        b"ECDHE-ECDSA-AES128-SHA",
        b"ECDHE-RSA-AES128-SHA",
        b"ECDHE-ECDSA-AES256-SHA",
        b"ECDHE-RSA-AES256-SHA",
    )
)
_MARK = "softphone_rsa_suites"


def accept_rsa_peers() -> None:
    """Widen every DTLS context aiortc makes from now on (idempotent)."""
    original = RTCCertificate._create_ssl_context
    if getattr(original, _MARK, False):
        return

    def create_ssl_context(self: RTCCertificate, srtp_profiles: Any) -> Any:
        context = original(self, srtp_profiles)
        context.set_cipher_list(CIPHERS)
        return context

    setattr(create_ssl_context, _MARK, True)
    RTCCertificate._create_ssl_context = create_ssl_context  # type: ignore[method-assign]


_FAILED = "x DTLS handshake failed ("
_REASON = "softphone_dtls_failure"
_READABLE = {
    "fingerprint mismatch": "the other party's certificate does not match the fingerprint "
    "in its description (fingerprint mismatch)",
    "connection error": "the connection closed during the handshake",
    "no SRTP profile negotiated": "no common SRTP protection profile",
}


def record_dtls_failures() -> None:
    """Keep why each DTLS handshake failed on its transport (idempotent)."""
    name = "_RTCDtlsTransport__log_debug"
    original = getattr(RTCDtlsTransport, name)
    if getattr(original, _MARK, False):
        return

    def log_debug(self: RTCDtlsTransport, msg: str, *args: object) -> None:
        if msg.startswith(_FAILED):
            text = (msg % args if args else msg)[len(_FAILED) :].rstrip(")")
            if text.startswith("error "):
                text = f"handshake error {text[len('error ') :]}"
            setattr(self, _REASON, _READABLE.get(text, text))
        original(self, msg, *args)

    setattr(log_debug, _MARK, True)
    setattr(RTCDtlsTransport, name, log_debug)


def dtls_failure(pc: RTCPeerConnection) -> str | None:
    """Why a DTLS transport of `pc` failed (readable), or None."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is not None and dtls.state == "failed":
            return str(getattr(dtls, _REASON, None) or "the handshake failed")
    return None


def dtls_state(pc: RTCPeerConnection) -> str:
    """The state of the first DTLS transport of `pc` ("new" before there is one)."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is not None:
            return str(dtls.state)
    return "new"


def certificate_of(pc: RTCPeerConnection) -> RTCCertificate:
    certificates: list[RTCCertificate] = pc._RTCPeerConnection__certificates  # type: ignore[attr-defined]
    return certificates[0]


def share_certificate(pc: RTCPeerConnection, certificate: RTCCertificate) -> None:
    """Make `pc` use `certificate`; only before it made any transport (a new connection)."""
    if pc.getTransceivers():
        raise RuntimeError("share_certificate: the connection already has transports")
    pc._RTCPeerConnection__certificates = [certificate]  # type: ignore[attr-defined]


__all__ = [
    "CIPHERS",
    "accept_rsa_peers",
    "certificate_of",
    "dtls_failure",
    "dtls_state",
    "record_dtls_failures",
    "share_certificate",
]
