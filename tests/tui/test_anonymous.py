"""`softphone --anonymous`: no login, one call placed at start (regular or token mode), the
Incoming pane off and saying why, refusals shown in red, tokens never shown."""

from __future__ import annotations

import json
from pathlib import Path

from softphone.engine.events import CallStateChange
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from softphone.server.tokens import issue_token_set, parse_key
from softphone.tui.app import SoftphoneApp
from softphone.tui.options import TuiOptions
from tests.server.harness import PASSWORD
from tests.tui.conftest import FAST, MEDIA, REALM, Far, row_states, until
from tests.tui.test_app import SIZE, logged


def anonymous_app(server: RunningServer, **options: object) -> SoftphoneApp:
    return SoftphoneApp(
        TuiOptions(
            server_url=server.url,
            anonymous=True,
            engine_options=dict(MEDIA),
            client_options={"backoff": FAST},
            **options,  # type: ignore[arg-type]
        )
    )


def errors(app: SoftphoneApp) -> list[str]:
    return [line for line, error in app.log_pane.entries if error]


async def answer_when_ringing(desk: Far) -> str:
    from softphone.engine.events import CallReceive

    received = await desk.wait(CallReceive)
    await desk.wait(
        CallStateChange,
        lambda e: e.call_id == received.call_id and e.state == CallState.RINGING,
    )
    await desk.call(desk.thread.answer, received.call_id)
    return received.call_id


async def test_regular_mode_reaches_an_account_that_allows_it(
    server: RunningServer, far: type[Far]
) -> None:
    desk = far()
    await desk.start(server, "desk")
    app = anonymous_app(server, anonymous_to="desk", anonymous_from="walk-in")
    async with app.run_test(size=SIZE) as pilot:
        call_id = await answer_when_ringing(desk)
        await until(pilot, lambda: row_states(app).get("desk") == "in call", what="in call")
        assert desk.thread.get(call_id).remote_participant == "walk-in"
        incoming = str(app.query_one("#ring").render())
        assert "Anonymous mode" in incoming and "nobody can call you" in incoming
        assert app.status.connection == "anonymous"
        assert not app.check_action("answer", ()) and not app.check_action("reject", ())
        await pilot.press("e")
        await desk.wait(
            CallStateChange, lambda e: e.call_id == call_id and e.state == CallState.ENDED
        )


async def test_refused_for_an_account_that_does_not_allow_it(server: RunningServer) -> None:
    app = anonymous_app(server, anonymous_to="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: bool(errors(app)), what="an error line")
        assert any("alice" in line or "anonymous" in line.lower() for line in errors(app))
        assert app.is_running and app.status.connection == "anonymous"


async def test_token_mode_from_a_file(
    server: RunningServer, far: type[Far], tmp_path: Path
) -> None:
    key = parse_key("v2", (tmp_path / "server" / "realm.key").read_text().strip())
    tokens = issue_token_set("v2", key, REALM, account="desk", caller="guest", callee="desk")
    token_file = tmp_path / "tokens.json"
    token_file.write_text(json.dumps(tokens))
    desk = far()
    await desk.start(server, "desk")
    app = anonymous_app(server, token_file=token_file)
    async with app.run_test(size=SIZE) as pilot:
        call_id = await answer_when_ringing(desk)
        await until(pilot, lambda: row_states(app).get("desk") == "in call", what="in call")
        assert desk.thread.get(call_id).remote_participant == "guest"
        screen_text = "\n".join(app.log_pane.lines_text)
        assert all(tokens[f] not in screen_text for f in ("accountToken", "fromToken", "toToken"))
        assert logged(app, f"Token-based anonymous call to desk (realm {REALM})")


async def test_token_mode_from_the_demo_url(server: RunningServer, far: type[Far]) -> None:
    desk = far()
    await desk.start(server, "desk")
    app = anonymous_app(server, token_url=f"{server.url}/v1/demo/callparameters")
    async with app.run_test(size=SIZE) as pilot:
        call_id = await answer_when_ringing(desk)
        await until(pilot, lambda: row_states(app).get("desk") == "in call", what="in call")
        assert desk.thread.get(call_id).remote_participant == "guest"


async def test_a_bad_token_file_is_a_clear_error(server: RunningServer, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens.json"
    token_file.write_text('{"realm": "tui", "accountToken": "x"}')
    app = anonymous_app(server, token_file=token_file)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: bool(errors(app)), what="an error line")
        assert f"{token_file}: missing or empty fromToken, toToken" in errors(app)[0]


async def test_an_anonymous_caller_is_marked_unverified_at_the_callee(
    server: RunningServer, far: type[Far]
) -> None:
    """Friction 7: a guest naming itself is never shown as if it were that user."""
    app = SoftphoneApp(
        TuiOptions(
            server_url=server.url,
            user="desk",
            password=PASSWORD,
            engine_options=dict(MEDIA),
            client_options={"backoff": FAST},
        )
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        guest = far()
        await guest.call(
            guest.thread.make_anonymous, "desk", None, from_="visitor", server_url=server.url
        )
        await until(pilot, lambda: app.incoming_pane.first is not None, what="the guest rings")
        ring = str(app.query_one("#ring").render())
        assert "guest 'visitor' (anonymous) is calling" in ring, ring
        assert logged(app, "guest 'visitor' (anonymous) is calling")
        await pilot.press("a")
        await until(
            pilot,
            lambda: row_states(app).get("visitor (guest)") == "in call",
            what="the row, marked",
        )
