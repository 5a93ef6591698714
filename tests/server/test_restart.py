"""A restarted server keeps accounts, sessions, live calls and call records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from softphone.config import Config
from softphone.server.store import Store
from tests.conftest import app_of
from tests.server.harness import Party

Start = Callable[[Config], Awaitable[TestClient[Any, Any]]]


def _rebind(party: Party, client: TestClient[Any, Any]) -> Party:
    """The same device, talking to the restarted server (its token and subscription kept)."""
    party.client = client
    party.ws = None
    return party


async def test_live_call_and_records_survive_restart(
    start: Start, config: Config, request: pytest.FixtureRequest
) -> None:
    shared_bus = request.config.getoption("--bus") == "redis"
    first = await start(config)
    alice, bob = await Party(first, "alice").online(), await Party(first, "bob").online()
    _, done = await alice.make("bob")
    await bob.expect("call.incoming")
    await alice.act(done["id"], "end")
    await bob.expect("call.cancelled")
    _, live = await alice.make("bob")
    await bob.expect("call.incoming")
    await bob.act(live["id"], "answer", {"sdp": "v=0\r\n"})
    await alice.expect("call.answered")
    await first.close()

    second = await start(config)
    alice, bob = _rebind(alice, second), _rebind(bob, second)
    # Sessions and subscriptions survive. In one process the resume buffer does not, so
    # clients resync; with a Redis bus the streams outlive any server process: they resume.
    for party in (alice, bob):
        welcome = await party.connect(resume=True)
        if shared_bus:
            assert welcome["resumed"] is True
            await party.nothing()
        else:
            assert (await party.receive())["type"] == "resume_failed"
    _, calls = await alice.request("GET", "/v1/calls", expect=200)
    assert [c["id"] for c in calls["calls"]] == [live["id"]]
    assert calls["calls"][0]["state"] == "Connected"
    # The restarted server still enforces who is in the call, then ends it normally.
    await Party(second, "carol").login()
    await bob.act(live["id"], "update", {"sdp": "v=0\r\na=sendonly\r\n"})
    assert (await alice.expect("call.update"))["sdp"].endswith("a=sendonly\r\n")
    await alice.act(live["id"], "update-answer", {"sdp": "v=0\r\na=recvonly\r\n"})
    await bob.expect("call.update_answer")
    await alice.act(live["id"], "end")
    assert (await bob.expect("call.ended"))["reason"] == "hangup"
    _, history = await alice.request("GET", "/v1/history", expect=200)
    reasons = [(r["id"], r["end_reason"]) for r in history["records"]]
    assert reasons == [(live["id"], "hangup"), (done["id"], "cancelled")]


async def test_ringing_call_still_times_out_after_restart(start: Start, tmp_path: Any) -> None:
    from softphone.config import parse_config

    config = parse_config(
        f'[server]\ndata_dir = "{tmp_path}"\nring_timeout = 1.5\nresume_window = 30\n'
    )
    first = await start(config)
    alice = await Party(first, "alice").online()
    await Party(first, "bob").online()
    _, call = await alice.make("bob")
    await first.close()
    second = await start(config)
    alice = _rebind(alice, second)
    await alice.connect()
    ended = await alice.expect("call.ended", timeout=5)
    assert ended == {
        "type": "call.ended",
        "call_id": call["id"],
        "reason": "no_answer",
        "seq": ended["seq"],
    }


async def test_accounts_survive_restart(start: Start, config: Config) -> None:
    first = await start(config)
    store: Store = app_of(first)[
        __import__("softphone.server.services", fromlist=["SERVICES"]).SERVICES
    ].store
    assert {u.name for u in store.list_users()} >= {"alice", "bob", "desk"}
    await first.close()
    second = await start(config)
    await Party(second, "alice").login()
