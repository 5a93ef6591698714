"""ICE/TURN in subscriptions, metrics, OpenAPI, forward, glare, ring timeout, shutdown."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from softphone.config import Config, parse_config
from softphone.server.runner import start_server
from softphone.server.services import SERVICES
from tests.conftest import app_of, seed_users
from tests.server.harness import SDP, Party

Start = Callable[[Config], Awaitable[TestClient[Any, Any]]]
PartyFactory = Callable[[str], Party]


async def test_turn_credentials_in_subscription(start: Start, tmp_path: Path) -> None:
    (tmp_path / "turn.secret").write_text("s3cret\n")
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
[ice]
stun_urls = ["stun:127.0.0.1:3478"]
[turn]
urls = ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]
secret_file = "{tmp_path}/turn.secret"
ttl = 600
""")
    alice = Party(await start(config), "alice")
    await alice.login()
    sub = await alice.subscribe()
    turn, stun = sub["ice_servers"]
    assert turn["urls"] == [
        "turn:127.0.0.1:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
    ]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    expiry, _, opaque = turn["username"].partition(":")
    assert abs(int(expiry) - (time.time() + 600)) < 5
    assert "alice" not in opaque  # the TURN server's logs learn no user names
    expected = base64.b64encode(
        hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    ).decode()
    assert turn["credential"] == expected
    assert sub["ice_ttl"] == 600


async def test_metrics_and_health(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    await bob.act(call["id"], "answer", {"sdp": SDP})
    await alice.request("POST", "/v1/calls/nope/end", expect=404)
    _, text = await alice.request("GET", "/v1/metrics", expect=200)
    metrics = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert metrics["softphone_call_setups_total"] == "1"
    assert metrics["softphone_calls_total"] == "1"
    assert float(metrics["softphone_live_calls"]) == 1
    assert float(metrics["softphone_websocket_connections"]) == 2
    assert metrics['softphone_errors_total{code="not_found"}'] == "1"
    _, health = await alice.request("GET", "/v1/health", expect=200)
    assert health["status"] == "ok"


async def test_openapi_lists_every_route(party: PartyFactory) -> None:
    _, doc = await party("alice").request("GET", "/v1/openapi.json", expect=200)
    assert doc["openapi"].startswith("3.")
    assert "/v1/calls/{call_id}/answer" in doc["paths"]
    answer = doc["paths"]["/v1/calls/{call_id}/answer"]["post"]
    assert answer["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SdpRequest"
    )
    assert {"200", "401", "403", "404", "409"} <= set(answer["responses"])
    assert "AnonymousCallRequest" in doc["components"]["schemas"]


async def test_forward_rings_the_new_callee(party: PartyFactory) -> None:
    alice, bob, carol = [await party(n).online() for n in ("alice", "bob", "carol")]
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    _, forwarded = await bob.act(call["id"], "forward", {"to": "carol"})
    assert forwarded["callee"] == "carol" and forwarded["state"] == "Initiated"
    assert (await bob.expect("call.cancelled"))["reason"] == "forwarded"
    incoming = await carol.expect("call.incoming")
    assert incoming["sdp"] == SDP
    await carol.act(call["id"], "answer", {"sdp": SDP})
    await alice.expect("call.answered")
    await bob.act(call["id"], "end", expect=403)


async def test_glare_on_simultaneous_reoffers(party: PartyFactory) -> None:
    alice, bob = await party("alice").online(), await party("bob").online()
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    await bob.act(call["id"], "answer", {"sdp": SDP})
    await alice.expect("call.answered")
    await alice.act(call["id"], "update", {"sdp": SDP})
    _, error = await bob.act(call["id"], "update", {"sdp": SDP}, expect=409)
    assert error["error"]["code"] == "glare"
    # The offerer cannot answer its own re-offer; the other party can.
    _, error = await alice.act(call["id"], "update-answer", {"sdp": SDP}, expect=409)
    assert error["error"]["code"] == "wrong_state"
    await bob.expect("call.update")
    await bob.act(call["id"], "update-answer", {"sdp": SDP})
    await alice.expect("call.update_answer")
    await bob.act(call["id"], "update", {"sdp": SDP})  # free again


async def test_ring_timeout_ends_unanswered_call(start: Start, tmp_path: Path) -> None:
    client = await start(parse_config(f'[server]\ndata_dir = "{tmp_path}"\nring_timeout = 0.5\n'))
    alice, bob = await Party(client, "alice").online(), await Party(client, "bob").online()
    _, call = await alice.make("bob")
    await bob.expect("call.incoming")
    assert (await alice.expect("call.ended"))["reason"] == "no_answer"
    assert (await bob.expect("call.cancelled"))["reason"] == "no_answer"
    _, error = await bob.act(call["id"], "answer", {"sdp": SDP}, expect=409)
    assert error["error"]["code"] == "wrong_state"


async def test_shutdown_closes_websockets_with_1001(config: Config) -> None:
    """Through the real runner `softphone serve` uses: sockets get 1001, then the server stops."""
    server = await start_server(config, port=0)
    seed_users(server.app[SERVICES].store)
    try:
        async with aiohttp.ClientSession(server.url) as session:
            bob = await Party(session, "bob").online()
            stopping = asyncio.create_task(server.stop())
            assert bob.ws is not None
            msg = await bob.ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE and bob.ws.close_code == 1001
            await stopping
    finally:
        await server.stop()


async def test_removed_account_loses_its_sessions(
    client: TestClient[Any, Any], party: PartyFactory
) -> None:
    bob = await party("bob").online()
    assert app_of(client)[SERVICES].store.remove_user("bob")
    status, error = await bob.request("GET", "/v1/calls")
    assert status == 401 and error["error"]["code"] == "unauthorized"
    # One process still knows the session and says why; with several, the shared row went
    # with the account, so the token is simply unknown (the same 401 unauthorized).
    assert ("no longer exists" in error["error"]["message"]) or (
        app_of(client)[SERVICES].bus is not None
        and "unknown or revoked token" in error["error"]["message"]
    )
