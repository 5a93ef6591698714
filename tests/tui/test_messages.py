"""Friction 3: Messages in plain words, one line per happening, no duplicates; an end reason
reads the same in the row and in Messages; the technical detail is in the log file only."""

from __future__ import annotations

import logging

import pytest

from softphone.engine.events import CallReceive, CallStateChange
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.tui.conftest import Far, app_for, row_states, until
from tests.tui.test_app import SIZE


async def test_a_whole_call_in_plain_words(server: RunningServer, far: type[Far]) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        before = len(app.log_pane.lines_text)
        await pilot.press(*"bob", "enter")
        received = await bob.wait(CallReceive)
        await until(pilot, lambda: row_states(app).get("bob") == "ringing", what="ringing")
        await bob.call(bob.thread.answer, received.call_id)
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="in call")
        await bob.call(bob.thread.end, received.call_id)
        await until(pilot, lambda: row_states(app).get("bob") == "bob hung up", what="row")
        assert app.log_pane.lines_text[before:] == [
            "Calling bob…",
            "bob's phone is ringing.",
            "Connected to bob.",
            "Call with bob ended: bob hung up.",
        ]
        await bob.wait(CallStateChange, lambda e: e.state == CallState.ENDED)


async def test_a_failed_call_is_one_plain_red_line_and_the_codes_go_to_the_log(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="softphone.tui.messages")
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        before = len(app.log_pane.entries)
        await pilot.press(*"nobody", "enter")
        await until(
            pilot, lambda: row_states(app).get("nobody", "").startswith("failed"), what="row"
        )
        await pilot.pause(0.5)  # room for a second line, were there one
        new = app.log_pane.entries[before:]
        assert new == [
            ("Calling nobody…", False),
            ("Could not call nobody: no user named 'nobody'", True),
        ]
        assert row_states(app)["nobody"] == "failed: no such user"
        assert "unknown_user" in caplog.text  # the code, for whoever reads the log file
