"""The demo pages in a real browser: calls between pages through a real server.

See conftest.py for how the server and Chromium are run (private network namespace as root).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from softphone.config import parse_config
from softphone.server.runner import RunningServer, start_server
from softphone.server.services import SERVICES
from tests.conftest import seed_users
from tests.server.fake_turn import SECRET as TURN_SECRET
from tests.server.fake_turn import FakeTurn, fake_turn, password_for
from tests.server.harness import PASSWORD

TIMEOUT_MS = 15_000
SETUP_TIMES: list[float] = []
# Every token any page received (sessions, anonymous calls, demo token sets): none may show.
SECRET_SOURCES = ("/v1/sessions", "/v1/anonymous/calls", "/v1/demo/callparameters")
SECRET_KEYS = ("token", "accountToken", "fromToken", "toToken")
SECRETS: list[str] = []


async def assert_no_secrets(*pages: Any) -> None:
    assert SECRETS
    for page in pages:
        text = await page.content() + await page.inner_text("body")
        leaked = [s for s in SECRETS if s in text]
        assert leaked == [], "a page shows a token"
        assert page.errors == []


async def open_page(browser: Any, server: RunningServer, path: str) -> Any:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.errors = errors

    async def keep_secrets(response: Any) -> None:
        if response.ok and response.url.endswith(SECRET_SOURCES):
            body = await response.json()
            SECRETS.extend(body[k] for k in SECRET_KEYS if k in body)

    page.on("response", keep_secrets)
    await page.goto(f"{server.url}{path}")
    return page


async def login(browser: Any, server: RunningServer, user: str) -> tuple[Any, str]:
    """A logged-in, subscribed index page; returns it with the session token it got."""
    page = await open_page(browser, server, "/web/")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    async with page.expect_response("**/v1/sessions") as response:
        await page.click("#login")
    token = (await (await response.value).json())["token"]
    await page.locator("#auth-state", has_text=re.compile(r"^Subscribed: true$")).wait_for()
    return page, token


def row(page: Any, n: int = 1) -> Any:
    return page.locator(f"#calls tbody tr:nth-child({n})")


async def wait_state(page: Any, state: str, n: int = 1) -> None:
    await row(page, n).locator("td.state").filter(has_text=state).wait_for()


async def wait_log(page: Any, text: str) -> None:
    await page.locator("#messages div", has_text=text).first.wait_for()


async def log_text(page: Any) -> str:
    return str(await page.inner_text("#messages"))


async def call_id(page: Any, n: int = 1) -> str:
    return str(await row(page, n).get_attribute("data-call-id"))


async def stats(page: Any, cid: str) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = await page.evaluate(
        "id => window.softphone.calls.stats(id)", cid
    )
    return result


async def media_flows(page: Any, cid: str, video: bool) -> None:
    """Inbound audio (and video) packets and bytes keep increasing on this page."""
    before = await stats(page, cid)
    deadline = time.monotonic() + 10
    kinds = ["audio", "video"] if video else ["audio"]
    while True:
        await asyncio.sleep(0.5)
        now = await stats(page, cid)
        if all(
            now[k]["packetsReceived"] > before[k]["packetsReceived"] > 0
            and now[k]["bytesReceived"] > before[k]["bytesReceived"]
            for k in kinds
        ):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"media does not flow: {before} -> {now}")
        before = now
    if video:
        assert now["video"]["framesDecoded"] > 0
    else:
        assert now["video"]["packetsReceived"] == 0


@pytest.mark.parametrize("video", [False, True], ids=["audio", "video"])
async def test_two_pages_call_answer_and_end(
    browser: Any, web_server: RunningServer, video: bool
) -> None:
    alice, _ = await login(browser, web_server, "alice")
    bob, _ = await login(browser, web_server, "bob")

    await alice.fill("#callee", "bob")
    await alice.set_checked("#make-with-video", video)
    await bob.set_checked("#answer-with-video", video)
    await alice.click("#make-call")
    await row(bob).locator("button.answer").click()
    await wait_state(bob, "Connected")
    await wait_state(alice, "Connected")
    a_id, b_id = await call_id(alice), await call_id(bob)
    setup = await alice.evaluate(
        "id => { const c = window.softphone.calls.getById(id);"
        " return c.connectedAt - c.startedAt }",
        a_id,
    )
    SETUP_TIMES.append(float(setup))
    print(f"make -> Connected: {setup:.0f} ms ({'video' if video else 'audio'})")

    await media_flows(alice, a_id, video)
    await media_flows(bob, b_id, video)
    if video:
        assert await bob.evaluate("document.getElementById('remote-video').srcObject !== null")

    if not video:
        # Hold and unhold by re-offer (call.update / update-answer), as the engine does.
        await row(alice).locator("button.hold").click()
        await wait_state(alice, "On Hold")
        await wait_state(bob, "On Hold")
        await row(alice).locator("button.unhold").click()
        await wait_state(alice, "Connected")
        await wait_state(bob, "Connected")
        await media_flows(alice, a_id, video)

    await row(alice).locator("button.end").click()
    await wait_state(alice, "Ended")
    await wait_state(bob, "Ended")
    await wait_log(alice, "Call with bob ended")
    await wait_log(bob, "Call with alice ended (hangup)")
    alice_log, bob_log = await log_text(alice), await log_text(bob)
    assert "Making call to bob" in alice_log
    assert "Ending call with bob" in alice_log
    assert "Received incoming call from alice" in bob_log
    assert "Answering call from alice" in bob_log
    assert "Call state changed from Ringing to Connected" in alice_log
    await assert_no_secrets(alice, bob)


async def test_reject_from_the_page(browser: Any, web_server: RunningServer) -> None:
    alice, _ = await login(browser, web_server, "alice")
    bob, _ = await login(browser, web_server, "bob")
    # bob's socket drops: the page reconnects and resumes with last_seq.
    await bob.evaluate("window.softphone.client.ws.close(4999)")
    await wait_log(bob, "Reconnected: resumed, nothing missed.")
    await alice.fill("#callee", "bob")
    await alice.click("#make-call")
    await wait_state(alice, "Ringing")
    await row(bob).locator("button.reject").click()
    await wait_state(bob, "Ended")
    await wait_state(alice, "Ended")
    await wait_log(alice, "Call with bob ended (rejected)")
    assert "Rejecting call from alice" in await log_text(bob)
    await assert_no_secrets(alice, bob)


async def test_anonymous_page_regular_token_and_refused(
    browser: Any, web_server: RunningServer
) -> None:
    desk, _ = await login(browser, web_server, "desk")
    anon = await open_page(browser, web_server, "/web/anonymous.html")

    # Regular mode.
    await anon.fill("#caller", "guest-42")
    await anon.fill("#callee", "desk")
    await anon.click("#make-call")
    await row(desk).locator("button.answer").click()
    await wait_state(desk, "Connected")
    await wait_state(anon, "Connected")
    assert "guest-42 (anonymous)" in await row(desk).inner_text()
    await media_flows(anon, await call_id(anon), video=False)
    await anon.click("#end-call")
    await wait_state(anon, "Ended")
    await wait_state(desk, "Ended")

    # Token mode: the page fetches a token set from the demo endpoint.
    await anon.set_checked("#make-token-based-anonymous-call", True)
    async with anon.expect_response("**/v1/demo/callparameters") as response:
        await anon.click("#make-call")
    tokens = await (await response.value).json()
    await row(desk, 2).locator("button.answer").click()
    await wait_state(desk, "Connected", 2)
    await wait_state(anon, "Connected", 2)
    assert "guest@example.org (anonymous)" in await row(desk, 2).inner_text()
    await wait_log(anon, "Making a token-based anonymous call to desk")
    assert tokens["toToken"] in SECRETS
    await assert_no_secrets(anon, desk)
    await anon.click("#end-call")
    await wait_state(desk, "Ended", 2)

    # bob does not accept anonymous calls: the page says so.
    await login(browser, web_server, "bob")
    await anon.set_checked("#make-token-based-anonymous-call", False)
    await anon.fill("#callee", "bob")
    await anon.click("#make-call")
    await wait_state(anon, "Ended", 3)
    await wait_log(anon, "bob does not accept anonymous calls")
    await assert_no_secrets(anon, desk)


@pytest.fixture
async def turn() -> AsyncIterator[FakeTurn]:
    server = await fake_turn()
    yield server
    assert server.transport is not None
    server.transport.close()


@pytest.fixture
async def turn_server(turn: FakeTurn, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server whose ICE servers are one TURN server (the fake one)."""
    (tmp_path / "turn.secret").write_text(TURN_SECRET.decode() + "\n")
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
[rate_limits]
login_per_minute = 1000
anonymous_per_minute = 1000
[turn]
urls = ["turn:127.0.0.1:{turn.port}?transport=udp"]
secret_file = "{tmp_path}/turn.secret"
""")
    server = await start_server(config, host="127.0.0.1", port=0)
    seed_users(server.app[SERVICES].store)
    yield server
    await server.stop()


# Records the configuration of every RTCPeerConnection the page makes (before its scripts run).
RECORD_PEER_CONFIGS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.peerConfigs = [];
  window.RTCPeerConnection = function (config, ...rest) {
    window.peerConfigs.push(JSON.parse(JSON.stringify(config || {})));
    return new Native(config, ...rest);
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""


async def test_anonymous_page_offers_with_the_servers_turn(
    browser: Any, turn_server: RunningServer, turn: FakeTurn
) -> None:
    """The page asks the server for the call's ICE servers before it makes its offer, and the
    offer's gathering uses that TURN server with those credentials."""
    desk, _ = await login(browser, turn_server, "desk")
    context = await browser.new_context()
    await context.add_init_script(RECORD_PEER_CONFIGS)
    anon = await context.new_page()
    anon.set_default_timeout(TIMEOUT_MS)
    anon.errors = []
    anon.on("pageerror", lambda exc: anon.errors.append(str(exc)))
    requests: list[str] = []
    anon.on("request", lambda r: requests.append(r.url.removeprefix(turn_server.url)))
    await anon.goto(f"{turn_server.url}/web/anonymous.html")

    await anon.fill("#caller", "guest-42")
    await anon.fill("#callee", "desk")
    async with anon.expect_response("**/v1/anonymous/ice-servers") as response:
        await anon.click("#make-call")
    found = await (await response.value).json()
    [server] = found["ice_servers"]
    assert server["urls"] == [f"turn:127.0.0.1:{turn.port}?transport=udp"]
    assert server["credential"] == password_for(server["username"])
    await row(desk).locator("button.answer").click()
    await wait_state(anon, "Connected")
    await media_flows(anon, await call_id(anon), video=False)

    api = [r for r in requests if r.startswith("/v1/anonymous/")]
    assert api[:2] == ["/v1/anonymous/ice-servers", "/v1/anonymous/calls"]
    configs = await anon.evaluate("window.peerConfigs")
    assert configs[0]["iceServers"] == [server]  # the offer's connection, made after the lookup
    # Chromium asked the TURN server for a relay while gathering, with those credentials.
    opaque = server["username"].partition(":")[2]
    assert {a.username for a in turn.of(opaque)} == {server["username"]}
    assert all(a.verified for a in turn.of(opaque))
    await anon.click("#end-call")
    await wait_state(desk, "Ended")
    assert anon.errors == []


async def test_seed_pitfalls_fixed(browser: Any, web_server: RunningServer) -> None:
    alice, alice_token = await login(browser, web_server, "alice")
    carol, carol_token = await login(browser, web_server, "carol")
    bob, bob_token = await login(browser, web_server, "bob")

    # Two incoming calls are both listed, each with its own caller and actions.
    for caller in (alice, carol):
        await caller.fill("#callee", "bob")
        await caller.click("#make-call")
    await wait_state(bob, "Ringing", 1)
    await wait_state(bob, "Ringing", 2)
    rows = [await row(bob, 1).inner_text(), await row(bob, 2).inner_text()]
    assert all("incoming" in r for r in rows)
    assert sorted("alice" if "alice" in r else "carol" if "carol" in r else r for r in rows) == [
        "alice",
        "carol",
    ]
    assert await bob.locator("#calls button.answer").count() == 2

    # Outgoing calls show the callee as the remote party.
    await wait_state(alice, "Ringing")
    alice_row = await row(alice).inner_text()
    assert "outgoing" in alice_row and "bob" in alice_row and "alice" not in alice_row

    # Answering the second call leaves the first one ringing, and ending it works by its own id.
    carol_row = bob.locator("#calls tbody tr", has_text="carol")
    await carol_row.locator("button.answer").click()
    await wait_state(carol, "Connected")
    alice_row_on_bob = bob.locator("#calls tbody tr", has_text="alice")
    await alice_row_on_bob.locator("td.state", has_text="Ringing").wait_for()
    await row(alice).locator("button.end").click()
    await alice_row_on_bob.locator("td.state", has_text="Cancelled").wait_for()
    await wait_log(alice, "Ending call with bob")
    await carol_row.locator("button.end").click()
    await wait_state(carol, "Ended")

    # Tokens never reach the pages' text.
    assert {alice_token, bob_token, carol_token} <= set(SECRETS)
    await assert_no_secrets(alice, bob, carol)
