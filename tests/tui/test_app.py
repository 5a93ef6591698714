"""The TUI driven by keys (Textual Pilot at 80x24) against a real server and real engines."""

from __future__ import annotations

from pathlib import Path

from softphone.embedded import CREDENTIALS_FILE, ensure_users
from softphone.engine.events import CallDtmfReceived, CallStateChange
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from softphone.tui.app import SoftphoneApp
from tests.tui.conftest import Far, answered_by_key, app_for, row_states, until

SIZE = (80, 24)


def logged(app: SoftphoneApp, text: str) -> bool:
    return any(text in line for line in app.log_pane.lines_text)


def test_embedded_users_get_private_random_passwords(tmp_path: Path) -> None:
    data = tmp_path / "embedded"
    first = ensure_users(data, ["me", "echo"])
    path = data / CREDENTIALS_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert set(first) == {"me", "echo"} and first["me"] != first["echo"]
    assert len(first["me"]) >= 24
    assert ensure_users(data, ["me", "echo"]) == first  # kept across runs


async def test_incoming_answered_by_key_and_another_rejected(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob, carol = far(), far()
        await bob.start(server, "bob")
        await carol.start(server, "carol")
        bob_call = await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
        assert "bob is calling" in str(app.query_one("#ring").render())
        carol_call = await carol.call(carol.thread.make, "alice")
        await until(pilot, lambda: len(app.incoming_pane.calls) == 2, what="a queued call")
        await pilot.press("a")  # the first incoming call: bob
        await bob.wait(CallStateChange, lambda e: e.state == CallState.CONNECTED)
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="in call")
        assert bob_call
        await pilot.press("r")  # now carol is first
        ended = await carol.wait(
            CallStateChange, lambda e: e.call_id == carol_call and e.state == CallState.ENDED
        )
        assert "rejected" in ended.transition.reason_text
        assert app.incoming_pane.first is None


async def test_dtmf_digits_reach_the_far_end(server: RunningServer, far: type[Far]) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        bob, _ = await answered_by_key(pilot, app, server, far())
        await pilot.press("1", "asterisk", "number_sign")
        await bob.wait(CallDtmfReceived, lambda e: "#" in e.digits)
        signaled = "".join(e.digits for e in bob.of(CallDtmfReceived) if e.source == "signaled")
        assert signaled == "1*#"


async def test_typing_in_the_dial_box_sends_no_dtmf(server: RunningServer, far: type[Far]) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        bob, _ = await answered_by_key(pilot, app, server, far())
        await pilot.press("d", *"12e")  # focus the dial box: digits and letters are text
        await pilot.pause(0.5)
        assert app.query_one("#target").value == "12e"  # type: ignore[attr-defined]
        assert row_states(app).get("bob") == "in call"
        assert bob.of(CallDtmfReceived) == []


async def test_quit_with_a_live_call_asks_first(server: RunningServer, far: type[Far]) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        call_id = await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
        await pilot.press("a")
        await bob.wait(CallStateChange, lambda e: e.state == CallState.CONNECTED)
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "QuitScreen"
        await pilot.press("n")  # stay
        await pilot.pause(0.2)
        assert app.is_running and row_states(app).get("bob") == "in call"
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        await pilot.press("y")  # end the call and quit
        await bob.wait(
            CallStateChange, lambda e: e.call_id == call_id and e.state == CallState.ENDED
        )
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.return_code == 0


async def test_quit_without_calls_does_not_ask(server: RunningServer) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.return_code == 0


async def test_dialing_an_unknown_user_says_so_in_red(server: RunningServer) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        await pilot.press(*"nobody", "enter")
        await until(
            pilot,
            lambda: any(error for _, error in app.log_pane.entries),
            what="an error line",
        )
        errors = [text for text, error in app.log_pane.entries if error]
        assert errors[0].startswith("Could not call nobody: ") and "nobody" in errors[0][22:]
        assert len(errors) == 1  # call:error does not repeat what call:start said
        assert app.is_running and app.query_one("#target").has_focus


async def test_long_messages_wrap_without_losing_text(server: RunningServer) -> None:
    """At 80 columns a wrapped line used to lose two characters under the scrollbar."""
    app = app_for(server, "alice")
    long = " ".join(f"word{i:02d}" for i in range(40))  # ~280 characters: four rows
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        for i in range(20):  # enough lines for the scrollbar to show
            app.say(f"filler {i}")
        app.say(long)
        await pilot.pause(0.3)
        rows = [strip.text for strip in app.screen._compositor.render_strips()]
        inside = [r[1:-1].rstrip(" ▁▂▃▄▅▆▇█▏▕").rstrip() for r in rows if r.startswith("│")]
        shown = " ".join(inside)
        assert all(f"word{i:02d}" in shown for i in range(40)), shown
