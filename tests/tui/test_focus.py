"""Friction 1: focus follows the call. After dialing the call keys work at once, an incoming
call never types into the dial box, and the footer says how to leave the box."""

from __future__ import annotations

from textual.widgets import Footer, Input

from softphone.engine.events import CallReceive, CallStateChange
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.tui.conftest import Far, app_for, row_states, until
from tests.tui.test_app import SIZE


def footer_text(app: object) -> str:
    from textual.app import App

    assert isinstance(app, App)
    return " ".join(strip.text for strip in app.screen._compositor.render_strips()[-1:])


async def test_after_dialing_e_cancels_the_ringing_call(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        await pilot.press(*"bob", "enter")  # the dial box has the focus at start
        received = await bob.wait(CallReceive)
        await until(pilot, lambda: row_states(app).get("bob") == "ringing", what="ringing")
        await pilot.press("e")  # not a letter for the box: it cancels the call
        await bob.wait(
            CallStateChange,
            lambda e: e.call_id == received.call_id and e.state == CallState.CANCELLED,
        )
        assert app.query_one("#target", Input).value == ""
        await until(pilot, lambda: row_states(app).get("bob") == "you cancelled", what="row")


async def test_an_incoming_call_never_types_into_the_box(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        await pilot.press(*"car")  # half way through typing a name...
        await bob.call(bob.thread.make, "alice")  # ...bob calls
        await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
        await pilot.press("a")  # the button says [a]: it answers
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="answered")
        assert app.query_one("#target", Input).value == "car"  # what was typed is kept


async def test_the_footer_says_escape_leaves_the_box(server: RunningServer) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        assert app.query_one("#target", Input).has_focus
        await pilot.pause(0.2)
        bottom = footer_text(app)
        assert "esc" in bottom and "Leave the box" in bottom, bottom
        app.query_one(Footer)  # the footer is the bottom row
        await pilot.press("escape")
        assert app.calls_pane.has_focus
        await pilot.pause(0.2)
        assert "Leave the box" not in footer_text(app)
