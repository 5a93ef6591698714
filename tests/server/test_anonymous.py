"""Anonymous calls through the real server: regular mode, the three token formats, refusals;
and the ICE lookup before the call (`POST /v1/anonymous/ice-servers`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from softphone.config import Config, parse_config
from softphone.server.services import SERVICES
from softphone.server.tokens import (
    TokenFormat,
    generate_key,
    issue_token,
    issue_token_set,
    parse_key,
)
from tests.conftest import app_of
from tests.server.harness import SDP, Party

Start = Callable[[Config], Awaitable[TestClient[Any, Any]]]
FORMATS: tuple[TokenFormat, ...] = ("ecb", "cbc", "v2")
ICE = "/v1/anonymous/ice-servers"
TURN_SECRET = "turn-s3cret"
TURN_URL = "turn:127.0.0.1:3478?transport=udp"
STUN_URL = "stun:127.0.0.1:3478"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for fmt in FORMATS:
        material = generate_key(fmt)
        (tmp_path / f"{fmt}.key").write_text(material + "\n")
        keys[fmt] = parse_key(fmt, material)
    return keys


@pytest.fixture
async def server(start: Start, tmp_path: Path, keys: dict[str, bytes]) -> TestClient[Any, Any]:
    realms = "".join(
        f'[[realms]]\nname = "{fmt}-realm"\nformat = "{fmt}"\nkey_file = "{tmp_path}/{fmt}.key"\n'
        for fmt in FORMATS
    )
    (tmp_path / "turn.secret").write_text(TURN_SECRET + "\n")
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
resume_window = 2
[rate_limits]
anonymous_per_minute = 1000
login_per_minute = 1000
[ice]
stun_urls = ["{STUN_URL}"]
[turn]
urls = ["{TURN_URL}"]
secret_file = "{tmp_path}/turn.secret"
ttl = 600
[anonymous]
token_max_age = 60
clock_skew = 5
{realms}
[[realms]]
name = "desk-only"
format = "v2"
key_file = "{tmp_path}/v2.key"
accounts = ["desk"]
""")
    return await start(config)


def credentials(
    fmt: TokenFormat,
    key: bytes,
    *,
    account: str = "desk",
    caller: str = "guest",
    callee: str = "desk",
    realm: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    tokens = issue_token_set(
        fmt, key, realm or f"{fmt}-realm", account=account, caller=caller, callee=callee, now=now
    )
    return {
        "realm": tokens["realm"],
        "accountToken": tokens["accountToken"],
        "fromToken": tokens["fromToken"],
        "toToken": tokens["toToken"],
    }


async def anonymous_call(
    client: TestClient[Any, Any], body: dict[str, Any], expect: int = 201
) -> tuple[Party, dict[str, Any]]:
    guest = Party(client, "guest")
    _, made = await guest.request("POST", "/v1/anonymous/calls", {"sdp": SDP, **body}, expect)
    if expect == 201:
        guest.token = made["token"]
        guest.subscription = {"subscription_id": made["subscription_id"]}
    return guest, made


async def test_regular_anonymous_call(server: TestClient[Any, Any]) -> None:
    desk = await Party(server, "desk").online()
    guest, made = await anonymous_call(
        server, {"from": "guest", "to": "desk", "display_name": "A Guest"}
    )
    call = made["call"]
    assert call["anonymous"] is True and call["caller"] == "guest"
    assert made["channel"] == "/v1/notifications" and made["token"]
    await guest.connect()
    incoming = await desk.expect("call.incoming")
    assert incoming["call"]["anonymous"] is True
    assert incoming["call"]["display_name"] == "A Guest"
    await desk.act(call["id"], "answer", {"sdp": SDP})
    await guest.expect("call.answered")
    await guest.act(call["id"], "dtmf", {"digits": "42"})
    assert (await desk.expect("call.dtmf"))["digits"] == "42"
    await desk.act(call["id"], "end")
    assert (await guest.expect("call.ended"))["reason"] == "hangup"
    # The call-scoped channel and token end with the call.
    gone = await guest.expect("subscription.gone")
    assert (gone["reason"], gone["message"]) == ("call_ended", "call ended")
    assert guest.ws is not None
    await guest.ws.receive(timeout=5)
    assert guest.ws.close_code == 4000
    status, error = await guest.request("GET", f"/v1/calls/{call['id']}")
    assert status == 401 and error["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_token_call_each_format(
    server: TestClient[Any, Any], keys: dict[str, bytes], fmt: TokenFormat
) -> None:
    desk = await Party(server, "desk").online()
    creds = credentials(fmt, keys[fmt], caller="sip:guest@localhost", callee="sip:desk@localhost")
    guest, made = await anonymous_call(server, {"credentials": creds})
    # The callee is a local account (normalised); the caller is only a label, kept whole.
    assert made["call"]["callee"] == "desk" and made["call"]["caller"] == "guest@localhost"
    incoming = await desk.expect("call.incoming")
    assert incoming["call"]["display_name"] is None  # token mode ignores display names
    # The same token set never starts a second call.
    _, error = await anonymous_call(server, {"credentials": creds}, expect=403)
    assert error["error"]["code"] == "invalid_token"
    await guest.act(made["call"]["id"], "end")
    assert (await desk.expect("call.cancelled"))["reason"] == "cancelled"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_expired_and_future_tokens_are_refused(
    server: TestClient[Any, Any], keys: dict[str, bytes], fmt: TokenFormat
) -> None:
    await Party(server, "desk").online()
    for now, said in (
        (time.time() - 70, "expired (older than the server accepts; get new tokens)"),
        (time.time() + 30, "issued in the future (check the clocks)"),
    ):
        _, error = await anonymous_call(
            server, {"credentials": credentials(fmt, keys[fmt], now=now)}, expect=403
        )
        assert error["error"] == {
            "code": "invalid_token",
            "message": f"invalid or expired credentials: {said}",
        }
    # Within the skew allowance is fine.
    await anonymous_call(server, {"credentials": credentials(fmt, keys[fmt], now=time.time() - 63)})


@pytest.mark.parametrize("fmt", FORMATS)
async def test_identity_checks(
    server: TestClient[Any, Any], keys: dict[str, bytes], fmt: TokenFormat
) -> None:
    await Party(server, "desk").online()
    key = keys[fmt]
    cases: list[dict[str, Any]] = [
        # toToken names someone else than the requested callee
        {"credentials": credentials(fmt, key), "to": "alice"},
        # fromToken names someone else than the claimed caller
        {"credentials": credentials(fmt, key), "from": "mallory"},
        # account that does not exist
        {"credentials": credentials(fmt, key, account="nobody")},
    ]
    for body in cases:
        _, error = await anonymous_call(server, body, expect=403)
        assert error["error"]["code"] == "invalid_token", body


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mixed_token_sets_are_refused(
    server: TestClient[Any, Any], keys: dict[str, bytes], fmt: TokenFormat
) -> None:
    await Party(server, "desk").online()
    one = credentials(fmt, keys[fmt], now=time.time() - 2)
    two = credentials(fmt, keys[fmt], now=time.time() - 1)
    mixed = {**one, "toToken": two["toToken"]}
    _, error = await anonymous_call(server, {"credentials": mixed}, expect=403)
    assert error["error"]["code"] == "invalid_token"


async def test_forged_and_wrong_realm_tokens(
    server: TestClient[Any, Any], keys: dict[str, bytes]
) -> None:
    await Party(server, "desk").online()
    good = credentials("v2", keys["v2"])
    forged = {
        **good,
        "toToken": good["toToken"][:-2] + ("AA" if good["toToken"][-2:] != "AA" else "BB"),
    }
    wrong_realm = {**good, "realm": "cbc-realm"}
    unknown_realm = {**good, "realm": "nope"}
    other_key = credentials("v2", parse_key("v2", generate_key("v2")))
    swapped = {**good, "fromToken": good["toToken"], "toToken": good["fromToken"]}
    for creds in (forged, wrong_realm, unknown_realm, other_key, swapped):
        _, error = await anonymous_call(server, {"credentials": creds}, expect=403)
        assert error["error"]["code"] == "invalid_token"


async def test_realm_limited_to_its_accounts(
    server: TestClient[Any, Any], keys: dict[str, bytes], tmp_path: Path
) -> None:
    await Party(server, "desk").online()
    ok = credentials("v2", keys["v2"], realm="desk-only")
    await anonymous_call(server, {"credentials": ok})
    other = credentials("v2", keys["v2"], realm="desk-only", account="alice")
    _, error = await anonymous_call(server, {"credentials": other}, expect=403)
    assert error["error"]["code"] == "invalid_token"


async def test_only_accounts_allowing_anonymous_calls(
    server: TestClient[Any, Any], keys: dict[str, bytes]
) -> None:
    await Party(server, "bob").online()
    bodies: list[dict[str, Any]] = [
        {"from": "guest", "to": "bob"},
        {"from": "guest", "to": "nobody"},
        {"credentials": credentials("v2", keys["v2"], callee="bob")},
    ]
    for body in bodies:
        _, error = await anonymous_call(server, body, expect=403)
        assert error["error"]["code"] == "anonymous_not_allowed"
    # A refused token set was not used up: the same set to an allowed account works later.
    creds = credentials("v2", keys["v2"])
    _, error = await anonymous_call(server, {"credentials": creds}, expect=409)
    assert error["error"]["code"] == "user_unavailable"  # desk is not online yet
    await Party(server, "desk").online()
    await anonymous_call(server, {"credentials": creds})


async def test_a_guest_cannot_take_a_registered_users_name(
    server: TestClient[Any, Any], keys: dict[str, bytes]
) -> None:
    desk = await Party(server, "desk").online()
    for name in ("alice", "sip:alice@localhost"):
        _, error = await anonymous_call(server, {"from": name, "to": "desk"}, expect=403)
        assert error["error"]["code"] == "forbidden", name
        assert "registered user" in error["error"]["message"]
    # A realm's tokens vouch for the name: then it may be used.
    creds = credentials("v2", keys["v2"], caller="alice")
    _, made = await anonymous_call(server, {"credentials": creds})
    assert made["call"]["caller"] == "alice"
    assert (await desk.expect("call.incoming"))["call"]["caller"] == "alice"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_refused_token_says_which_check_failed_and_nothing_of_the_key(
    server: TestClient[Any, Any], keys: dict[str, bytes], fmt: TokenFormat
) -> None:
    await Party(server, "desk").online()
    key = keys[fmt]
    good = credentials(fmt, key)
    tampered = dict(good)
    token = tampered["fromToken"]
    tampered["fromToken"] = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"credentials": credentials(fmt, key, now=time.time() - 120)}, "expired"),
        ({"credentials": good, "to": "alice"}, "not for this callee"),
        ({"credentials": tampered}, "bad signature"),
    ]
    for body, said in cases:
        _, error = await anonymous_call(server, body, expect=403)
        message = error["error"]["message"]
        assert error["error"]["code"] == "invalid_token", body
        assert message.startswith(f"invalid or expired credentials: {said}"), message
        assert key.hex() not in message and "key" not in message
    await anonymous_call(server, {"credentials": good})  # the refusals did not use it up
    _, error = await anonymous_call(server, {"credentials": good}, expect=403)
    assert error["error"]["message"].startswith("invalid or expired credentials: replayed")


async def test_anonymous_party_receives_no_calls(server: TestClient[Any, Any]) -> None:
    desk = await Party(server, "desk").online()
    guest, made = await anonymous_call(server, {"from": "guest", "to": "desk"})
    await guest.connect()
    await desk.expect("call.incoming")
    # A real alice calling nobody else: the anonymous guest is not reached.
    alice = await Party(server, "alice").online()
    _, error = await alice.request("GET", f"/v1/calls/{made['call']['id']}", expect=403)
    assert error["error"]["code"] == "not_in_call"
    bob = await Party(server, "bob").online()
    _, call = await bob.make("alice")
    await alice.expect("call.incoming")
    await guest.nothing()
    await bob.act(call["id"], "end")


async def test_token_never_logged(
    server: TestClient[Any, Any], keys: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await Party(server, "desk").online()
    creds = credentials("cbc", keys["cbc"])
    await anonymous_call(server, {"credentials": creds})
    await anonymous_call(server, {"credentials": creds}, expect=403)  # replay: logged refusal
    assert "replayed" in caplog.text
    for value in (creds["accountToken"], creds["fromToken"], creds["toToken"]):
        assert value not in caplog.text and value[:20] not in caplog.text


# -- the ICE lookup before the call ----------------------------------------------------------


async def ice_lookup(
    client: TestClient[Any, Any], body: dict[str, Any], expect: int = 200
) -> dict[str, Any]:
    async with client.post(ICE, json=body) as response:
        payload: dict[str, Any] = await response.json()
        assert response.status == expect, payload
        if expect == 200:
            assert response.headers["Cache-Control"] == "no-store"
        return payload


def assert_turn_for(answer: dict[str, Any], label: str) -> None:
    """The answer's ICE servers: TURN (credentials minted for `label`), then STUN."""
    assert answer["ice_ttl"] == 600
    turn, stun = answer["ice_servers"]
    assert turn["urls"] == [TURN_URL] and stun == {"urls": [STUN_URL]}
    expiry, _, opaque = turn["username"].partition(":")
    assert abs(int(expiry) - (time.time() + 600)) < 5
    tag = hmac.new(TURN_SECRET.encode(), label.encode(), hashlib.sha256).digest()
    assert opaque == base64.urlsafe_b64encode(tag).decode()[:16]
    mac = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(mac).decode()


def live_state(client: TestClient[Any, Any]) -> tuple[int, int, int]:
    """Sessions, subscriptions and live calls the server holds."""
    services = app_of(client)[SERVICES]
    store = services.store
    sessions, subscriptions = list(store.sessions(0.0)), list(store.subscriptions(0.0))
    return len(sessions), len(subscriptions), services.calls.live_count


async def test_ice_lookup_regular_mode(server: TestClient[Any, Any]) -> None:
    before = live_state(server)
    # Nobody need be online: the lookup checks the callee's consent, not its devices.
    assert_turn_for(await ice_lookup(server, {"from": "guest-42", "to": "desk"}), "guest-42")
    assert_turn_for(await ice_lookup(server, {"to": "sip:desk@localhost"}), "anonymous")
    assert live_state(server) == before  # nothing was created
    # The call's own ICE servers are minted for the same label.
    await Party(server, "desk").online()
    _, made = await anonymous_call(server, {"from": "guest-42", "to": "desk"})
    assert_turn_for({**made, "ice_ttl": 600}, "guest-42")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_ice_lookup_token_mode_leaves_the_set_its_call(
    server: TestClient[Any, Any], keys: dict[str, bytes], fmt: TokenFormat
) -> None:
    desk = await Party(server, "desk").online()
    creds = credentials(fmt, keys[fmt], caller="sip:guest@localhost", callee="sip:desk@localhost")
    before = live_state(server)
    for _ in range(2):  # a lookup does not use the set up, not even a second one
        assert_turn_for(await ice_lookup(server, {"credentials": creds}), "guest@localhost")
    assert live_state(server) == before
    _, made = await anonymous_call(server, {"credentials": creds})
    assert made["call"]["caller"] == "guest@localhost"
    await desk.expect("call.incoming")
    # Once the set started its call, it is refused like a replayed call.
    for answer in (
        await ice_lookup(server, {"credentials": creds}, expect=403),
        (await anonymous_call(server, {"credentials": creds}, expect=403))[1],
    ):
        assert answer["error"] == {
            "code": "invalid_token",
            "message": "invalid or expired credentials: replayed (this token set was already "
            "used for a call)",
        }


async def test_ice_lookup_refuses_as_the_call_does(
    server: TestClient[Any, Any], keys: dict[str, bytes]
) -> None:
    """Every refusal is the call endpoint's own answer, word for word (so the lookup tells a
    caller nothing the call would not), and leaves nothing behind."""
    await Party(server, "bob").online()
    good = credentials("v2", keys["v2"])
    bodies: list[dict[str, Any]] = [
        {"from": "guest", "to": "bob"},  # callee refuses anonymous calls
        {"from": "guest", "to": "nobody"},  # no such account: looks the same
        {"from": "guest", "to": "sip:nobody@localhost"},
        {"credentials": credentials("v2", keys["v2"], callee="bob")},
        {"credentials": {**good, "realm": "nope"}},
        {"credentials": good, "to": "alice"},  # toToken names someone else
        {"credentials": good, "from": "mallory"},  # fromToken names someone else
        {"credentials": credentials("v2", keys["v2"], now=time.time() - 70)},  # expired
        {"credentials": credentials("v2", keys["v2"], realm="desk-only", account="alice")},
        {"from": "a b", "to": "desk"},  # not a label
        {"from": "", "to": "desk"},
        {"from": "guest"},  # no callee
    ]
    before = live_state(server)
    for body in bodies:
        async with server.post(ICE, json=body) as response:
            looked_up = (response.status, await response.json())
        async with server.post("/v1/anonymous/calls", json={**body, "sdp": SDP}) as response:
            called = (response.status, await response.json())
        assert looked_up == called, body
        assert looked_up[0] == (400 if looked_up[1]["error"]["code"] == "validation_error" else 403)
    assert live_state(server) == before


async def test_ice_lookup_tokens_never_logged(
    server: TestClient[Any, Any], keys: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    creds = credentials("v2", keys["v2"])
    await ice_lookup(server, {"credentials": creds})
    await ice_lookup(server, {"credentials": {**creds, "to": "x"}}, expect=400)
    await ice_lookup(server, {"credentials": {**creds, "realm": "nope"}}, expect=403)
    assert "unknown realm" in caplog.text  # the refusal was logged, without the tokens
    for value in (creds["accountToken"], creds["fromToken"], creds["toToken"]):
        assert value not in caplog.text and value[:20] not in caplog.text


def test_v2_token_for_one_role_is_not_another(keys: dict[str, bytes]) -> None:
    from softphone.server.tokens import TokenError, verify_token

    token = issue_token("v2", keys["v2"], "r", "to", "desk", issued_at_ms=int(time.time() * 1000))
    with pytest.raises(TokenError):
        verify_token("v2", keys["v2"], "r", "from", token)
