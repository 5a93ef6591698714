"""Property tests: random request bodies and websocket frames never get a 5xx or break the server.

Every refusal must be a JSON error whose code belongs to the protocol and whose HTTP status is
the one `HTTP_STATUS` gives that code; every acceptance is a 200/201. After each example the
server must still answer GET /v1/health and a legitimate device's websocket must still answer a
ping with a pong.

How the examples run: pytest-asyncio understands Hypothesis. An `async def` test decorated with
`@given` has its inner test wrapped so that each example runs to completion on the test's own
event loop, one after another. So one server, started by the function-scoped async fixture
`world`, serves every example of a test (a fresh one per test function), and the examples talk to
it over real loopback sockets. The function-scoped-fixture health check is suppressed for that
reason: sharing the server between examples is the point, and each example verifies it is still
healthy. Settings: `derandomize=True` (fixed seed: the same examples on every run),
`database=None` (nothing stored between runs, no .hypothesis directory), `deadline=None`
(loopback latency varies), and a bounded `max_examples` per test so the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from softphone.config import Config
from softphone.protocol.errors import HTTP_STATUS, ErrorCode
from softphone.protocol.frames import ClientFrames, ClientPing, ClientPong, Hello
from softphone.server.passwords import token_hash
from softphone.server.services import SERVICES
from tests.conftest import USERS, app_of
from tests.server.harness import PASSWORD, SDP, Party

Client = TestClient[Any, Any]
Start = Callable[[Config], Awaitable[Client]]


def fuzz_settings(max_examples: int, *, shrink: bool = True) -> settings:
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=phases,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _cheap_hash(password: str) -> str:
    """The server's own scrypt string format with the cheapest parameters (n=2, r=1, p=1)."""
    salt = b"fuzz-test-salt!!"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2, r=1, p=1, dklen=32)
    return f"scrypt$2$1$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


# -- the world the examples run in ---------------------------------------------------------


@dataclass
class World:
    client: Client
    tokens: dict[str, str | None]  # actor -> bearer token
    ids: dict[str, str]  # placeholder -> value (call ids, subscription id)
    watcher: Party  # a legitimate device that must keep answering pings
    target: Party  # the device whose socket the websocket fuzz writes to
    pings: int = 0


@pytest.fixture
async def world(start: Start, config: Config) -> World:
    client = await start(config)
    store = app_of(client)[SERVICES].store
    cheap = _cheap_hash(PASSWORD)
    for name in USERS:
        store.update_user(name, password_hash=cheap)
    alice, bob, carol, desk = (Party(client, u) for u in ("alice", "bob", "carol", "desk"))
    await asyncio.gather(*(p.online() for p in (alice, bob, carol, desk)))
    _, ringing = await alice.make("bob")
    await bob.act(ringing["id"], "ringing")
    _, connected = await alice.make("desk")
    await desk.act(connected["id"], "answer", {"sdp": SDP})
    _, anon = await Party(client, "guest").request(
        "POST", "/v1/anonymous/calls", {"from": "guest", "to": "desk", "sdp": SDP}, 201
    )
    tokens = {
        "alice": alice.token,
        "bob": bob.token,
        "desk": desk.token,
        "anonymous": anon["token"],
        "none": None,
        "garbage": "not-a-token",
    }
    ids = {
        "ringing": ringing["id"],
        "connected": connected["id"],
        "anonymous": anon["call"]["id"],
        "sub": alice.subscription["subscription_id"],
        "missing": "no-such-call",
    }
    return World(client, tokens, ids, watcher=carol, target=bob)


async def ping_pong(ws: aiohttp.ClientWebSocketResponse, marker: str) -> list[dict[str, Any]]:
    """Ping and wait for the matching pong; return the control frames that came before it."""
    await ws.send_json({"type": "ping", "id": marker})
    before: list[dict[str, Any]] = []
    while True:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        frame = json.loads(msg.data)
        if frame["type"] == "pong" and frame.get("id") == marker:
            return before
        if not frame["type"].startswith(("call.", "subscription.")):
            before.append(frame)


async def still_healthy(world: World) -> None:
    async with world.client.get("/v1/health") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"
    # Nothing so far escaped as an unhandled exception (even where no client saw a 500).
    assert app_of(world.client)[SERVICES].metrics.errors[ErrorCode.INTERNAL.value] == 0
    assert world.watcher.ws is not None
    world.pings += 1
    assert await ping_pong(world.watcher.ws, f"watch-{world.pings}") == []


def check_answer(status: int, payload: Any) -> None:
    assert status < 500, payload
    if status >= 400:
        code = ErrorCode(payload["error"]["code"])  # a protocol code, or ValueError
        assert HTTP_STATUS[code] == status, payload
        assert isinstance(payload["error"]["message"], str)
    else:
        assert status in (200, 201), payload
        assert isinstance(payload, dict)


# -- REST ----------------------------------------------------------------------------------

ACTIONS = ("ringing", "answer", "reject", "end", "update", "update-answer", "dtmf", "forward")
ENDPOINTS: list[tuple[str, str]] = [
    ("POST", "/v1/sessions"),
    ("POST", "/v1/subscriptions"),
    ("PUT", "/v1/subscriptions/{sub}"),
    ("POST", "/v1/calls"),
    ("POST", "/v1/anonymous/calls"),
    ("POST", "/v1/anonymous/ice-servers"),
    *(("POST", f"/v1/calls/{{call}}/{action}") for action in ACTIONS),
]
KNOWN_KEYS = (
    "username",
    "password",
    "services",
    "force_logout",
    "expires",
    "to",
    "from",
    "sdp",
    "media",
    "display_name",
    "digits",
    "duration_ms",
    "credentials",
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Values that make a field plausible, so some requests get past validation to the handlers.
plausible = st.one_of(
    st.sampled_from(
        [
            SDP,
            "v=0",
            "alice",
            "bob",
            "carol",
            "desk",
            "sip:desk@localhost",
            "nobody",
            PASSWORD,
            "guest",
            "1#",
            "ABCD*",
            ["call"],
            [],
            60,
            100,
            3600,
            86400,
            True,
            False,
            {"audio": True, "video": True},
            {},
            "",
            2**64,
        ]
    ),
    json_values,
)
request_dicts = st.dictionaries(
    st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=10)), plausible, max_size=6
)
credential_dicts = st.fixed_dictionaries(
    {
        "credentials": st.fixed_dictionaries(
            {}, optional={k: plausible for k in ("realm", "accountToken", "fromToken", "toToken")}
        )
    },
    optional={"to": plausible, "from": plausible, "sdp": plausible},
)
bodies_from_values = json_values.map(lambda v: json.dumps(v).encode())
bodies_from_dicts = st.one_of(request_dicts, credential_dicts).map(lambda v: json.dumps(v).encode())


@st.composite
def spliced(draw: st.DrawFn, utf8_only: bool) -> bytes:
    """A plausible JSON body with random bytes (or random text) inserted somewhere."""
    base = draw(bodies_from_dicts)
    noise = (
        draw(st.text(max_size=12)).encode()
        if utf8_only
        else draw(st.binary(min_size=1, max_size=12))
    )
    cut = draw(st.integers(0, len(base)))
    return base[:cut] + noise + base[cut:]


raw_utf8 = st.one_of(st.text(max_size=200).map(str.encode), spliced(utf8_only=True))
raw_any = st.one_of(st.binary(max_size=200), spliced(utf8_only=False))
# The parties' own tokens come up more often than no token or a bad one.
actors = st.sampled_from(["alice", "alice", "bob", "bob", "desk", "anonymous", "none", "garbage"])
calls = st.sampled_from(["ringing", "connected", "anonymous", "missing"])


async def post(world: World, endpoint: tuple[str, str], actor: str, call: str, body: bytes) -> None:
    method, template = endpoint
    path = template.format(call=world.ids[call], sub=world.ids["sub"])
    token = world.tokens[actor]
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with world.client.request(method, path, data=body, headers=headers) as response:
        assert response.content_type == "application/json", response.content_type
        payload = await response.json()
        check_answer(response.status, payload)
        event(f"{response.status} {payload['error']['code'] if 'error' in payload else ''}")
    await still_healthy(world)


@fuzz_settings(120)
@given(endpoint=st.sampled_from(ENDPOINTS), actor=actors, call=calls, body=bodies_from_values)
async def test_random_json_values(
    world: World, endpoint: tuple[str, str], actor: str, call: str, body: bytes
) -> None:
    await post(world, endpoint, actor, call, body)


FIELDS: dict[str, tuple[str, ...]] = {
    "/v1/sessions": ("username", "password"),
    "/v1/subscriptions": ("services", "force_logout", "expires"),
    "/v1/subscriptions/{sub}": ("expires",),
    "/v1/calls": ("to", "sdp", "media", "display_name"),
    "/v1/anonymous/calls": ("to", "from", "sdp", "media", "display_name", "credentials"),
    "/v1/anonymous/ice-servers": ("to", "from", "credentials"),
    "/v1/calls/{call}/answer": ("sdp",),
    "/v1/calls/{call}/update": ("sdp",),
    "/v1/calls/{call}/update-answer": ("sdp",),
    "/v1/calls/{call}/dtmf": ("digits", "duration_ms"),
    "/v1/calls/{call}/forward": ("to",),
}


@st.composite
def endpoint_and_dict(draw: st.DrawFn) -> tuple[tuple[str, str], bytes]:
    """An endpoint and a JSON object for it: its own fields (any subset, plausible values),
    sometimes other known or unknown keys, sometimes any dict at all."""
    endpoint = draw(st.sampled_from(ENDPOINTS))
    own = FIELDS.get(endpoint[1], ())
    shaped = st.fixed_dictionaries({}, optional={k: plausible for k in own})
    body = draw(st.one_of(shaped, shaped, request_dicts, credential_dicts))
    if draw(st.integers(0, 4)) == 0:
        body[draw(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6)))] = draw(plausible)
    return endpoint, json.dumps(body).encode()


@fuzz_settings(150)
@given(request=endpoint_and_dict(), actor=actors, call=calls)
async def test_random_request_dicts(
    world: World, request: tuple[tuple[str, str], bytes], actor: str, call: str
) -> None:
    await post(world, request[0], actor, call, request[1])


@fuzz_settings(100)
@given(endpoint=st.sampled_from(ENDPOINTS), actor=actors, call=calls, body=raw_utf8)
async def test_random_utf8_bytes(
    world: World, endpoint: tuple[str, str], actor: str, call: str, body: bytes
) -> None:
    await post(world, endpoint, actor, call, body)


@fuzz_settings(60, shrink=False)
@example(
    endpoint=("POST", "/v1/sessions"),
    actor="none",
    call="missing",
    body=b'{"username": "\xff", "password": "x"}',
)
@given(endpoint=st.sampled_from(ENDPOINTS), actor=actors, call=calls, body=raw_any)
async def test_random_bytes(
    world: World, endpoint: tuple[str, str], actor: str, call: str, body: bytes
) -> None:
    await post(world, endpoint, actor, call, body)


# -- websocket -----------------------------------------------------------------------------

_decoder = msgspec.json.Decoder(ClientFrames)

frame_dicts = st.fixed_dictionaries(
    {
        "type": st.one_of(
            st.sampled_from(["hello", "ping", "pong", "welcome", "error", ""]), json_values
        )
    },
    optional={
        "id": plausible,
        "subscription_id": plausible,
        "token": plausible,
        "last_seq": st.one_of(st.integers(), json_values),
        "extra": json_values,
    },
)
text_frames = st.one_of(
    st.text(max_size=300), json_values.map(json.dumps), frame_dicts.map(json.dumps)
)
frames = st.one_of(text_frames, st.binary(max_size=300))


def expected_replies(frame: str | bytes) -> list[tuple[str, str | None]]:
    """(type, code or pong id) of the control frames the protocol says answer `frame`."""
    if isinstance(frame, bytes):
        return [("error", "validation_error")]
    try:
        decoded = _decoder.decode(frame)
    except msgspec.DecodeError:
        return [("error", "validation_error")]
    if isinstance(decoded, ClientPing):
        return [("pong", decoded.id)]
    if isinstance(decoded, Hello):
        return [("error", "wrong_state")]
    assert isinstance(decoded, ClientPong)
    return []


@fuzz_settings(150)
@given(frame=frames)
async def test_random_frames_after_hello(world: World, frame: str | bytes) -> None:
    ws = world.target.ws
    assert ws is not None
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)
    world.pings += 1
    replies = await ping_pong(ws, f"fuzz-{world.pings}")
    got = [(r["type"], r["id"] if r["type"] == "pong" else r["code"]) for r in replies]
    assert got == expected_replies(frame)
    await still_healthy(world)


@fuzz_settings(60)
@given(frame=frames, header=st.booleans())
async def test_random_first_frames(world: World, frame: str | bytes, header: bool) -> None:
    """Whatever a fresh socket sends first, it is refused with an error frame and a close (or,
    for a well-formed hello, welcomed); the server carries on."""
    target = world.target
    ws = await world.client.ws_connect(
        "/v1/notifications", headers=target.headers if header else {}
    )
    try:
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        msg = await ws.receive(timeout=5)
        if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "welcome":
            raise AssertionError(f"random first frame welcomed: {frame!r}")
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        error = json.loads(msg.data)
        assert error["type"] == "error"
        code = ErrorCode(error["code"])
        assert code in {
            ErrorCode.VALIDATION,
            ErrorCode.INVALID_JSON,
            ErrorCode.UNAUTHORIZED,
            ErrorCode.NOT_FOUND,
        }
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == (4002 if code is ErrorCode.UNAUTHORIZED else 4000)
    finally:
        await ws.close()
    await still_healthy(world)


@fuzz_settings(80)
@given(
    last_seq=st.one_of(st.none(), st.integers(-3, 4), st.integers()),
    token=st.one_of(st.none(), st.text(max_size=30)),
    header=st.booleans(),
)
async def test_random_hello_fields(
    world: World, last_seq: int | None, token: str | None, header: bool
) -> None:
    """A hello for a real subscription with random resume point and token field: welcome (and
    the replay, or resume_failed) with the header token; unauthorized with only a made-up one."""
    target = world.target
    assert target.token is not None
    sub = app_of(world.client)[SERVICES].hub.for_session(token_hash(target.token))
    assert sub is not None
    hello: dict[str, Any] = {"type": "hello", "subscription_id": sub.id}
    if last_seq is not None:
        hello["last_seq"] = last_seq
    if token is not None:
        hello["token"] = token
    ws = await world.client.ws_connect(
        "/v1/notifications", headers=target.headers if header else {}
    )
    try:
        await ws.send_json(hello)
        first = await ws.receive_json(timeout=5)
        if not header:
            assert (first["type"], first["code"]) == ("error", "unauthorized")
            assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4002
        else:
            seq = sub.seq
            resumable = last_seq is not None and 0 <= last_seq <= seq
            assert first == {
                "type": "welcome",
                "seq": seq,
                "subscription_id": sub.id,
                "resumed": resumable,
                "ping_interval": first["ping_interval"],
            }
            if resumable:
                assert last_seq is not None
                replay = [(await ws.receive_json(timeout=5))["seq"] for _ in range(seq - last_seq)]
                assert replay == list(range(last_seq + 1, seq + 1))
            world.pings += 1
            control = await ping_pong(ws, f"hello-{world.pings}")
            assert [f["type"] for f in control] == (
                ["resume_failed"] if last_seq is not None and not resumable else []
            )
    finally:
        await ws.close()
    await still_healthy(world)
