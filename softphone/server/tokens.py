"""Anonymous-call tokens: the two legacy Kandy formats and our authenticated ``v2`` format.

A token set is three tokens minted together for one call, for the roles ``account``, ``from`` and
``to``. ``verify_token`` checks cryptography and structure only; the server applies the clock, the
maximum age and the replay cache to the returned :class:`TokenClaims`.

Legacy formats (Kandy, kept for interoperability; kandy.md §5.2 and its weaknesses in §5.4):

* ``ecb``: key = 16 printable ASCII chars used as raw AES-128 key bytes. Plaintext
  ``<identity>;<timestamp-ms>`` (UTF-8), AES-128-ECB, PKCS#7. Token = lower-case hex ciphertext
  (verifiers accept either case). No integrity protection at all.
* ``cbc``: key = 32 printable ASCII chars, used both as the AES-256 key and the HMAC key.
  Plaintext ``<identity>;x-ts=<timestamp-ms>``; IV = 16 chars of ``[A-Za-z0-9]`` used as ASCII
  bytes; AES-256-CBC, PKCS#7; ``ct`` = upper-case hex ciphertext;
  ``mac`` = upper-case hex HMAC-SHA256(key, IV chars ‖ ct). Token = ``mac`` (64) ‖ IV (16) ‖ ``ct``.

``v2`` format (ours): key = 32 random bytes (key file: 64 hex chars, or base64/base64url).
Token = base64url without padding of::

    0x02 (1 byte, version)
    key id (4 bytes)   = HKDF-SHA256(key, salt=None, info=b"softphone-anon-v2 key-id", length=4)
    nonce (12 bytes)   = random, fresh per token
    AES-256-GCM ciphertext ‖ 16-byte tag
        AEAD key       = HKDF-SHA256(key, salt=None, info=b"softphone-anon-v2 aead", length=32)
        associated data = b"softphone-anon-v2|" ‖ UTF-8 realm ‖ b"|" ‖ role
        plaintext      = compact JSON {"sub": identity, "iat": s, "exp": s, "jti": binding}

``iat``/``exp`` are integer seconds since the epoch; ``jti`` is one random id shared by the three
tokens of a set, so the server can require matching ``jti`` values and reject a reused set.
Because the realm and role are associated data, a token presented for another role or realm fails.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass
from hashlib import sha256
from typing import Literal, get_args

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TokenFormat = Literal["ecb", "cbc", "v2"]
Role = Literal["account", "from", "to"]

_ROLES: tuple[str, ...] = get_args(Role)
_ALNUM = string.ascii_letters + string.digits
_LEGACY_KEY_LEN = {"ecb": 16, "cbc": 32}
_V2_VERSION = 0x02
_V2_HEADER = 1 + 4 + 12
_MAX_TOKEN_CHARS = 4096  # bounds the work an unauthenticated caller can make us do
_HEX = re.compile(r"[0-9A-Fa-f]+")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_IV = re.compile(r"[A-Za-z0-9]{16}")
_MS = re.compile(r"[0-9]{1,16}")  # int() alone would also take "+1", "1_0" and non-ASCII digits
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


class TokenError(Exception):
    """A token that does not verify; `reason` (also the message) is log-safe, never the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenClaims:
    identity: str
    issued_at: float
    expires_at: float | None
    binding: str | None


class _V2Payload(msgspec.Struct, forbid_unknown_fields=True):
    sub: str
    iat: int
    exp: int
    jti: str


def parse_key(fmt: TokenFormat, material: str | bytes) -> bytes:
    if fmt == "v2" and isinstance(material, bytes) and len(material) == 32:
        return material  # raw key bytes: never strip, whitespace bytes are valid key bytes
    try:
        text = material.decode("ascii") if isinstance(material, bytes) else material
    except UnicodeDecodeError:
        raise ValueError(f"{fmt} key must be ASCII text") from None
    text = text.strip()
    if fmt in _LEGACY_KEY_LEN:
        want = _LEGACY_KEY_LEN[fmt]
        if len(text) != want or not _PRINTABLE.fullmatch(text):
            raise ValueError(f"{fmt} key must be exactly {want} printable ASCII characters")
        return text.encode("ascii")
    if fmt != "v2":
        raise ValueError(f"unknown token format {fmt!r}")
    key: bytes | None = None
    if len(text) == 64 and _HEX.fullmatch(text):
        key = bytes.fromhex(text)
    elif len(text) in (43, 44):
        unpadded = text.rstrip("=")
        if len(unpadded) == 43 and re.fullmatch(r"[A-Za-z0-9+/_-]+", unpadded):
            key = base64.b64decode(unpadded.replace("-", "+").replace("_", "/") + "=")
    if key is None or len(key) != 32:
        raise ValueError("v2 key must be 32 bytes given as 64 hex chars or base64/base64url")
    return key


def generate_key(fmt: TokenFormat) -> str:
    if fmt == "v2":
        return secrets.token_hex(32)
    return "".join(secrets.choice(_ALNUM) for _ in range(_LEGACY_KEY_LEN[fmt]))


def _random_iv() -> bytes:
    return "".join(secrets.choice(_ALNUM) for _ in range(16)).encode("ascii")


def _hkdf(key: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


def _aad(realm: str, role: str) -> bytes:
    return b"softphone-anon-v2|" + realm.encode("utf-8") + b"|" + role.encode("ascii")


def _check_args(fmt: str, key: bytes, role: str) -> None:
    want = _LEGACY_KEY_LEN.get(fmt, 32 if fmt == "v2" else 0)
    if not want:
        raise ValueError(f"unknown token format {fmt!r}")
    if len(key) != want:
        raise ValueError(f"{fmt} key must be {want} bytes (use parse_key)")
    if role not in _ROLES:
        raise ValueError(f"unknown role {role!r}")


def _pad_encrypt(key: bytes, mode: modes.ECB | modes.CBC, data: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), mode).encryptor()
    return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()


def _decrypt_unpad(key: bytes, mode: modes.ECB | modes.CBC, data: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), mode).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize()
    except ValueError:
        raise TokenError("bad_padding") from None


def issue_token(
    fmt: TokenFormat,
    key: bytes,
    realm: str,
    role: Role,
    identity: str,
    *,
    issued_at_ms: int,
    binding: str | None = None,
    ttl: int = 60,
    iv: bytes | None = None,
    nonce: bytes | None = None,
) -> str:
    _check_args(fmt, key, role)
    if not identity or issued_at_ms < 0:
        raise ValueError("identity must not be empty and issued_at_ms must not be negative")
    # Parameters the format would silently ignore signal a caller mistake.
    if (iv is not None and fmt != "cbc") or (fmt != "v2" and (nonce, binding) != (None, None)):
        raise ValueError("iv is for cbc only; nonce and binding are for v2 only")
    if fmt == "ecb":
        data = f"{identity};{issued_at_ms}".encode()
        return _pad_encrypt(key, modes.ECB(), data).hex()
    if fmt == "cbc":
        iv = _random_iv() if iv is None else iv
        if not _IV.fullmatch(iv.decode("ascii", "replace")):
            raise ValueError("cbc iv must be 16 characters from [A-Za-z0-9]")
        ct = _pad_encrypt(key, modes.CBC(iv), f"{identity};x-ts={issued_at_ms}".encode())
        ivct = iv + ct.hex().upper().encode("ascii")
        return hmac.new(key, ivct, sha256).hexdigest().upper() + ivct.decode("ascii")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    nonce = secrets.token_bytes(12) if nonce is None else nonce
    if len(nonce) != 12:
        raise ValueError("v2 nonce must be 12 bytes")
    iat = issued_at_ms // 1000
    payload = _V2Payload(identity, iat, iat + ttl, binding or secrets.token_urlsafe(16))
    sealed = AESGCM(_hkdf(key, b"softphone-anon-v2 aead", 32)).encrypt(
        nonce, msgspec.json.encode(payload), _aad(realm, role)
    )
    head = bytes([_V2_VERSION]) + _hkdf(key, b"softphone-anon-v2 key-id", 4) + nonce
    return base64.urlsafe_b64encode(head + sealed).rstrip(b"=").decode("ascii")


def issue_token_set(
    fmt: TokenFormat,
    key: bytes,
    realm: str,
    *,
    account: str,
    caller: str,
    callee: str,
    now: float | None = None,
    ttl: int = 60,
) -> dict[str, str]:
    ts_ms = int((time.time() if now is None else now) * 1000)
    # Kandy reuses one IV for the three cbc tokens; a verifier cannot tell, so we match it.
    iv = _random_iv() if fmt == "cbc" else None
    binding = secrets.token_urlsafe(16) if fmt == "v2" else None

    def one(role: Role, identity: str) -> str:
        return issue_token(
            fmt, key, realm, role, identity, issued_at_ms=ts_ms, binding=binding, ttl=ttl, iv=iv
        )

    return {
        "realm": realm,
        "accountToken": one("account", account),
        "fromToken": one("from", caller),
        "toToken": one("to", callee),
        "caller": caller,
        "callee": callee,
    }


def _legacy_claims(plain: bytes, sep: str) -> TokenClaims:
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenError("bad_plaintext") from None
    identity, found, ms = text.rpartition(sep)
    if not found or not identity or not _MS.fullmatch(ms):
        raise TokenError("bad_plaintext")
    return TokenClaims(identity, int(ms) / 1000, None, None)


def _verify_v2(key: bytes, realm: str, role: str, token: str) -> TokenClaims:
    if not _B64URL.fullmatch(token) or len(token) % 4 == 1:
        raise TokenError("bad_encoding")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    # Unused low bits make several strings decode alike; insist on the one we would emit.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise TokenError("bad_encoding")
    if len(raw) < _V2_HEADER + 16 or raw[0] != _V2_VERSION:
        raise TokenError("bad_version" if raw and raw[0] != _V2_VERSION else "too_short")
    if not hmac.compare_digest(raw[1:5], _hkdf(key, b"softphone-anon-v2 key-id", 4)):
        raise TokenError("wrong_key")
    try:
        aad = _aad(realm, role)
    except UnicodeEncodeError:
        raise TokenError("bad_realm") from None
    try:
        plain = AESGCM(_hkdf(key, b"softphone-anon-v2 aead", 32)).decrypt(
            raw[5:_V2_HEADER], raw[_V2_HEADER:], aad
        )
    except InvalidTag:
        raise TokenError("bad_tag") from None
    try:
        p = msgspec.json.decode(plain, type=_V2Payload)
    except msgspec.DecodeError:
        raise TokenError("bad_plaintext") from None
    if not p.sub or not p.jti or not 0 <= p.iat <= p.exp < 2**53:
        raise TokenError("bad_claims")
    return TokenClaims(p.sub, float(p.iat), float(p.exp), p.jti)


def verify_token(fmt: TokenFormat, key: bytes, realm: str, role: Role, token: str) -> TokenClaims:
    _check_args(fmt, key, role)
    if not isinstance(token, str) or not token:
        raise TokenError("empty")
    if len(token) > _MAX_TOKEN_CHARS:
        raise TokenError("too_long")
    if fmt == "v2":
        return _verify_v2(key, realm, role, token)
    if not token.isascii():
        raise TokenError("bad_encoding")
    if fmt == "ecb":
        if not _HEX.fullmatch(token) or len(token) % 32:
            raise TokenError("bad_encoding")
        return _legacy_claims(_decrypt_unpad(key, modes.ECB(), bytes.fromhex(token)), ";")
    mac, iv, ct = token[:64], token[64:80], token[80:]
    if not _HEX.fullmatch(mac) or not _IV.fullmatch(iv) or not _HEX.fullmatch(ct) or len(ct) % 32:
        raise TokenError("bad_encoding")
    # The MAC covers the upper-case hex text, so normalise before recomputing it.
    ivct = (iv + ct.upper()).encode("ascii")
    if not hmac.compare_digest(bytes.fromhex(mac), hmac.new(key, ivct, sha256).digest()):
        raise TokenError("bad_mac")
    return _legacy_claims(
        _decrypt_unpad(key, modes.CBC(iv.encode("ascii")), bytes.fromhex(ct)), ";x-ts="
    )
