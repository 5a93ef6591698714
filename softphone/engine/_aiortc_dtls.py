"""DTLS interop with RSA peers: the one touch of aiortc's DTLS internals.

aiortc 1.16.0 builds each DTLS context in `RTCCertificate._create_ssl_context` with a cipher
list of ECDHE-ECDSA suites only. A TLS 1.2 suite names the *server's* key type, so as DTLS
client (`a=setup:active`, i.e. whenever the engine answers) aiortc could not talk to a server
whose certificate is RSA (GStreamer's webrtcbin by default, FreeSWITCH, many SBCs): "no shared
cipher". We keep aiortc's context and widen the list with the same suites for RSA. As DTLS
server our certificate is still ECDSA, so OpenSSL picks an ECDSA suite as before; the peer's
client certificate may be RSA or ECDSA either way (that never depended on the suite).

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

from aiortc.rtcdtlstransport import RTCCertificate  # noqa: E402

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


__all__ = ["CIPHERS", "accept_rsa_peers"]
