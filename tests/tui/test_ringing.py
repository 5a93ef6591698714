"""Friction 6: an incoming call is hard to miss. The bell rings again and again until the
call is answered or gone; do not disturb leaves it unrung here; auto-answer takes it."""

from __future__ import annotations

import pytest

from softphone.engine.events import CallStateChange
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from softphone.tui.notify import notify
from tests.tui.conftest import Far, app_for, row_states, until
from tests.tui.test_app import SIZE, logged


async def test_the_bell_rings_until_the_call_is_answered(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="incoming")
        await until(pilot, lambda: app.bells >= 3, timeout=30, what="the bell, again and again")
        await pilot.press("a")
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="answered")
        rung = app.bells
        await pilot.pause(2 * 3.0 + 0.5)  # two ring periods
        assert app.bells == rung  # answered: no more bells


async def test_do_not_disturb_leaves_the_call_unrung_here(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        app.action_toggle_dnd()
        assert "do not disturb" in app.status.plain
        bob = far()
        await bob.start(server, "bob")
        call_id = await bob.call(bob.thread.make, "alice")
        await until(pilot, lambda: logged(app, "do not disturb is on"), what="said")
        assert app.incoming_pane.first is None and app.bells == 0
        # Not declined: the caller still hears it ring (our other devices, or the timeout).
        await pilot.pause(0.5)
        assert bob.thread.get(call_id).state == CallState.RINGING


async def test_auto_answer_takes_the_call(server: RunningServer, far: type[Far]) -> None:
    app = app_for(server, "alice")
    app.options.auto_answer = True
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        assert "auto-answer" in app.status.plain
        bob = far()
        await bob.start(server, "bob")
        call_id = await bob.call(bob.thread.make, "alice")
        await bob.wait(
            CallStateChange, lambda e: e.call_id == call_id and e.state == CallState.CONNECTED
        )
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="answered")
        assert logged(app, "Answering bob automatically")


def test_no_session_bus_means_no_notification_and_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    assert notify("softphone", "bob is calling") is False
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    assert notify("softphone", "bob is calling") is False  # no bus there: quietly nothing
