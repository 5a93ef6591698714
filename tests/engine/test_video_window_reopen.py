"""A remote-video window the user closed during the call opens again (`Engine.show_video`): a new
viewer on the live track, which shows the frames that keep coming; a call with no remote video,
or a kit with no windows, is a clear error."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from softphone.engine import EngineError, EngineErrorCode
from softphone.engine.events import CallReceive, MediaError
from softphone.engine.media_kit import default_kit
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties
from tests.engine.test_video_window import video_call
from tests.media.test_viewer_window import Xvfb, find_window, send_wm_delete, xvfb  # noqa: F401

TITLE = "softphone: bob"


async def until(condition: object, what: str, timeout: float = 15) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.1)


async def test_a_closed_window_opens_again_and_shows_the_call(
    server: RunningServer,
    parties: Parties,
    xvfb: Xvfb,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    alice = await parties.online(server, "alice", show_video=True, watch_devices=False)
    bob = await parties.online(server, "bob", watch_devices=False)
    a_id, _ = await video_call(alice, bob)
    media = alice.engine.session(a_id).media
    old = media.window
    assert old is not None
    await until(lambda: old.shown >= 5, "frames in the first window")
    window = find_window(xvfb.display, TITLE)
    assert window is not None
    send_wm_delete(xvfb.display, window)  # the user closes it
    await until(lambda: old.window_closed, "the window closed")
    await until(lambda: find_window(xvfb.display, TITLE) is None, "the window gone")

    await alice.engine.show_video(a_id)
    new = media.window
    assert new is not None and new is not old
    await until(lambda: find_window(xvfb.display, TITLE) is not None, "a new window")
    await until(lambda: new.shown >= 10, "frames in the new window")
    assert old.exitcode is not None  # the closed one's process was reaped
    await alice.engine.show_video(a_id)  # it shows already: nothing changes
    assert media.window is new
    assert not [e for e in alice.events.of(a_id) if isinstance(e, MediaError)]
    assert alice.engine.get(a_id).state == CallState.CONNECTED
    await alice.engine.end(a_id)
    await until(lambda: find_window(xvfb.display, TITLE) is None, "the window outlived the call")


async def test_no_video_or_no_windows_is_a_clear_error(
    server: RunningServer, parties: Parties
) -> None:
    windowless = dataclasses.replace(default_kit(), window=None)
    alice = await parties.online(
        server, "alice", show_video=True, media=windowless, watch_devices=False
    )
    bob = await parties.online(server, "bob", watch_devices=False)
    a_id, b_id = await video_call(alice, bob)
    with pytest.raises(EngineError) as no_window:
        await alice.engine.show_video(a_id)
    assert no_window.value.code == EngineErrorCode.NOT_SUPPORTED
    assert no_window.value.message == "no video windows here"
    await alice.engine.end(a_id)
    await bob.events.state(b_id, CallState.ENDED)

    a_id = await alice.engine.make("bob")  # audio only
    received = await bob.events.wait(CallReceive, lambda e: e.call_id != b_id)
    await bob.engine.answer(received.call_id)
    await alice.events.state(a_id, CallState.CONNECTED)
    with pytest.raises(EngineError) as no_video:
        await alice.engine.show_video(a_id)
    assert no_video.value.code == EngineErrorCode.INVALID_STATE
    assert no_video.value.message == "bob sends no video to show"
    await alice.engine.end(a_id)
