"""Three server processes behind HAProxy on PostgreSQL and Redis: calls across processes, a
process killed with SIGKILL mid-call and mid-ring, answers racing on two processes, Redis
restarted mid-call. Frames are read at the wire (harness.Party asserts every seq is the
previous one plus one), so a lost or duplicated notification fails the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.cluster.conftest import RING_TIMEOUT, Cluster
from tests.server.harness import SDP, Party


@asynccontextmanager
async def sessions(*urls: str) -> AsyncIterator[list[aiohttp.ClientSession]]:
    made = [aiohttp.ClientSession(url) for url in urls]
    try:
        yield made
    finally:
        for session in made:
            await session.close()


async def resume(party: Party, deadline: float = 15.0) -> tuple[dict[str, Any], float]:
    """Reconnect with the last seq until some process answers; (welcome, seconds taken)."""
    start = time.monotonic()
    while True:
        try:
            welcome = await party.connect(resume=True)
            return welcome, time.monotonic() - start
        except (aiohttp.ClientError, AssertionError, TimeoutError):
            assert time.monotonic() - start < deadline, "no process took the resume"
            party.ws = None
            await asyncio.sleep(0.1)


async def act_until_done(party: Party, call_id: str, action: str, body: Any = None) -> None:
    """A call action through the proxy: 502/503 while a process dies or Redis is back are
    retried, as the client does (transient statuses)."""
    for _ in range(100):
        status, payload = await party.act(call_id, action, body, expect=None)
        if status == 200:
            return
        assert status in (502, 503), (status, payload)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{action} never went through")


async def test_calls_between_users_on_different_processes(cluster: Cluster) -> None:
    one, two, three = (server.url for server in cluster.servers)
    async with sessions(one, two, three) as (http1, http2, http3):
        alice = await Party(http1, "alice").online()
        bob = await Party(http2, "bob").online()
        assert await cluster.websockets() == [1, 1, 0]
        _, call = await alice.make("bob")
        assert (await bob.expect("call.incoming"))["call"]["id"] == call["id"]
        await bob.act(call["id"], "ringing")
        await alice.expect("call.ringing")
        await bob.act(call["id"], "answer", {"sdp": SDP})
        await alice.expect("call.answered")
        await bob.act(call["id"], "dtmf", {"digits": "12#", "duration_ms": 100})
        assert (await alice.expect("call.dtmf"))["digits"] == "12#"
        # A third process knows the call and its parties, and ends it for alice's session.
        alice_elsewhere = Party(http3, "alice")
        alice_elsewhere.token = alice.token
        _, listed = await alice_elsewhere.request("GET", "/v1/calls", expect=200)
        assert [c["id"] for c in listed["calls"]] == [call["id"]]
        await alice_elsewhere.act(call["id"], "end")
        assert (await bob.expect("call.ended"))["reason"] == "hangup"
        await alice.nothing()
        await bob.nothing()


async def test_sigkill_of_the_process_holding_a_websocket_mid_call(cluster: Cluster) -> None:
    async with sessions(cluster.url, cluster.servers[1].url) as (proxied, direct):
        alice = await Party(proxied, "alice").online()
        counts = await cluster.websockets()
        holder = counts.index(1)
        other = cluster.servers[(holder + 1) % 3]
        await direct.close()
        async with sessions(other.url) as (near,):
            bob = await Party(near, "bob").online()
            _, call = await alice.make("bob")
            await bob.expect("call.incoming")
            await bob.act(call["id"], "answer", {"sdp": SDP})
            await alice.expect("call.answered")

            cluster.servers[holder].kill()  # SIGKILL: no close frame, no goodbye
            # While alice is away, bob keeps acting; each frame must reach her exactly once.
            for digits in ("1", "2", "3"):
                await bob.act(call["id"], "dtmf", {"digits": digits, "duration_ms": 100})
            await bob.act(call["id"], "update", {"sdp": SDP + "a=sendonly\r\n"})

            welcome, took = await resume(alice)
            assert welcome["resumed"] is True, welcome
            got = [await alice.receive() for _ in range(4)]
            assert [f["type"] for f in got] == ["call.dtmf"] * 3 + ["call.update"]
            assert [f.get("digits") for f in got[:3]] == ["1", "2", "3"]
            await alice.nothing(0.5)  # and nothing twice
            counts = await cluster.websockets()
            assert counts[holder] == -1 and sum(c for c in counts if c > 0) == 2
            # The call goes on through whichever process now holds her socket.
            await act_until_done(alice, call["id"], "update-answer", {"sdp": SDP})
            await bob.expect("call.update_answer")
            await act_until_done(alice, call["id"], "end")
            assert (await bob.expect("call.ended"))["reason"] == "hangup"
            print(f"alice resumed {took:.2f} s after the kill")


async def test_a_ring_timer_fires_after_the_process_that_armed_it_died(cluster: Cluster) -> None:
    one, two, three = (server.url for server in cluster.servers)
    async with sessions(one, two, three) as (http1, http2, http3):
        alice = await Party(http1, "alice").online()
        bob = await Party(http2, "bob").online()
        _, call = await alice.make("bob")  # process 1 arms the ring timer
        await bob.expect("call.incoming")
        cluster.servers[0].kill()
        cancelled = await bob.expect("call.cancelled", timeout=RING_TIMEOUT + 10)
        assert (cancelled["call_id"], cancelled["reason"]) == (call["id"], "no_answer")
        alice.client = http3
        alice.ws = None
        welcome = await alice.connect(resume=True)
        assert welcome["resumed"] is True
        ended = await alice.expect("call.ended")
        assert (ended["call_id"], ended["reason"]) == (call["id"], "no_answer")
        await alice.nothing()


async def test_two_devices_answering_on_two_processes_exactly_one_wins(cluster: Cluster) -> None:
    one, two, three = (server.url for server in cluster.servers)
    async with sessions(one, two, three) as (http1, http2, http3):
        alice = await Party(http1, "alice").online()
        desk1 = await Party(http2, "bob").online()
        desk2 = await Party(http3, "bob").online()
        for _ in range(5):
            _, call = await alice.make("bob")
            await desk1.expect("call.incoming")
            await desk2.expect("call.incoming")
            results = await asyncio.gather(
                desk1.act(call["id"], "answer", {"sdp": SDP}, expect=None),
                desk2.act(call["id"], "answer", {"sdp": SDP}, expect=None),
            )
            # The loser either waited on the row lock and found the call answered (409), or
            # came second and is not the answering device (403 not_in_call).
            statuses = sorted(status for status, _ in results)
            assert statuses[0] == 200 and statuses[1] in (403, 409), results
            winner, loser = (desk1, desk2) if results[0][0] == 200 else (desk2, desk1)
            assert (await alice.expect("call.answered"))["call_id"] == call["id"]
            cancelled = await loser.expect("call.cancelled")
            assert cancelled["reason"] == "answered_elsewhere"
            await alice.act(call["id"], "end")
            assert (await winner.expect("call.ended"))["reason"] == "hangup"
            await alice.nothing(0.1)
            await loser.nothing(0.1)


async def test_redis_restarted_mid_call(cluster: Cluster) -> None:
    one, two = cluster.servers[0].url, cluster.servers[1].url
    async with sessions(one, two) as (http1, http2):
        alice = await Party(http1, "alice").online()
        bob = await Party(http2, "bob").online()
        _, call = await alice.make("bob")
        await bob.expect("call.incoming")
        await bob.act(call["id"], "answer", {"sdp": SDP})
        await alice.expect("call.answered")

        cluster.redis.kill()
        status, body = await bob.act(call["id"], "dtmf", {"digits": "5", "duration_ms": 100}, None)
        assert (status, body["error"]["code"]) == (503, "service_unavailable")
        health_status, health = await bob.request("GET", "/v1/health")
        assert health_status == 503 and (health["store"], health["bus"]) == ("ok", "unreachable")
        cluster.redis.start()  # same port, same append-only file: the seqs are back
        await act_until_done(bob, call["id"], "dtmf", {"digits": "7", "duration_ms": 100})
        _, health = await bob.request("GET", "/v1/health", expect=200)
        assert (health["status"], health["bus"]) == ("ok", "ok")
        # Both websockets stayed open; the next frame has the next seq (checked by receive).
        assert (await alice.expect("call.dtmf"))["digits"] == "7"
        await act_until_done(alice, call["id"], "end")
        assert (await bob.expect("call.ended"))["reason"] == "hangup"


async def test_sigterm_drains_a_process_and_its_clients_resume_elsewhere(cluster: Cluster) -> None:
    async with sessions(cluster.url, cluster.servers[0].url) as (proxied, direct):
        alice = await Party(proxied, "alice").online()
        holder = (await cluster.websockets()).index(1)
        caller = Party(direct, "bob") if holder != 0 else Party(proxied, "bob")
        await caller.login()
        await caller.subscribe()
        assert alice.ws is not None
        cluster.servers[holder].stop()  # SIGTERM: stop accepting, close sockets with 1001
        message = await alice.ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE and alice.ws.close_code == 1001
        await act_make(caller, "alice")
        welcome, _ = await resume(alice)
        assert welcome["resumed"] is True
        assert (await alice.expect("call.incoming"))["call"]["caller"] == "bob"


async def act_make(party: Party, to: str) -> None:
    for _ in range(100):
        status, payload = await party.request("POST", "/v1/calls", {"to": to, "sdp": SDP}, None)
        if status == 201:
            return
        assert status in (409, 502, 503), (status, payload)  # alice between processes
        await asyncio.sleep(0.1)
    raise AssertionError("the call was never made")
