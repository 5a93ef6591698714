"""TLS for `softphone serve`: the server's certificate and key loaded into an SSL context."""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsConfigError(ValueError):
    """The configured certificate or key cannot be used (said with the file and the reason)."""


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context with Python's secure defaults (TLS 1.2 or later, no compression)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = Path(cert_file).expanduser(), Path(key_file).expanduser()
    for path in (cert, key):
        if not path.is_file():
            raise TlsConfigError(f"TLS file {path} does not exist or is not a file")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        # The message names the files, never their contents (a key is a secret).
        raise TlsConfigError(f"cannot use TLS certificate {cert} with key {key}: {exc}") from exc
    return context
