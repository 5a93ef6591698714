"""RestClient: typed results and the mapping of error bodies, 401, 429 and no answer."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import pytest

from softphone.client import RestClient, errors
from softphone.client.rest import parse_retry_after
from softphone.config import parse_config
from softphone.protocol.models import ServerCallState
from softphone.server.runner import RunningServer
from tests.client.conftest import Servers, free_port
from tests.server.harness import PASSWORD, SDP


async def test_typed_results_and_error_codes(server: RunningServer) -> None:
    async with RestClient(server.url) as alice, RestClient(server.url) as bob:
        assert (await alice.health()).status == "ok"
        login = await alice.login("alice", PASSWORD)
        assert login.user == "alice" and alice.token == login.token
        assert "token" not in repr(alice) and login.token not in repr(alice)
        await bob.login("bob", PASSWORD)
        await bob.subscribe()
        sub = await alice.subscribe(expires=120)
        assert sub.channel == "/v1/notifications" and sub.ping_interval > 0
        assert (
            await alice.get_subscription(sub.subscription_id)
        ).subscription_id == sub.subscription_id

        with pytest.raises(errors.ServerError) as unknown:
            await alice.make_call("nobody", SDP)
        assert (unknown.value.code, unknown.value.status) == ("unknown_user", 404)
        assert not isinstance(unknown.value, errors.AuthError)
        assert not unknown.value.transient

        call = await alice.make_call("sip:bob@localhost", SDP)
        assert (call.callee, call.state) == ("bob", ServerCallState.INITIATED)
        assert (await bob.ringing(call.id)).state is ServerCallState.RINGING
        assert (await bob.get_call(call.id)).id == call.id
        with pytest.raises(errors.ServerError) as forbidden:
            await alice.answer(call.id, SDP)
        assert (forbidden.value.code, forbidden.value.status) == ("forbidden", 403)
        assert (await bob.answer(call.id, SDP)).state is ServerCallState.CONNECTED
        await alice.update(call.id, SDP)
        with pytest.raises(errors.ServerError) as glare:
            await bob.update(call.id, SDP)
        assert glare.value.code == "glare" and glare.value.retry_after == 1
        await bob.update_answer(call.id, SDP)
        await bob.dtmf(call.id, "1#", duration_ms=80)
        ended = await alice.end(call.id)
        assert ended.state is ServerCallState.ENDED and ended.end_reason == "hangup"
        with pytest.raises(errors.ServerError) as wrong_state:
            await bob.end(call.id)
        assert (wrong_state.value.code, wrong_state.value.status) == ("wrong_state", 409)
        with pytest.raises(errors.ServerError) as missing:
            await alice.get_call("no/such call")  # quoted into one path segment
        assert (missing.value.code, missing.value.status) == ("not_found", 404)
        records = await alice.history(limit=5)
        assert [(r.id, r.direction, r.end_reason) for r in records] == [
            (call.id, "outgoing", "hangup")
        ]
        assert await alice.list_calls() == []

        refreshed = await alice.refresh_subscription(sub.subscription_id, 300)
        assert refreshed.expires_at > sub.expires_at
        await alice.unsubscribe(sub.subscription_id)
        with pytest.raises(errors.ServerError) as gone:
            await alice.refresh_subscription(sub.subscription_id)
        assert gone.value.status == 404

        await alice.logout()
        assert alice.token is None
        with pytest.raises(errors.AuthError) as local:
            await alice.list_calls()  # refused before anything is sent
        assert local.value.code == "unauthorized"
        alice.token = login.token  # revoked by the logout
        with pytest.raises(errors.AuthError) as revoked:
            await alice.list_calls()
        assert (revoked.value.code, revoked.value.status) == ("unauthorized", 401)


async def test_bad_credentials_are_an_auth_error(server: RunningServer) -> None:
    async with RestClient(server.url) as rest:
        with pytest.raises(errors.AuthError) as raised:
            await rest.login("bob", "wrong")
        assert raised.value.code == "bad_credentials" and rest.token is None


async def test_rate_limit_carries_retry_after(servers: Servers, tmp_path: Path) -> None:
    config = parse_config(
        f'[server]\ndata_dir = "{tmp_path}"\n[rate_limits]\nlogin_per_minute = 1\n'
    )
    server = await servers.start(config=config)
    async with RestClient(server.url) as rest:
        await rest.login("bob", PASSWORD)
        with pytest.raises(errors.ServerError) as limited:
            await rest.login("bob", PASSWORD)
    assert (limited.value.code, limited.value.status) == ("rate_limited", 429)
    assert limited.value.transient and limited.value.retry_after is not None
    assert 1 <= limited.value.retry_after <= 60


async def test_no_server_is_unreachable() -> None:
    async with RestClient(f"http://127.0.0.1:{free_port()}", timeout=2) as rest:
        with pytest.raises(errors.ServerUnreachable, match="GET /v1/health"):
            await rest.health()


async def test_non_json_error_bodies_still_map(server: RunningServer) -> None:
    async with RestClient(server.url + "/nowhere") as rest:
        with pytest.raises(errors.ServerError) as raised:
            await rest.health()
    assert raised.value.status == 404  # the server's JSON 404, whatever the path


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("junk") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = parse_retry_after(later)
    assert parsed is not None and 25 <= parsed <= 31
