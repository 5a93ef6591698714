"""The notification websocket: auth, seq, resume without loss or duplicates, devices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.server.harness import SDP, Party

PartyFactory = Callable[[str], Party]


async def test_hello_with_token_in_first_frame(party: PartyFactory) -> None:
    alice = party("alice")
    await alice.login()
    await alice.subscribe()
    welcome = await alice.connect(header_auth=False)
    assert welcome["resumed"] is False and welcome["seq"] == 0
    await alice.ws.send_json({"type": "ping", "id": "p1"})  # type: ignore[union-attr]
    pong = await alice.receive()
    assert pong == {"type": "pong", "id": "p1", "seq": 0}


async def test_subscription_response_shape(party: PartyFactory) -> None:
    alice = party("alice")
    await alice.login()
    sub = await alice.subscribe()
    assert sub["channel"] == "/v1/notifications"
    assert sub["services"] == ["call"]
    assert sub["ice_servers"] == []  # nothing configured: no STUN is invented
    assert sub["resume_window"] == 2


async def _ring(caller: Party, callee_user: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        _, call = await caller.make(callee_user)
        ids.append(call["id"])
        await caller.act(call["id"], "end")
    return ids


async def test_resume_replays_missed_frames_exactly_once(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    await _ring(alice, "bob", 2)
    for _ in range(4):
        await bob.receive()
    seen = bob.last_seq
    await bob.drop()
    missed = await _ring(alice, "bob", 3)  # 6 notifications while bob is away
    welcome = await bob.connect(resume=True)
    assert welcome["resumed"] is True and welcome["seq"] == seen + 6
    kinds = [
        (f["type"], f.get("call", {}).get("id") or f.get("call_id"))
        for f in [await bob.receive() for _ in range(6)]
    ]
    expected: list[tuple[str, str]] = []
    for call_id in missed:
        expected += [("call.incoming", call_id), ("call.cancelled", call_id)]
    assert kinds == expected
    await bob.nothing()
    # Live frames continue the same sequence after the replay.
    await _ring(alice, "bob", 1)
    assert (await bob.expect("call.incoming"))["seq"] == seen + 7


async def test_resume_when_nothing_missed(party: PartyFactory) -> None:
    bob = await party("bob").online()
    await bob.drop()
    welcome = await bob.connect(resume=True)
    assert welcome["resumed"] is True
    await bob.nothing()


async def test_resume_from_the_future_fails_and_says_so(party: PartyFactory) -> None:
    bob = await party("bob").online()
    await bob.drop()
    bob.last_seq = 99
    welcome = await bob.connect(resume=True)
    assert welcome["resumed"] is False
    failed = await bob.receive()
    assert failed["type"] == "resume_failed" and "GET /v1/calls" in failed["reason"]


async def test_resume_after_window_fails_and_calls_end(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    await bob.act(call["id"], "answer", {"sdp": "v=0\r\n"})
    await alice.expect("call.answered")
    await bob.drop()
    ended = await alice.expect("call.ended", timeout=6)  # resume window is 2 s in tests
    assert ended["reason"] == "connection_lost"
    await bob.connect(resume=True)
    assert (await bob.receive())["type"] == "resume_failed"
    _, calls = await bob.request("GET", "/v1/calls", expect=200)
    assert calls["calls"] == []
    _, info = await alice.request("GET", f"/v1/calls/{call['id']}", expect=200)
    assert info["end_reason"] == "connection_lost"


async def test_call_survives_a_drop_within_the_window(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    await bob.act(call["id"], "answer", {"sdp": "v=0\r\n"})
    await alice.expect("call.answered")
    await bob.drop()
    await alice.act(call["id"], "dtmf", {"digits": "12#"})
    await bob.connect(resume=True)
    assert (await bob.expect("call.dtmf"))["digits"] == "12#"
    _, info = await bob.request("GET", f"/v1/calls/{call['id']}", expect=200)
    assert info["state"] == "Connected"


async def test_second_socket_replaces_the_first(party: PartyFactory) -> None:
    bob = await party("bob").online()
    first = bob.ws
    assert first is not None
    await bob.connect(resume=True)
    msg = await first.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert first.close_code == 4001


async def test_two_devices_ring_first_answer_wins(party: PartyFactory) -> None:
    alice = await party("alice").online()
    phone, laptop = await party("bob").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await phone.expect("call.incoming")
    await laptop.expect("call.incoming")
    await phone.act(call["id"], "ringing")
    await laptop.act(call["id"], "ringing")  # idempotent: the caller hears of it once
    await alice.expect("call.ringing")
    await alice.nothing()
    await laptop.act(call["id"], "answer", {"sdp": "v=0\r\n"})
    await alice.expect("call.answered")
    cancelled = await phone.expect("call.cancelled")
    assert cancelled["reason"] == "answered_elsewhere"
    # The phone that did not answer is no party to the call any more.
    _, error = await phone.act(call["id"], "end", expect=403)
    assert error["error"]["code"] == "not_in_call"
    await laptop.nothing()
    await alice.act(call["id"], "end")
    await laptop.expect("call.ended")
    await phone.nothing()


async def test_reject_on_one_device_cancels_the_other(party: PartyFactory) -> None:
    alice = await party("alice").online()
    phone, laptop = await party("bob").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await phone.expect("call.incoming")
    await laptop.expect("call.incoming")
    await phone.act(call["id"], "reject")
    await alice.expect("call.rejected")
    assert (await laptop.expect("call.cancelled"))["reason"] == "rejected_elsewhere"


async def test_device_limit_and_force_logout(
    client: TestClient[Any, Any], party: PartyFactory
) -> None:
    devices = [await party("carol").online() for _ in range(5)]
    extra = party("carol")
    await extra.login()
    _, error = await extra.request("POST", "/v1/subscriptions", {"services": ["call"]}, 409)
    assert error["error"]["code"] == "too_many_devices"
    await extra.subscribe(force_logout=True)
    gone = await devices[0].expect("subscription.gone")
    assert "replaced" in gone["reason"]
    assert devices[0].ws is not None
    await devices[0].ws.receive(timeout=5)
    assert devices[0].ws.close_code == 4000


async def test_logout_closes_the_socket_with_4000(party: PartyFactory) -> None:
    bob = await party("bob").online()
    await bob.request("DELETE", "/v1/sessions", expect=204)
    gone = await bob.expect("subscription.gone")
    assert (gone["reason"], gone["message"]) == ("logged_out", "logged out")
    assert bob.ws is not None
    await bob.ws.receive(timeout=5)
    assert bob.ws.close_code == 4000
    status, error = await bob.request("GET", "/v1/calls")
    assert status == 401 and error["error"]["code"] == "unauthorized"


async def test_resubscribing_the_same_session_returns_the_same_subscription(
    party: PartyFactory,
) -> None:
    bob = party("bob")
    await bob.login()
    first = await bob.subscribe()
    second = await bob.subscribe()
    assert first["subscription_id"] == second["subscription_id"]
    assert second["expires_at"] >= first["expires_at"]


async def test_refresh_and_unsubscribe(party: PartyFactory) -> None:
    bob = await party("bob").online()
    sub_id = bob.subscription["subscription_id"]
    _, refreshed = await bob.request("PUT", f"/v1/subscriptions/{sub_id}", {"expires": 7200}, 200)
    assert refreshed["expires_at"] > bob.subscription["expires_at"]
    await bob.request("DELETE", f"/v1/subscriptions/{sub_id}", expect=204)
    gone = await bob.expect("subscription.gone")
    assert (gone["reason"], gone["message"]) == ("unsubscribed", "unsubscribed")
    _, error = await party("alice").request("GET", f"/v1/subscriptions/{sub_id}")
    # unknown to everyone now (and never visible to another session)
    assert error["error"]["code"] == "unauthorized"
    _, error = await bob.request("GET", f"/v1/subscriptions/{sub_id}", expect=404)
    assert error["error"]["code"] == "not_found"


async def test_frames_before_the_first_socket_are_not_lost(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), party("bob")
    await bob.login()
    await bob.subscribe()
    _, call = await alice.make("bob")  # bob is subscribed but has no socket yet
    welcome = await bob.connect(resume=True)  # last_seq 0: "from the beginning"
    assert welcome["resumed"] is True
    assert (await bob.expect("call.incoming"))["call"]["id"] == call["id"]


async def test_logout_ends_the_devices_calls(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    await bob.act(call["id"], "answer", {"sdp": "v=0\r\n"})
    await alice.expect("call.answered")
    await bob.request("DELETE", "/v1/sessions", expect=204)
    assert (await alice.expect("call.ended"))["reason"] == "hangup"
    _, outgoing = await alice.make("carol", expect=409)  # carol is offline
    assert outgoing["error"]["code"] == "user_unavailable"
    carol = await party("carol").online()
    await alice.make("carol")
    await carol.expect("call.incoming")
    await alice.request(
        "DELETE", f"/v1/subscriptions/{alice.subscription['subscription_id']}", expect=204
    )
    assert (await carol.expect("call.cancelled"))["reason"] == "cancelled"
    _, calls = await carol.request("GET", "/v1/calls", expect=200)
    assert calls["calls"] == []


async def test_calling_yourself_needs_another_device(party: PartyFactory) -> None:
    phone = await party("bob").online()
    _, error = await phone.make("bob", expect=409)
    assert error["error"]["code"] == "user_unavailable"
    laptop = await party("bob").online()
    _, call = await phone.make("bob")
    assert (await laptop.expect("call.incoming"))["call"]["id"] == call["id"]
    await phone.nothing()


async def test_resync_gives_the_ringing_callee_the_offer(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    _, listed = await bob.request("GET", "/v1/calls", expect=200)
    assert listed["calls"][0]["offer_sdp"] == SDP  # enough to answer after a resync
    _, seen_by_caller = await alice.request("GET", f"/v1/calls/{call['id']}", expect=200)
    assert seen_by_caller["offer_sdp"] is None
    await bob.act(call["id"], "answer", {"sdp": SDP})
    _, answered = await bob.request("GET", f"/v1/calls/{call['id']}", expect=200)
    assert answered["offer_sdp"] is None
