"""How the client checks the server's certificate: always, unless told loudly not to.

By default aiohttp verifies https/wss servers against the system CA bundle. `ca_file` adds a
private CA (and only that CA is then trusted, so a test or company CA cannot be bypassed by a
public one). Skipping verification is a development switch whose name says so, and it logs a
WARNING every time a session is made with it.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import aiohttp

log = logging.getLogger("softphone.client")

INSECURE_WARNING = (
    "TLS CERTIFICATE VERIFICATION IS OFF (insecure_skip_tls_verify_for_development): anyone "
    "on the path can read and change this session. Never use this outside development."
)


class TlsSettings:
    """What to trust; `ssl_option()` is what aiohttp's connector takes."""

    def __init__(self, ca_file: str | None = None, insecure: bool = False) -> None:
        if ca_file and insecure:
            raise ValueError("give a ca_file or skip verification, not both")
        self.ca_file = str(Path(ca_file).expanduser()) if ca_file else None
        self.insecure = insecure
        self._context: ssl.SSLContext | None = None
        if self.ca_file is not None:
            try:
                self._context = ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot use CA file {self.ca_file}: {exc}") from exc

    def ssl_option(self) -> ssl.SSLContext | bool:
        if self.insecure:
            log.warning(INSECURE_WARNING)
            return False
        return self._context if self._context is not None else True

    def new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_option()))

    def explain(self, url: str, exc: Exception) -> str:
        """A refused certificate, said so that a person knows what to change."""
        trusted = f"the CA in {self.ca_file}" if self.ca_file else "the system CA bundle"
        return (
            f"the TLS certificate of {url} is not trusted by {trusted} ({exc}); if the server "
            "uses a private CA, set [client] ca_file (engine/client option ca_file) to it"
        )
