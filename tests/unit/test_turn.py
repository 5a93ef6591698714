"""TURN REST API credentials; expected values are recomputed here with hmac/hashlib/base64."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from softphone.server.turn import TurnCredentials, load_secret, mint_turn_credentials


def test_known_answer() -> None:
    creds = mint_turn_credentials(b"s3cret", ttl=3600, user="alice", now=1700000000)
    tag = hmac.new(b"s3cret", b"alice", hashlib.sha256).digest()
    username = "1700003600:" + base64.urlsafe_b64encode(tag).decode()[:16]
    password = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest())
    assert creds == TurnCredentials(username, password.decode(), 3600, 1700003600)
    assert creds == TurnCredentials(
        username="1700003600:dlVCrx8dWHvGDCGN",
        password="zd2C2Mnz1nHRltrn9XS2Ybdojws=",
        ttl=3600,
        expires_at=1700003600,
    )


def test_opaque_id_is_stable_per_user_and_hides_the_name() -> None:
    a1 = mint_turn_credentials(b"s3cret", ttl=60, user="alice", now=1)
    a2 = mint_turn_credentials(b"s3cret", ttl=600, user="alice", now=1000.9)
    bob = mint_turn_credentials(b"s3cret", ttl=60, user="bob", now=1)
    opaque = a1.username.split(":", 1)[1]
    assert a2.username == f"1600:{opaque}"  # int(now) truncates
    assert bob.username.split(":", 1)[1] != opaque
    assert "alice" not in a1.username and len(opaque) == 16
    assert a1.username.count(":") == 1
    other = mint_turn_credentials(b"other", ttl=60, user="alice", now=1)
    assert other.username != a1.username and other.password != a1.password


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        mint_turn_credentials(b"", ttl=60, user="alice")
    with pytest.raises(ValueError):
        mint_turn_credentials(b"s3cret", ttl=0, user="alice")


def test_default_clock() -> None:
    import time

    before = int(time.time())
    creds = mint_turn_credentials(b"s3cret", ttl=60, user="alice")
    assert before + 60 <= creds.expires_at <= int(time.time()) + 60
    assert creds.username.startswith(f"{creds.expires_at}:")


def test_load_secret(tmp_path: Path) -> None:
    path = tmp_path / "turn.secret"
    path.write_bytes(b"  s3cret\n")
    assert load_secret(path) == b"s3cret"
    assert load_secret(str(path)) == b"s3cret"
    path.write_bytes(b" \n")
    with pytest.raises(ValueError, match=r"turn\.secret"):
        load_secret(path)
