"""The camera the user chooses reaches the engine and the call: the TUI's camera option, and the
Devices screen's Camera list (set_camera, then media:deviceChange in Messages)."""

from __future__ import annotations

from textual.widgets import OptionList

from softphone.engine.events import CallNewTrack
from softphone.server.runner import RunningServer
from tests.tui.conftest import Far, app_for, row_states, until
from tests.tui.test_anonymous import answer_when_ringing
from tests.tui.test_app import SIZE, logged

MISSING = "/dev/video-softphone-test"  # a camera spec no machine has


async def test_the_camera_option_reaches_the_call_and_the_pattern_is_said(
    server: RunningServer, far: type[Far]
) -> None:
    app = app_for(server, "alice")
    app.options.camera, app.options.video, app.options.show_video = MISSING, True, False
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        await pilot.press(*"bob", "enter")  # the video box starts checked
        call_id = await answer_when_ringing(bob)
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="in call")
        await until(
            pilot,
            lambda: any(MISSING in text and error for text, error in app.log_pane.entries),
            what="the engine trying our camera",
        )
        await until(
            pilot,
            lambda: logged(
                app,
                "Call with bob: sending the test pattern as video (the camera could not be opened)",
            ),
            what="the pattern said",
        )
        await bob.wait(
            CallNewTrack, lambda e: e.call_id == call_id and e.kind == "video" and not e.local
        )


async def test_the_devices_screen_picks_the_camera(server: RunningServer) -> None:
    app = app_for(server, "alice")
    app.options.camera = MISSING
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        engine = app.engine
        assert engine is not None
        assert engine.list_devices().camera == MISSING
        app.action_devices()
        await until(pilot, lambda: type(app.screen).__name__ == "DevicesScreen", what="screen")
        cameras = app.screen.query_one("#camera", OptionList)
        cameras.focus()
        await pilot.pause()
        ids = [cameras.get_option_at_index(i).id for i in range(cameras.option_count)]
        cameras.highlighted = ids.index("pattern")
        await pilot.press("enter")
        await until(pilot, lambda: logged(app, "Camera: now test pattern"), what="the switch")
        assert type(app.screen).__name__ != "DevicesScreen"
        assert engine.list_devices().camera == "pattern"
