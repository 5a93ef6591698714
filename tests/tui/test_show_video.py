"""Friction 9: a video window closed during the call opens again. While the selected call
receives video the footer offers `w Window` (still within 80 columns, the palette key
included); pressing it after the user closed the window opens a new one on a private Xvfb."""

from __future__ import annotations

import asyncio

import pytest

from softphone.engine.events import CallReceive, CallStateChange
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.media.test_viewer_window import Xvfb, find_window, send_wm_delete, xvfb  # noqa: F401
from tests.tui.conftest import Far, app_for, row_states, until
from tests.tui.test_app import SIZE, logged
from tests.tui.test_focus import footer_text

TITLE = "softphone: bob"


async def test_w_opens_the_closed_video_window_again(
    server: RunningServer,
    far: type[Far],
    xvfb: Xvfb,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = app_for(server, "alice")
    app.options.video, app.options.show_video = True, True
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine is not None, what="login")
        bob = far()
        await bob.start(server, "bob")
        await pilot.press(*"bob", "enter")  # the video box starts checked
        received = await bob.wait(CallReceive)
        await bob.wait(
            CallStateChange,
            lambda e: e.call_id == received.call_id and e.state == CallState.RINGING,
        )
        await bob.call(bob.thread.answer, received.call_id, video=True)
        await until(pilot, lambda: row_states(app).get("bob") == "in call", what="in call")

        async def window() -> bool:
            return await asyncio.to_thread(find_window, xvfb.display, TITLE) is not None

        deadline = asyncio.get_running_loop().time() + 15
        while not await window():
            assert asyncio.get_running_loop().time() < deadline, "no window for the call"
            await pilot.pause(0.2)
        await until(pilot, lambda: "w Window" in footer_text(app), what="the key offered")
        footer = footer_text(app)
        keys = ("^q Quit", "e End", "h Hold", "m Mute", "v Video", "w Window", "0-9 tones")
        assert all(key in footer for key in keys) and "^p palette" in footer, footer

        shown = await asyncio.to_thread(find_window, xvfb.display, TITLE)
        assert shown is not None
        await asyncio.to_thread(send_wm_delete, xvfb.display, shown)  # the user closes it
        while await window():
            assert asyncio.get_running_loop().time() < deadline, "the window did not close"
            await pilot.pause(0.2)
        await pilot.pause(1.0)
        assert not await window()  # nothing opens it by itself

        await pilot.press("w")
        deadline = asyncio.get_running_loop().time() + 15
        while not await window():
            assert asyncio.get_running_loop().time() < deadline, "w opened no window"
            await pilot.pause(0.2)
        await until(pilot, lambda: logged(app, "Showing bob's video in a window."))
        engine = app.engine
        assert engine is not None
        call_id = next(iter(app.views))
        viewer = engine.engine.session(call_id).media.window
        assert viewer is not None
        await until(pilot, lambda: viewer.shown >= 5, what="frames in the new window")
