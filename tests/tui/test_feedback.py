"""Friction 2: every action shows at once, in the row and on the status line, before the
engine confirms it; then what is so."""

from __future__ import annotations

from softphone.server.runner import RunningServer
from tests.tui.conftest import Far, answered_by_key, app_for, until
from tests.tui.test_app import SIZE, logged


def flags(app: object, party: str = "bob") -> str:
    from softphone.tui.app import SoftphoneApp

    assert isinstance(app, SoftphoneApp)
    table = app.calls_pane
    return next(str(r[4]) for r in (table.get_row(k) for k in table.rows) if r[0] == party)


async def test_mute_and_hold_show_at_once_in_the_row_and_the_status_line(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await answered_by_key(pilot, app, server, far())
        await pilot.press("m")
        # Before the engine answers: what was asked is on screen.
        assert "mut" in flags(app)
        assert "MUT" in app.status.plain
        await until(pilot, lambda: "MUTED" in app.status.plain, what="MUTED on the status line")
        assert flags(app) == "muted"
        assert logged(app, "Muted: bob hears nothing from you")
        await pilot.press("m")
        await until(pilot, lambda: "MUTED" not in app.status.plain, what="unmuted")
        assert logged(app, "Unmuted: bob hears you again.")
        await pilot.press("h")
        assert "hold" in flags(app)
        await until(pilot, lambda: "ON HOLD" in app.status.plain, what="ON HOLD")
        assert flags(app) == "on hold"
