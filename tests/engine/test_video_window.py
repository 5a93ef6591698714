"""Remote video in a window: an engine made with show_video=True opens one viewer window per
call with remote video (a separate process), titled with the other party, and closes it when
the call ends; with no display the call goes on and one media:error says why."""

from __future__ import annotations

import asyncio

import pytest

from softphone.engine import CallState
from softphone.engine.events import CallReceive, MediaError
from softphone.server.runner import RunningServer
from tests.engine.conftest import Parties, Party
from tests.engine.test_video import frames_of, wait_frames
from tests.media.test_viewer_window import Xvfb, find_window, xvfb  # noqa: F401

S = CallState


async def video_call(alice: Party, bob: Party) -> tuple[str, str]:
    a_id = await alice.engine.make("bob", video=True, video_size=(320, 240))
    received = await bob.events.wait(CallReceive)
    await bob.events.state(received.call_id, S.RINGING)
    await bob.engine.answer(received.call_id, video=True, video_size=(320, 240))
    await alice.events.state(a_id, S.CONNECTED)
    return a_id, received.call_id


async def test_no_display_is_one_notice_and_the_call_goes_on(
    server: RunningServer, parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    alice = await parties.online(server, "alice", show_video=True)
    bob = await parties.online(server, "bob")
    at_alice = frames_of(alice.engine)
    a_id, _ = await video_call(alice, bob)
    notice = await alice.events.wait(MediaError, lambda e: e.call_id == a_id)
    assert "display" in notice.error.message.lower(), notice.error.message
    await wait_frames(at_alice, count=10)  # the call and its video carry on
    await asyncio.sleep(1.0)
    assert len([e for e in alice.events.of(a_id) if isinstance(e, MediaError)]) == 1
    assert alice.engine.get(a_id).state == S.CONNECTED
    await alice.engine.end(a_id)


async def test_a_video_call_opens_a_window_titled_with_the_party(
    server: RunningServer,
    parties: Parties,
    xvfb: Xvfb,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPLAY", xvfb.display)
    alice = await parties.online(server, "alice", show_video=True)
    bob = await parties.online(server, "bob")
    a_id, _ = await video_call(alice, bob)
    deadline = asyncio.get_running_loop().time() + 15
    while find_window(xvfb.display, "softphone: bob") is None:
        assert asyncio.get_running_loop().time() < deadline, "no window for the call"
        await asyncio.sleep(0.2)
    window = alice.engine.session(a_id).media.window
    assert window is not None
    while window.shown < 10:
        assert asyncio.get_running_loop().time() < deadline, f"{window.shown} frames shown"
        await asyncio.sleep(0.1)
    assert not [e for e in alice.events.of(a_id) if isinstance(e, MediaError)]
    await alice.engine.end(a_id)
    while find_window(xvfb.display, "softphone: bob") is not None:
        assert asyncio.get_running_loop().time() < deadline + 5, "the window outlived the call"
        await asyncio.sleep(0.2)
    assert window.exitcode is not None
