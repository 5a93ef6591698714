"""The command palette (ctrl+p, typed, Enter) runs the same actions as the keys: what it leaves
at the far ends is what the keys leave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.command import Command, CommandList, CommandPalette

from softphone.engine.events import CallStateChange
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from softphone.tui.app import SoftphoneApp
from tests.tui.conftest import Far, answered_by_key, app_for, row_states, until
from tests.tui.test_app import SIZE, logged
from tests.tui.test_calls import held_by_remote


async def palette(pilot: Any, app: SoftphoneApp, title: str) -> None:
    """Open the palette, type `title`, and run the command once it is the best match."""
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
    await pilot.press(*("space" if c == " " else c for c in title))
    results = app.screen.query_one(CommandList)

    def best() -> str | None:
        if not results.option_count:
            return None
        option = results.get_option_at_index(0)
        return option.hit.text if isinstance(option, Command) else None

    await until(pilot, lambda: best() == title, what=f"{title!r} first in the palette")
    if results.highlighted is None:
        await pilot.press("down")
    assert results.highlighted == 0 and best() == title
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, CommandPalette), what="it ran")


async def test_palette_unhold_holds_the_other_call_as_the_h_key_does(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        bob, bob_call = await answered_by_key(pilot, app, server, far())
        carol = far()
        await carol.start(server, "carol")
        carol_call = await carol.call(carol.thread.make, "alice")
        await until(pilot, lambda: app.incoming_pane.first is not None, what="carol rings")
        await pilot.press("a")  # answering carol holds bob
        await until(
            pilot,
            lambda: row_states(app) == {"bob": "on hold", "carol": "in call"},
            what="bob held",
        )

        await pilot.press("s")  # select bob; the palette resumes him
        await palette(pilot, app, "Unhold")
        await until(
            pilot,
            lambda: row_states(app) == {"bob": "in call", "carol": "on hold"},
            what="the palette swapped the calls",
        )
        await until(pilot, lambda: held_by_remote(bob, bob_call, False), what="bob resumed")
        await until(pilot, lambda: held_by_remote(carol, carol_call, True), what="carol held")

        await pilot.press("s", "h")  # select carol; the key resumes her: the same swap back
        await until(
            pilot,
            lambda: row_states(app) == {"bob": "on hold", "carol": "in call"},
            what="the key swapped the calls",
        )
        await until(pilot, lambda: held_by_remote(bob, bob_call, True), what="bob held again")
        await until(pilot, lambda: held_by_remote(carol, carol_call, False), what="carol back")


async def test_palette_hold_mute_and_end_reach_the_engine_and_the_far_end(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        bob, bob_call = await answered_by_key(pilot, app, server, far())
        engine = app.engine
        assert engine is not None
        mine = next(iter(app.views))

        await palette(pilot, app, "Mute")
        await until(pilot, lambda: engine.get(mine).muted, what="muted")
        await until(pilot, lambda: "muted" in app.calls_pane.get_row(mine)[4], what="flag")
        await palette(pilot, app, "Unmute")
        await until(pilot, lambda: not engine.get(mine).muted, what="unmuted")

        await palette(pilot, app, "Hold")
        await until(pilot, lambda: held_by_remote(bob, bob_call, True), what="bob sees hold")
        assert row_states(app) == {"bob": "on hold"}
        await palette(pilot, app, "Hold")  # already held: said, and nothing sent
        await until(
            pilot,
            lambda: any("already on hold" in line for line in app.log_pane.lines_text),
            what="already on hold",
        )

        await palette(pilot, app, "End call")
        await bob.wait(
            CallStateChange, lambda e: e.call_id == bob_call and e.state == CallState.ENDED
        )


async def test_palette_echo_cancellation_device_rescan_and_screenshot(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        engine = app.engine
        assert engine is not None
        await palette(pilot, app, "Echo cancellation: off")
        await until(pilot, lambda: logged(app, "Echo cancellation off."), what="said")
        assert engine.list_devices().audio_processing.echo_cancellation == "off"
        await palette(pilot, app, "Devices: look again")  # a rescan, then the screen
        await until(pilot, lambda: type(app.screen).__name__ == "DevicesScreen", what="listed")
        await pilot.press("escape")
        await until(pilot, lambda: type(app.screen).__name__ != "DevicesScreen", what="closed")
        await palette(pilot, app, "Screenshot")
        await until(pilot, lambda: logged(app, "Screenshot saved to"), what="the screenshot")
        saved = [line for line in app.log_pane.lines_text if "Screenshot saved to" in line]
        path = saved[0].removeprefix("Screenshot saved to ")
        assert path.startswith(str(tmp_path))
        assert Path(path).read_text(encoding="utf-8").startswith("<svg")
