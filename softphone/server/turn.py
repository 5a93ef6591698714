"""Short-lived TURN credentials (TURN REST API, draft-uberti-behave-turn-rest-00).

Compatible with coturn's ``--use-auth-secret --static-auth-secret=<secret>``: the TURN server needs
only the shared secret and recomputes the password from the username, so nothing is stored per user.

* ``username`` = ``"<expiry>:<opaque>"`` where ``expiry`` = ``int(now) + ttl`` (Unix seconds;
  coturn rejects the credential afterwards) and ``opaque`` = the first 16 chars of
  base64url(HMAC-SHA256(secret, UTF-8 user)). The opaque part is stable per user (useful to
  correlate TURN logs) but does not reveal the user name to the TURN server or its logs.
* ``password`` = standard base64 (with padding) of HMAC-SHA1(secret, UTF-8 username).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    username: str
    password: str
    ttl: int
    expires_at: int


def mint_turn_credentials(
    secret: bytes, *, ttl: int, user: str, now: float | None = None
) -> TurnCredentials:
    if not secret:
        raise ValueError("TURN secret must not be empty")
    if ttl <= 0:
        raise ValueError("TURN credential ttl must be positive")
    expires_at = int(time.time() if now is None else now) + ttl
    tag = hmac.new(secret, user.encode("utf-8"), hashlib.sha256).digest()
    opaque = base64.urlsafe_b64encode(tag).decode("ascii")[:16]
    username = f"{expires_at}:{opaque}"
    mac = hmac.new(secret, username.encode("ascii"), hashlib.sha1).digest()
    password = base64.b64encode(mac).decode("ascii")
    return TurnCredentials(username=username, password=password, ttl=ttl, expires_at=expires_at)


def load_secret(path: str | os.PathLike[str]) -> bytes:
    # Stripped because secret files usually end with a newline that coturn's config value lacks.
    secret = Path(path).read_bytes().strip()
    if not secret:
        raise ValueError(f"TURN secret file {os.fspath(path)!r} is empty")
    return secret
