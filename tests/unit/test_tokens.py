"""Anonymous-call tokens. Expected values are rebuilt here from the documented formats with the
`cryptography` primitives directly, so a bug shared by issue and verify cannot hide."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from typing import get_args

import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from softphone.server.tokens import (
    Role,
    TokenClaims,
    TokenError,
    TokenFormat,
    generate_key,
    issue_token,
    issue_token_set,
    parse_key,
    verify_token,
)

TS = 1700000000000
ECB_KEY = b"0123456789abcdef"
CBC_KEY = b"0123456789abcdefghijklmnopqrstuv"
CBC_IV = b"AbCdEfGh12345678"
V2_KEY = bytes(range(32))
V2_NONCE = bytes(range(100, 112))
REALM = "example.com"

ECB_LITERAL = "8e34510ed22d660d45c2aad4c4a74d154e20e848bdfb7e23e553861e9b3baf42"
CBC_LITERAL = (
    "D0A7DC25E486AF728B4815F6613D6B2F1B84247BDFAB5EAB75A74FDC626B0C5D"
    "AbCdEfGh12345678"
    "E0B5C78E58785DEC2A0E42000F3D651900534B92B1747346B61CEA15E2CA43A9"
    "FE8D18FA403B520E460AEB1B994E7741"
)
V2_LITERAL = (
    "Ag5N7I5kZWZnaGlqa2xtbm953Umk_7t4jleolDENIBi8Hz8TpWbe9mYW5cSKzdIYaC3a0-_gZhsXG1ohOjFBZR4Z"
    "0WJPIAvlR2rOv_eNwM4fxRBe3lYDV8O5QIi1nhkUPUYAAeUHoi7SYoz6mns-v1h0"
)
KEYS: dict[TokenFormat, bytes] = {"ecb": ECB_KEY, "cbc": CBC_KEY, "v2": V2_KEY}
FORMATS: tuple[TokenFormat, ...] = get_args(TokenFormat)


def _aes_encrypt(key: bytes, mode: modes.ECB | modes.CBC, data: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), mode).encryptor()
    return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()


def _hkdf(key: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


def _b64u_decode(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _b64u_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _v2_expected(identity: str, role: str, realm: str, iat: int, exp: int, jti: str) -> str:
    plain = json.dumps({"sub": identity, "iat": iat, "exp": exp, "jti": jti}, separators=(",", ":"))
    aad = b"softphone-anon-v2|" + realm.encode() + b"|" + role.encode()
    sealed = AESGCM(_hkdf(V2_KEY, b"softphone-anon-v2 aead", 32)).encrypt(
        V2_NONCE, plain.encode(), aad
    )
    key_id = _hkdf(V2_KEY, b"softphone-anon-v2 key-id", 32)[:4]
    return _b64u_encode(b"\x02" + key_id + V2_NONCE + sealed)


def _v2(ttl: int = 60) -> str:
    return issue_token(
        "v2",
        V2_KEY,
        REALM,
        "to",
        "sip:bob@example.com",
        issued_at_ms=TS + 999,
        binding="fixed-jti",
        nonce=V2_NONCE,
        ttl=ttl,
    )


def _reason(fmt: TokenFormat, token: str, role: Role = "to", realm: str = REALM) -> str:
    with pytest.raises(TokenError) as info:
        verify_token(fmt, KEYS[fmt], realm, role, token)
    assert str(info.value) == info.value.reason  # the message never carries the token
    return info.value.reason


# --- legacy ecb ---------------------------------------------------------------------------------


def test_ecb_known_answer() -> None:
    expected = _aes_encrypt(ECB_KEY, modes.ECB(), b"alice@example.com;1700000000000").hex()
    token = issue_token("ecb", ECB_KEY, REALM, "account", "alice@example.com", issued_at_ms=TS)
    assert token == expected == ECB_LITERAL


@pytest.mark.parametrize("token", [ECB_LITERAL, ECB_LITERAL.upper()])
def test_ecb_verify_accepts_either_case(token: str) -> None:
    claims = verify_token("ecb", ECB_KEY, REALM, "account", token)
    assert claims == TokenClaims("alice@example.com", 1700000000.0, None, None)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (ECB_LITERAL[:-2], "bad_encoding"),  # truncated mid-block
        (ECB_LITERAL[:32], "bad_padding"),  # truncated by a whole block
        ("zz" + ECB_LITERAL[2:], "bad_encoding"),
        (" " + ECB_LITERAL[1:], "bad_encoding"),  # bytes.fromhex alone would skip spaces
        ("", "empty"),
        ("0" * 5000, "too_long"),
    ],
)
def test_ecb_rejects(token: str, reason: str) -> None:
    assert _reason("ecb", token) == reason


def test_ecb_wrong_key_fails() -> None:
    with pytest.raises(TokenError):
        verify_token("ecb", b"fedcba9876543210", REALM, "account", ECB_LITERAL)


def test_ecb_rejects_malformed_plaintext() -> None:
    bad = [b"alice@example.com;" + ts for ts in (b"+1700", b"1_700", b"\xd9\xa3", b"", b"12 ")]
    for plain in [*bad, b"no separator", b";1700000000000", b"\xff;1700000000000"]:
        token = _aes_encrypt(ECB_KEY, modes.ECB(), plain).hex()
        assert _reason("ecb", token) == "bad_plaintext"


def test_ecb_block_splicing_is_undetectable() -> None:
    # Documents kandy.md 5.4 weakness 1: the last block of the KAT is "m;1700000000000" + padding,
    # a valid token on its own. Only v2 prevents this.
    claims = verify_token("ecb", ECB_KEY, REALM, "account", ECB_LITERAL[32:])
    assert claims.identity == "m"


# --- legacy cbc ---------------------------------------------------------------------------------


def test_cbc_known_answer() -> None:
    ct = _aes_encrypt(CBC_KEY, modes.CBC(CBC_IV), b"sip:alice@example.com;x-ts=1700000000000")
    ivct = CBC_IV + ct.hex().upper().encode()
    expected = hmac.new(CBC_KEY, ivct, hashlib.sha256).hexdigest().upper() + ivct.decode()
    token = issue_token(
        "cbc", CBC_KEY, REALM, "from", "sip:alice@example.com", issued_at_ms=TS, iv=CBC_IV
    )
    assert token == expected == CBC_LITERAL
    assert token[64:80] == CBC_IV.decode()


def test_cbc_verify_accepts_lower_case_hex_parts() -> None:
    lowered = CBC_LITERAL[:64].lower() + CBC_LITERAL[64:80] + CBC_LITERAL[80:].lower()
    for token in (CBC_LITERAL, lowered):
        claims = verify_token("cbc", CBC_KEY, REALM, "from", token)
        assert claims == TokenClaims("sip:alice@example.com", 1700000000.0, None, None)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (CBC_LITERAL[:-2], "bad_encoding"),
        (CBC_LITERAL[:80], "bad_encoding"),
        (CBC_LITERAL[:60], "bad_encoding"),
        ("0" + CBC_LITERAL[1:], "bad_mac"),
        (CBC_LITERAL[:64] + CBC_LITERAL[64:80].swapcase() + CBC_LITERAL[80:], "bad_mac"),
        (CBC_LITERAL[:-1] + "0", "bad_mac"),
        (CBC_LITERAL[:64] + "AbCdEfGh1234567!" + CBC_LITERAL[80:], "bad_encoding"),
        ("G" + CBC_LITERAL[1:], "bad_encoding"),
        ("garbage", "bad_encoding"),
    ],
)
def test_cbc_rejects(token: str, reason: str) -> None:
    assert _reason("cbc", token, role="from") == reason


def test_cbc_wrong_key_fails_mac() -> None:
    with pytest.raises(TokenError) as info:
        verify_token("cbc", CBC_KEY[::-1], REALM, "from", CBC_LITERAL)
    assert info.value.reason == "bad_mac"


def test_cbc_random_iv_is_alphanumeric() -> None:
    token = issue_token("cbc", CBC_KEY, REALM, "to", "sip:x@y", issued_at_ms=TS)
    assert token[64:80].isalnum() and token[64:80].isascii()
    assert verify_token("cbc", CBC_KEY, REALM, "to", token).identity == "sip:x@y"


# --- v2 -----------------------------------------------------------------------------------------


def test_v2_known_answer_and_round_trip() -> None:
    expected = _v2_expected("sip:bob@example.com", "to", REALM, 1700000000, 1700000060, "fixed-jti")
    token = _v2()
    assert token == expected == V2_LITERAL
    claims = verify_token("v2", V2_KEY, REALM, "to", token)
    assert claims == TokenClaims("sip:bob@example.com", 1700000000.0, 1700000060.0, "fixed-jti")


def test_v2_decrypts_with_independent_key_and_aad() -> None:
    raw = _b64u_decode(_v2(ttl=30))
    assert raw[0] == 2
    assert raw[1:5] == _hkdf(V2_KEY, b"softphone-anon-v2 key-id", 4)
    assert raw[5:17] == V2_NONCE
    aead = AESGCM(_hkdf(V2_KEY, b"softphone-anon-v2 aead", 32))
    plain = aead.decrypt(raw[5:17], raw[17:], b"softphone-anon-v2|example.com|to")
    assert b" " not in plain  # compact JSON
    assert json.loads(plain) == {
        "sub": "sip:bob@example.com",
        "iat": 1700000000,
        "exp": 1700000030,
        "jti": "fixed-jti",
    }


def test_v2_any_tampered_byte_fails() -> None:
    raw = _b64u_decode(V2_LITERAL)
    for i in range(len(raw)):
        for flip in (0x01, 0x80):
            bad = raw[:i] + bytes([raw[i] ^ flip]) + raw[i + 1 :]
            _reason("v2", _b64u_encode(bad))
    assert _reason("v2", _b64u_encode(raw[:-1])) == "bad_tag"
    assert _reason("v2", _b64u_encode(raw + b"\x00")) == "bad_tag"
    assert _reason("v2", _b64u_encode(raw[:20])) == "too_short"
    assert _reason("v2", _b64u_encode(b"\x01" + raw[1:])) == "bad_version"


@pytest.mark.parametrize("role", ["account", "from"])
def test_v2_role_swap_fails(role: Role) -> None:
    assert _reason("v2", V2_LITERAL, role=role) == "bad_tag"


@pytest.mark.parametrize("realm", ["example.org", "Example.com", "", "example.com|to"])
def test_v2_realm_swap_fails(realm: str) -> None:
    assert _reason("v2", V2_LITERAL, realm=realm) == "bad_tag"


def test_v2_unencodable_realm_is_a_token_error() -> None:
    assert _reason("v2", V2_LITERAL, realm="\ud800") == "bad_realm"


def test_v2_different_key_fails_on_key_id() -> None:
    with pytest.raises(TokenError) as info:
        verify_token("v2", bytes(32), REALM, "to", V2_LITERAL)
    assert info.value.reason == "wrong_key"


def test_v2_rejects_non_canonical_base64() -> None:
    # When the byte count is not a multiple of 3 the last char carries unused low bits; flipping
    # one yields a different string for the same bytes, which would dodge a token-string cache.
    for identity in ("sip:bo@example.com", "sip:b@example.com"):
        token = issue_token(
            "v2", V2_KEY, REALM, "to", identity, issued_at_ms=TS, binding="fixed-jti"
        )
        assert len(token) % 4 in (2, 3)
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        twin = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 0x01]
        assert _b64u_decode(twin) == _b64u_decode(token)
        assert verify_token("v2", V2_KEY, REALM, "to", token).identity == identity
        assert _reason("v2", twin) == "bad_encoding"
    for bad in (V2_LITERAL + "=", V2_LITERAL.replace("-", "+"), V2_LITERAL + "A", "A"):
        assert _reason("v2", bad) == "bad_encoding"


def test_v2_verify_ignores_the_clock() -> None:
    token = issue_token("v2", V2_KEY, REALM, "account", "a@b", issued_at_ms=0, ttl=1)
    claims = verify_token("v2", V2_KEY, REALM, "account", token)
    assert (claims.issued_at, claims.expires_at) == (0.0, 1.0)
    assert claims.binding  # generated when not given


def test_v2_rejects_bad_claims_even_if_authentic() -> None:
    aead = AESGCM(_hkdf(V2_KEY, b"softphone-anon-v2 aead", 32))
    head = b"\x02" + _hkdf(V2_KEY, b"softphone-anon-v2 key-id", 4) + V2_NONCE
    aad = b"softphone-anon-v2|example.com|to"
    cases = {
        b'{"sub":"a","iat":10,"exp":5,"jti":"j"}': "bad_claims",
        b'{"sub":"","iat":1,"exp":5,"jti":"j"}': "bad_claims",
        b'{"sub":"a","iat":1,"exp":5,"jti":"j","x":1}': "bad_plaintext",
        b'{"sub":"a","iat":"1","exp":5,"jti":"j"}': "bad_plaintext",
        b"not json": "bad_plaintext",
    }
    for plain, reason in cases.items():
        token = _b64u_encode(head + aead.encrypt(V2_NONCE, plain, aad))
        assert _reason("v2", token) == reason


# --- sets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_set(fmt: TokenFormat) -> None:
    out = issue_token_set(
        fmt,
        KEYS[fmt],
        REALM,
        account="alice@example.com",
        caller="sip:alice@example.com",
        callee="bob@example.com",
        now=1700000000.25,
    )
    assert set(out) == {"realm", "accountToken", "fromToken", "toToken", "caller", "callee"}
    assert (out["realm"], out["caller"], out["callee"]) == (
        REALM,
        "sip:alice@example.com",
        "bob@example.com",
    )
    expected = {
        "accountToken": ("account", "alice@example.com"),
        "fromToken": ("from", "sip:alice@example.com"),
        "toToken": ("to", "bob@example.com"),
    }
    claims = []
    for name, (role, identity) in expected.items():
        c = verify_token(fmt, KEYS[fmt], REALM, role, out[name])  # type: ignore[arg-type]
        assert c.identity == identity
        claims.append(c)
    assert {c.issued_at for c in claims} == {1700000000.25 if fmt != "v2" else 1700000000.0}
    if fmt == "cbc":  # Kandy-compatible: one IV for the set
        assert len({out[n][64:80] for n in expected}) == 1
    if fmt == "v2":
        assert len({c.binding for c in claims}) == 1 and claims[0].binding
        assert {c.expires_at for c in claims} == {1700000060.0}
        assert len({_b64u_decode(out[n])[5:17] for n in expected}) == 3  # fresh nonces
        with pytest.raises(TokenError):
            verify_token(fmt, KEYS[fmt], REALM, "to", out["fromToken"])


def test_v2_sets_get_distinct_bindings() -> None:
    sets = [issue_token_set("v2", V2_KEY, REALM, account="a", caller="b", callee="c") for _ in "ab"]
    jtis = {verify_token("v2", V2_KEY, REALM, "to", s["toToken"]).binding for s in sets}
    assert len(jtis) == 2


# --- keys ---------------------------------------------------------------------------------------


def test_parse_key_legacy() -> None:
    assert parse_key("ecb", "0123456789abcdef\n") == ECB_KEY
    assert parse_key("cbc", b"  0123456789abcdefghijklmnopqrstuv\r\n") == CBC_KEY
    cases: list[tuple[TokenFormat, str]] = [
        ("ecb", "0123456789abcde"),
        ("cbc", "0123456789abcdef"),
        ("ecb", "é" * 16),
        ("ecb", "0123456789abcd\x00f"),
    ]
    for fmt, bad in cases:
        with pytest.raises(ValueError) as info:
            parse_key(fmt, bad)
        assert bad not in str(info.value)


def test_parse_key_v2_encodings() -> None:
    forms: list[str | bytes] = [
        V2_KEY.hex() + "\n",
        V2_KEY.hex().upper(),
        base64.b64encode(V2_KEY).decode(),
        base64.urlsafe_b64encode(V2_KEY).decode().rstrip("="),
        V2_KEY,
        V2_KEY.hex().encode(),
    ]
    for form in forms:
        assert parse_key("v2", form) == V2_KEY
    secret = "g" * 64
    bads: list[str | bytes] = [secret, V2_KEY.hex()[:-2], "A" * 42, "A" * 44, "", b"\xff" * 64]
    for bad in [*bads, bytes(31), "*" * 43]:
        with pytest.raises(ValueError) as info:
            parse_key("v2", bad)
        assert secret not in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_generate_key_parses(fmt: TokenFormat) -> None:
    text = generate_key(fmt)
    assert text != generate_key(fmt)
    assert len(parse_key(fmt, text + "\n")) == {"ecb": 16, "cbc": 32, "v2": 32}[fmt]


def test_issue_rejects_misuse() -> None:
    with pytest.raises(ValueError):
        issue_token("ecb", CBC_KEY, REALM, "to", "x", issued_at_ms=TS)
    with pytest.raises(ValueError):
        issue_token("cbc", CBC_KEY, REALM, "to", "x", issued_at_ms=TS, iv=b"short")
    with pytest.raises(ValueError):
        issue_token("ecb", ECB_KEY, REALM, "to", "x", issued_at_ms=TS, nonce=V2_NONCE)
    with pytest.raises(ValueError):
        issue_token("v2", V2_KEY, REALM, "callee", "x", issued_at_ms=TS)  # type: ignore[arg-type]


# --- robustness ---------------------------------------------------------------------------------

_hex = st.text(alphabet="0123456789abcdefABCDEF", max_size=200)


def _v2_framed(body: bytes) -> str:
    return _b64u_encode(b"\x02" + _hkdf(V2_KEY, b"softphone-anon-v2 key-id", 4) + body)


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    role=st.sampled_from(get_args(Role)),
    token=st.one_of(
        st.text(max_size=300),
        _hex,
        st.builds(
            lambda m, iv, c: m + iv + c, _hex, st.text("AbC0z9", min_size=16, max_size=16), _hex
        ),
        st.binary(max_size=200).map(_b64u_encode),
        st.binary(max_size=200).map(_v2_framed),
    ),
    realm=st.text(max_size=20),
)
def test_verify_random_input_raises_only_token_error(
    fmt: TokenFormat, role: Role, token: str, realm: str
) -> None:
    with contextlib.suppress(TokenError):
        verify_token(fmt, KEYS[fmt], realm, role, token)
