"""Call flows end to end through the real server: who is told what, in which order."""

from __future__ import annotations

from collections.abc import Callable

from tests.server.harness import SDP, Party

PartyFactory = Callable[[str], Party]


async def test_answered_call_then_hangup(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    assert call["state"] == "Initiated"
    incoming = await bob.expect("call.incoming")
    assert incoming["call"]["id"] == call["id"] and incoming["sdp"] == SDP
    assert incoming["call"]["caller"] == "alice"
    _, ringing = await bob.act(call["id"], "ringing")
    assert ringing["state"] == "Ringing"
    assert (await alice.expect("call.ringing"))["call_id"] == call["id"]
    _, answered = await bob.act(call["id"], "answer", {"sdp": SDP + "a=answer\r\n"})
    assert answered["state"] == "Connected"
    assert (await alice.expect("call.answered"))["sdp"].endswith("a=answer\r\n")
    await bob.act(call["id"], "end")
    ended = await alice.expect("call.ended")
    assert ended["reason"] == "hangup"
    _, history = await alice.request("GET", "/v1/history", expect=200)
    record = history["records"][0]
    assert record["direction"] == "outgoing" and record["end_reason"] == "hangup"
    assert record["duration"] is not None and record["duration"] >= 0
    _, bob_history = await bob.request("GET", "/v1/history", expect=200)
    assert bob_history["records"][0]["direction"] == "incoming"


async def test_reject_ends_both(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    _, rejected = await bob.act(call["id"], "reject")
    assert rejected["state"] == "Ended" and rejected["end_reason"] == "rejected"
    assert (await alice.expect("call.rejected"))["call_id"] == call["id"]
    await alice.act(call["id"], "end", expect=409)


async def test_caller_cancels_while_ringing(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    await bob.act(call["id"], "ringing")
    await alice.expect("call.ringing")
    await alice.act(call["id"], "end")
    cancelled = await bob.expect("call.cancelled")
    assert cancelled["reason"] == "cancelled"
    _, info = await bob.request("GET", f"/v1/calls/{call['id']}", expect=200)
    assert info["end_reason"] == "cancelled"
