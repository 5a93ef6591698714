"""Password hashing with scrypt (standard library), in a self-describing string format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# n=2**14, r=8 is the interactive-login setting recommended for scrypt; about 40 ms here.
_N, _R, _P = 2**14, 8, 1
_LEN = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# A hash of a random password, checked against when the user does not exist, so that
# "unknown user" and "wrong password" take the same time.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Bearer tokens are 256-bit random, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()
