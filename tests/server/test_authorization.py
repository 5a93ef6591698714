"""Authorization matrix: who may do what to a call, in which state, over real loopback sockets.

Every cell starts a fresh server and a fresh call from alice (two devices: a1 makes the call, a2
does not) to bob (two devices: b1 rings and answers, b2 never answers), then one actor tries one
action. The expected answer comes from `expected()` below, written from the protocol's rules
(docs/protocol.md §1, §3.3 and §5.2, §7.1), not read off the server code, checked in this order:

1. who are you: no or unknown token -> 401 unauthorized, expired session -> 401 session_expired;
2. anonymous parties may act on their own call only (403 not_in_call), and never forward
   (403 anonymous_not_allowed);
3. are you in this call: another user -> 403 not_in_call. Only the calling device acts for the
   caller, and after the answer only the answering device for the callee, so the users' other
   devices get 403 not_in_call (they may still read the call: it is their user's);
4. may your side do this: callee-only actions (ringing, answer, reject, forward) by the caller
   -> 403 forbidden;
5. is it the right moment: 409 wrong_state, or 409 glare (Retry-After: 1) for a second re-offer.

A second, smaller matrix has an anonymous caller act on its own call (allowed: end, update,
update-answer, dtmf, reading; its token dies with the call). Accepted cells check the call's new
state; a refused request must leave the call exactly as it was: the stored row, what a
legitimate party reads, and the notification sequence of every device (no frame was published).

Two speed-ups keep the ~420 cells at a few tens of milliseconds each: the users' password hashes
are replaced by a cheap scrypt setting, and the server's housekeeping sweep is pushed out to an
hour so that an expired session stays known (the sweep would otherwise revoke it within a
second, after which it is merely unknown: 401 unauthorized).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import softphone.server.app as app_module
from softphone.config import Config, parse_config
from softphone.server.passwords import token_hash
from softphone.server.services import SERVICES, Services
from softphone.server.store import CallRow
from tests.conftest import USERS, app_of
from tests.server.expiry import expire_session
from tests.server.harness import PASSWORD, SDP, Party

Client = TestClient[Any, Any]
Start = Callable[[Config], Awaitable[Client]]

ANSWER_SDP = SDP + "a=answer\r\n"
REOFFER_SDP = SDP + "a=sendonly\r\n"


# -- the vocabulary -------------------------------------------------------------------------


class Actor(enum.StrEnum):
    CALLER = "caller"  # the device that made the call
    CALLEE = "callee"  # b1: rings, and is the answering device once answered
    CALLEE_OTHER = "callee-other-device"  # b2: same user, never answers
    CALLER_OTHER = "caller-other-device"  # a2: the caller's user, not the calling device
    OTHER_USER = "other-user"  # carol, online, not in the call
    ANON_OTHER = "anonymous-of-another-call"  # an anonymous caller of a call to desk
    EXPIRED = "expired-session"  # the caller's own session, expired just before the request
    NO_TOKEN = "no-token"
    GARBAGE = "garbage-token"


class Action(enum.StrEnum):
    RINGING = "ringing"
    ANSWER = "answer"
    REJECT = "reject"
    END = "end"
    UPDATE = "update"
    UPDATE_ANSWER = "update-answer"
    DTMF = "dtmf"
    FORWARD = "forward"
    GET = "get"


class State(enum.StrEnum):
    INITIATED = "Initiated"
    RINGING = "Ringing"
    CONNECTED = "Connected"
    CALLER_OFFER = "Connected+caller-reoffer"  # the caller sent an update, not answered yet
    CALLEE_OFFER = "Connected+callee-reoffer"  # the callee sent an update, not answered yet
    ENDED = "Ended"  # answered, then hung up by the caller


BASE_STATES = (State.INITIATED, State.RINGING, State.CONNECTED, State.ENDED)
OFFER_STATES = (State.CALLER_OFFER, State.CALLEE_OFFER)
# With a re-offer pending, the actions whose answer depends on it (plus reading).
OFFER_ACTIONS = (Action.UPDATE, Action.UPDATE_ANSWER, Action.DTMF, Action.END, Action.GET)
UNANSWERED = {State.INITIATED, State.RINGING}
CONNECTED = {State.CONNECTED, State.CALLER_OFFER, State.CALLEE_OFFER}
PENDING = {State.CALLER_OFFER: "caller", State.CALLEE_OFFER: "callee"}
CALLEE_ONLY = {Action.RINGING, Action.ANSWER, Action.REJECT, Action.FORWARD}

BODIES: dict[Action, dict[str, Any]] = {
    Action.ANSWER: {"sdp": ANSWER_SDP},
    Action.UPDATE: {"sdp": REOFFER_SDP},
    Action.UPDATE_ANSWER: {"sdp": ANSWER_SDP},
    Action.DTMF: {"digits": "1#", "duration_ms": 100},
    Action.FORWARD: {"to": "carol"},
}


# -- expected outcomes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    status: int
    code: str


@dataclass(frozen=True)
class Done:
    """Accepted (200); the call afterwards, as stored."""

    state: str
    pending: str | None = None
    end_reason: str | None = None
    callee: str | None = None  # None: still the callee the call was made to


Outcome = Refused | Done

UNAUTHORIZED = Refused(401, "unauthorized")
SESSION_EXPIRED = Refused(401, "session_expired")
NOT_IN_CALL = Refused(403, "not_in_call")
ANONYMOUS_NOT_ALLOWED = Refused(403, "anonymous_not_allowed")
FORBIDDEN = Refused(403, "forbidden")
WRONG_STATE = Refused(409, "wrong_state")
GLARE = Refused(409, "glare")


def unchanged(state: State) -> Done:
    base = {State.CALLER_OFFER: "Connected", State.CALLEE_OFFER: "Connected"}
    return Done(
        base.get(state, state.value),
        pending=PENDING.get(state),
        end_reason="hangup" if state is State.ENDED else None,
    )


def party_outcome(side: str, action: Action, state: State) -> Outcome:
    """What a legitimate party device (`side` is "caller" or "callee") gets."""
    pending = PENDING.get(state)
    if action is Action.GET:
        return unchanged(state)
    if action in CALLEE_ONLY:
        if side == "caller":
            return FORBIDDEN
        if state not in UNANSWERED:
            return WRONG_STATE
        return {
            Action.RINGING: Done("Ringing"),
            Action.ANSWER: Done("Connected"),
            Action.REJECT: Done("Ended", end_reason="rejected"),
            Action.FORWARD: Done("Initiated", callee="carol"),
        }[action]
    if action is Action.END:
        if state is State.ENDED:
            return WRONG_STATE
        if state in UNANSWERED:
            return Done("Ended", end_reason="cancelled" if side == "caller" else "rejected")
        return Done("Ended", end_reason="hangup")
    if state not in CONNECTED:
        return WRONG_STATE
    if action is Action.UPDATE:
        return GLARE if pending else Done("Connected", pending=side)
    if action is Action.UPDATE_ANSWER:
        return WRONG_STATE if pending in (None, side) else Done("Connected")
    assert action is Action.DTMF
    return Done("Connected", pending=pending)


def expected(actor: Actor, action: Action, state: State) -> Outcome:
    if actor in (Actor.NO_TOKEN, Actor.GARBAGE):
        return UNAUTHORIZED
    if actor is Actor.EXPIRED:
        return SESSION_EXPIRED
    if actor is Actor.ANON_OTHER:
        return ANONYMOUS_NOT_ALLOWED if action is Action.FORWARD else NOT_IN_CALL
    if actor is Actor.OTHER_USER:
        return NOT_IN_CALL
    if action is Action.GET and actor in (Actor.CALLER_OTHER, Actor.CALLEE_OTHER):
        return unchanged(state)  # a device of a party's user may read the call ...
    if actor is Actor.CALLER_OTHER:
        return NOT_IN_CALL  # ... but only the calling device acts for the caller,
    if actor is Actor.CALLEE_OTHER and state not in UNANSWERED:
        return NOT_IN_CALL  # and after the answer only the answering device for the callee.
    return party_outcome("caller" if actor is Actor.CALLER else "callee", action, state)


def expected_for_anonymous_caller(action: Action, state: State) -> Outcome:
    """An anonymous caller acting on its own call: a caller that may never forward, whose
    call-scoped token dies with the call."""
    if state is State.ENDED:
        return UNAUTHORIZED
    if action is Action.FORWARD:
        return ANONYMOUS_NOT_ALLOWED
    return party_outcome("caller", action, state)


# A few cells spelled out, so a slip in the rules above cannot hide behind itself.
SPOT_CHECKS: list[tuple[Actor, Action, State, Outcome]] = [
    (Actor.CALLER, Action.ANSWER, State.RINGING, FORBIDDEN),
    (Actor.CALLER, Action.RINGING, State.ENDED, FORBIDDEN),
    (Actor.CALLER, Action.END, State.INITIATED, Done("Ended", end_reason="cancelled")),
    (Actor.CALLEE, Action.END, State.RINGING, Done("Ended", end_reason="rejected")),
    (Actor.CALLEE_OTHER, Action.ANSWER, State.RINGING, Done("Connected")),
    (Actor.CALLEE_OTHER, Action.END, State.CONNECTED, NOT_IN_CALL),
    (Actor.CALLEE_OTHER, Action.GET, State.ENDED, Done("Ended", end_reason="hangup")),
    (Actor.CALLER_OTHER, Action.END, State.RINGING, NOT_IN_CALL),
    (Actor.CALLER_OTHER, Action.ANSWER, State.INITIATED, NOT_IN_CALL),
    (Actor.CALLER_OTHER, Action.GET, State.RINGING, Done("Ringing")),
    (Actor.CALLEE, Action.UPDATE_ANSWER, State.CALLER_OFFER, Done("Connected")),
    (Actor.CALLER, Action.UPDATE_ANSWER, State.CALLER_OFFER, WRONG_STATE),
    (Actor.CALLER, Action.UPDATE, State.CALLEE_OFFER, GLARE),
    (Actor.CALLEE, Action.DTMF, State.CALLEE_OFFER, Done("Connected", pending="callee")),
    (Actor.CALLEE, Action.FORWARD, State.INITIATED, Done("Initiated", callee="carol")),
    (Actor.ANON_OTHER, Action.FORWARD, State.RINGING, ANONYMOUS_NOT_ALLOWED),
    (Actor.ANON_OTHER, Action.GET, State.CONNECTED, NOT_IN_CALL),
    (Actor.OTHER_USER, Action.RINGING, State.INITIATED, NOT_IN_CALL),
    (Actor.EXPIRED, Action.GET, State.CONNECTED, SESSION_EXPIRED),
    (Actor.GARBAGE, Action.END, State.ENDED, UNAUTHORIZED),
]


def test_rules_agree_with_spot_checks() -> None:
    for actor, action, state, outcome in SPOT_CHECKS:
        assert expected(actor, action, state) == outcome, (actor, action, state)


# -- fixtures and helpers -------------------------------------------------------------------


def _cheap_hash(password: str) -> str:
    """The server's own scrypt string format with the cheapest parameters (n=2, r=1, p=1)."""
    salt = b"authz-test-salt!"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2, r=1, p=1, dklen=32)
    return f"scrypt$2$1$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


CHEAP_HASH = _cheap_hash(PASSWORD)


async def fast_server(start: Start, config: Config, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setattr(app_module, "SWEEP_INTERVAL", 3600.0)
    client = await start(config)
    store = app_of(client)[SERVICES].store
    for name in USERS:
        store.update_user(name, password_hash=CHEAP_HASH)
    return client


@pytest.fixture
async def client(start: Start, config: Config, monkeypatch: pytest.MonkeyPatch) -> Client:
    """Overrides the shared fixture: same server, cheap logins, no housekeeping sweep."""
    return await fast_server(start, config, monkeypatch)


def services_of(client: Client) -> Services:
    return app_of(client)[SERVICES]


def stored(client: Client, call_id: str) -> CallRow:
    call = services_of(client).store.get_call(call_id)
    assert call is not None
    return call


def seqs(client: Client, parties: list[Party]) -> dict[str, int]:
    """Notification sequence number of each device's subscription (bumped by any publish)."""
    hub = services_of(client).hub
    out = {}
    for p in parties:
        assert p.token is not None
        sub = hub.for_session(token_hash(p.token))
        if sub is not None:
            out[sub.id] = sub.seq
    return out


def expire(client: Client, party: Party) -> None:
    assert party.token is not None
    expire_session(app_of(client), token_hash(party.token), time.time() - 60)


async def anonymous_call(client: Client, label: str, to: str = "desk") -> tuple[Party, str]:
    """Place an anonymous call; return a Party holding its call-scoped token, and the call id."""
    anon = Party(client, label)
    _, body = await anon.request(
        "POST", "/v1/anonymous/calls", {"from": label, "to": to, "sdp": SDP}, 201
    )
    anon.token = body["token"]
    return anon, body["call"]["id"]


async def drive(caller: Party, callee: Party, call_id: str, state: State) -> None:
    """Take a freshly made call to `state` (callee is the device that rings and answers)."""
    if state is State.INITIATED:
        return
    await callee.act(call_id, "ringing")
    if state is State.RINGING:
        return
    await callee.act(call_id, "answer", {"sdp": ANSWER_SDP})
    if state is State.CALLER_OFFER:
        await caller.act(call_id, "update", {"sdp": REOFFER_SDP})
    elif state is State.CALLEE_OFFER:
        await callee.act(call_id, "update", {"sdp": REOFFER_SDP})
    elif state is State.ENDED:
        await caller.act(call_id, "end")


async def attempt(actor: Party, action: Action, call_id: str) -> tuple[int, Any, str | None]:
    if action is Action.GET:
        path, method, body = f"/v1/calls/{call_id}", "GET", None
    else:
        path, method, body = f"/v1/calls/{call_id}/{action.value}", "POST", BODIES.get(action)
    headers = dict(actor.headers)
    async with actor.client.request(method, path, json=body, headers=headers) as response:
        payload = await response.json()
        return response.status, payload, response.headers.get("Retry-After")


async def check(
    client: Client,
    actor: Party,
    action: Action,
    call_id: str,
    outcome: Outcome,
    reader: Party,
    devices: list[Party],
) -> None:
    """Run one cell: `reader` is a legitimate party used to read the call back."""
    before = stored(client, call_id)
    _, read_before = await reader.request("GET", f"/v1/calls/{call_id}", expect=200)
    seqs_before = seqs(client, devices)
    status, payload, retry_after = await attempt(actor, action, call_id)
    after = stored(client, call_id)
    if isinstance(outcome, Refused):
        assert (status, payload["error"]["code"]) == (outcome.status, outcome.code), payload
        assert payload["error"]["message"]
        assert retry_after == ("1" if outcome == GLARE else None)
        assert after == before
        assert seqs(client, devices) == seqs_before
        _, read_after = await reader.request("GET", f"/v1/calls/{call_id}", expect=200)
        assert read_after == read_before
    else:
        assert status == 200, payload
        assert payload["id"] == call_id and payload["state"] == outcome.state
        callee = outcome.callee or before.callee
        assert payload["callee"] == callee
        assert (after.state, after.pending_update, after.end_reason, after.callee) == (
            outcome.state,
            outcome.pending,
            outcome.end_reason,
            callee,
        )
        if action is Action.GET:
            # The offer is shown to ringing callee devices only (test_notifications checks that).
            def public(view: dict[str, Any]) -> dict[str, Any]:
                return {k: v for k, v in view.items() if k != "offer_sdp"}

            assert after == before and public(payload) == public(read_before)


# -- the matrix -----------------------------------------------------------------------------


def _matrix() -> list[Any]:
    cells = []
    for state in (*BASE_STATES, *OFFER_STATES):
        actions = list(Action) if state in BASE_STATES else OFFER_ACTIONS
        for action in actions:
            for actor in Actor:
                cells.append(
                    pytest.param(
                        actor, action, state, id=f"{state.value}-{action.value}-{actor.value}"
                    )
                )
    return cells


@dataclass
class World:
    alice: Party  # a1, the calling device
    b1: Party
    b2: Party
    carol: Party  # online: the other user, and the forward target
    call_id: str
    extra: list[Party]  # devices only some cells need (a2; desk with an anonymous call)


async def world(party: Callable[[str], Party], state: State, actor: Actor) -> World:
    """The call in `state`, plus only the extra devices this actor needs (keeps cells fast)."""
    alice, b1, b2, carol = (party(u) for u in ("alice", "bob", "bob", "carol"))
    extra = [party("alice")] if actor is Actor.CALLER_OTHER else []
    extra += [party("desk")] if actor is Actor.ANON_OTHER else []
    await asyncio.gather(*(p.online() for p in (alice, b1, b2, carol, *extra)))
    _, call = await alice.make("bob")
    await drive(alice, b1, call["id"], state)
    return World(alice, b1, b2, carol, call["id"], extra)


@pytest.mark.parametrize(("actor", "action", "state"), _matrix())
async def test_matrix(
    party: Callable[[str], Party], client: Client, actor: Actor, action: Action, state: State
) -> None:
    w = await world(party, state, actor)
    devices = [w.alice, w.b1, w.b2, w.carol, *w.extra]
    if actor is Actor.CALLER:
        who = w.alice
    elif actor is Actor.CALLER_OTHER:
        who = w.extra[0]
    elif actor is Actor.CALLEE:
        who = w.b1
    elif actor is Actor.CALLEE_OTHER:
        who = w.b2
    elif actor is Actor.OTHER_USER:
        who = w.carol
    elif actor is Actor.ANON_OTHER:
        who, _ = await anonymous_call(client, "guest")  # to desk, online in w.extra
        devices.append(who)
    elif actor is Actor.EXPIRED:
        who = w.alice
        expire(client, w.alice)
    else:
        who = Party(client, "nobody")
        who.token = None if actor is Actor.NO_TOKEN else "garbage-" + "x" * 40
    await check(
        client, who, action, w.call_id, expected(actor, action, state), reader=w.b1, devices=devices
    )


def _anonymous_matrix() -> list[Any]:
    return [
        pytest.param(action, state, id=f"{state.value}-{action.value}")
        for state in (*BASE_STATES, *OFFER_STATES)
        for action in Action
    ]


@pytest.mark.parametrize(("action", "state"), _anonymous_matrix())
async def test_anonymous_caller_on_its_own_call(
    party: Callable[[str], Party], client: Client, action: Action, state: State
) -> None:
    desk, carol = party("desk"), party("carol")
    await asyncio.gather(desk.online(), carol.online())
    anon, call_id = await anonymous_call(client, "guest")
    await drive(anon, desk, call_id, state)
    outcome = expected_for_anonymous_caller(action, state)
    await check(client, anon, action, call_id, outcome, reader=desk, devices=[desk, carol, anon])


# -- anonymous parties outside their call ---------------------------------------------------


def snapshot(client: Client) -> dict[str, Any]:
    services = services_of(client)
    store = services.store
    calls = {c.id: c for user in USERS for c in store.history(user, 10_000, 0)}
    return {
        "users": [(u.name, u.password_hash, u.allow_anonymous) for u in store.list_users()],
        "calls": calls,
        "sessions": sorted(s.token_hash for s in store.sessions(0.0)),
        "subscriptions": sorted(r.id for r in store.subscriptions(0.0)),
        "hub": (services.hub.subscription_count, services.calls.live_count),
    }


ANONYMOUS_REFUSALS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/calls", {"to": "bob", "sdp": SDP}),
    ("POST", "/v1/subscriptions", {"services": ["call"]}),
    ("GET", "/v1/history", None),
    ("DELETE", "/v1/sessions", None),
    ("POST", "/v1/calls/{own}/forward", {"to": "carol"}),
    ("DELETE", "/v1/subscriptions/{own_sub}", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    ANONYMOUS_REFUSALS,
    ids=[f"{m} {p}" for m, p, _ in ANONYMOUS_REFUSALS],
)
async def test_anonymous_token_refused_outside_its_call(
    party: Callable[[str], Party],
    client: Client,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    desk, bob, carol = party("desk"), party("bob"), party("carol")
    await asyncio.gather(desk.online(), bob.online(), carol.online())
    anon = Party(client, "guest")
    _, made = await anon.request(
        "POST", "/v1/anonymous/calls", {"from": "guest", "to": "desk", "sdp": SDP}, 201
    )
    anon.token = made["token"]
    path = path.format(own=made["call"]["id"], own_sub=made["subscription_id"])
    before = snapshot(client)
    status, payload = await anon.request(method, path, body)
    assert (status, payload["error"]["code"]) == (403, "anonymous_not_allowed"), payload
    assert snapshot(client) == before
    # The token still works on its own call.
    _, info = await anon.request("GET", f"/v1/calls/{made['call']['id']}", expect=200)
    assert info["state"] == "Initiated" and info["anonymous"] is True


async def test_anonymous_token_reads_and_refreshes_only_its_own_subscription(
    party: Callable[[str], Party], client: Client
) -> None:
    desk = await party("desk").online()
    anon = Party(client, "guest")
    _, made = await anon.request(
        "POST", "/v1/anonymous/calls", {"from": "guest", "to": "desk", "sdp": SDP}, 201
    )
    anon.token = made["token"]
    own = f"/v1/subscriptions/{made['subscription_id']}"
    _, read = await anon.request("GET", own, expect=200)
    assert read["subscription_id"] == made["subscription_id"] and read["services"] == ["call"]
    _, refreshed = await anon.request("PUT", own, {"expires": 600}, 200)
    assert refreshed["expires_at"] <= read["expires_at"]  # 600 s instead of the call's 12 h
    before = snapshot(client)
    others = f"/v1/subscriptions/{desk.subscription['subscription_id']}"
    for method, body in (("GET", None), ("PUT", {"expires": 600})):
        status, payload = await anon.request(method, others, body)
        assert (status, payload["error"]["code"]) == (404, "not_found"), payload
    assert snapshot(client) == before


@pytest.mark.parametrize("action", list(Action))
async def test_anonymous_party_cannot_touch_another_anonymous_call(
    party: Callable[[str], Party], client: Client, action: Action
) -> None:
    desk = await party("desk").online()
    first, first_id = await anonymous_call(client, "first")
    second, second_id = await anonymous_call(client, "second")
    outcome = ANONYMOUS_NOT_ALLOWED if action is Action.FORWARD else NOT_IN_CALL
    await check(
        client, first, action, second_id, outcome, reader=desk, devices=[desk, first, second]
    )
    await check(
        client, second, action, first_id, outcome, reader=desk, devices=[desk, first, second]
    )


async def test_anonymous_token_lists_only_its_own_call(
    party: Callable[[str], Party], client: Client
) -> None:
    desk, alice, bob = party("desk"), party("alice"), party("bob")
    await asyncio.gather(desk.online(), alice.online(), bob.online())
    await alice.make("bob")
    anon, call_id = await anonymous_call(client, "guest")
    await anonymous_call(client, "other")
    _, listed = await anon.request("GET", "/v1/calls", expect=200)
    assert [c["id"] for c in listed["calls"]] == [call_id]


async def test_unknown_call_id(party: Callable[[str], Party], client: Client) -> None:
    alice = await party("alice").online()
    for action in Action:
        status, payload, _ = await attempt(alice, action, "no-such-call")
        assert (status, payload["error"]["code"]) == (404, "not_found"), (action, payload)


async def test_expired_session_refused_everywhere(
    party: Callable[[str], Party], client: Client
) -> None:
    """Not only call actions: every authenticated route answers 401 session_expired."""
    alice, bob = party("alice"), party("bob")
    await asyncio.gather(alice.online(), bob.online())
    expire(client, alice)
    sub = alice.subscription["subscription_id"]
    for method, path, body in [
        ("POST", "/v1/calls", {"to": "bob", "sdp": SDP}),
        ("GET", "/v1/calls", None),
        ("GET", "/v1/history", None),
        ("POST", "/v1/subscriptions", {}),
        ("GET", f"/v1/subscriptions/{sub}", None),
        ("PUT", f"/v1/subscriptions/{sub}", {"expires": 600}),
        ("DELETE", f"/v1/subscriptions/{sub}", None),
        ("DELETE", "/v1/sessions", None),
    ]:
        status, payload = await alice.request(method, path, body)
        assert (status, payload["error"]["code"]) == (401, "session_expired"), (method, path)
    assert services_of(client).calls.live_count == 0


# -- the anonymous ICE lookup needs no token, and no token changes its answer -------------


async def test_ice_lookup_answers_alike_whoever_asks(
    party: Callable[[str], Party], client: Client
) -> None:
    """`POST /v1/anonymous/ice-servers` has auth `none`: no token, a garbage or expired one, a
    user's or an anonymous call's token all get the same answer, and a user's token does not
    open the lookup for an account that refuses anonymous calls (not even the user's own)."""
    alice, bob, desk = party("alice"), party("bob"), party("desk")
    await asyncio.gather(alice.online(), bob.online(), desk.online())
    anon, _ = await anonymous_call(client, "guest")
    stale = Party(client, "carol")
    await stale.login()
    expire(client, stale)
    garbage = Party(client, "mallory")
    garbage.token = "x" * 43
    askers = [Party(client, "nobody"), garbage, stale, alice, bob, anon]
    before = snapshot(client)
    for to, want in (("desk", 200), ("bob", 403), ("nobody", 403)):
        answers: list[Any] = []
        for asker in askers:
            status, payload = await asker.request(
                "POST", "/v1/anonymous/ice-servers", {"from": "guest", "to": to}
            )
            assert status == want, (asker.user, to, payload)
            # A 200's credentials may be minted a second apart: compare its shape.
            answers.append(payload if status != 200 else sorted(payload))
        assert all(a == answers[0] for a in answers), to
        if want == 403:
            assert answers[0]["error"]["code"] == "anonymous_not_allowed"
    assert snapshot(client) == before


# -- anonymous labels are not accounts (regressions) ---------------------------------------


def _limited_config(data_dir: Path) -> Config:
    return parse_config(f"""
[server]
data_dir = "{data_dir}"
max_live_calls_per_account = 1
[rate_limits]
login_per_minute = 1000
anonymous_per_minute = 1000
""")


async def test_anonymous_from_label_does_not_use_up_the_named_users_calls(
    start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await fast_server(start, _limited_config(tmp_path), monkeypatch)
    alice, bob, desk = Party(client, "alice"), Party(client, "bob"), Party(client, "desk")
    await asyncio.gather(alice.online(), bob.online(), desk.online())
    # Anyone may call desk anonymously with a label that reads like alice's (her own name is
    # refused: test_anonymous): only a label.
    await anonymous_call(client, "alice@example.org")
    status, payload = await alice.request("POST", "/v1/calls", {"to": "bob", "sdp": SDP})
    assert status == 201, payload
    # Nor is alice "busy" for callers because of it (bob's one call is with her, so try carol).
    carol = await Party(client, "carol").online()
    await alice.act(payload["id"], "end")
    await carol.make("alice")


async def test_anonymous_from_label_does_not_enter_the_named_users_history(
    party: Callable[[str], Party], client: Client
) -> None:
    alice, desk = party("alice"), party("desk")
    await asyncio.gather(alice.online(), desk.online())
    anon, call_id = await anonymous_call(client, "alice@example.org")
    await anon.act(call_id, "end")
    _, history = await alice.request("GET", "/v1/history", expect=200)
    assert [r["id"] for r in history["records"]] == []
