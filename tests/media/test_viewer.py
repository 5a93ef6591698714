"""The viewer process reports, once, when it cannot show video; the call goes on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np
import pytest

from softphone.media.video import PatternSource
from softphone.media.viewer import Viewer


def wait_for_notice(viewer: Viewer, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while viewer.notice is None and time.monotonic() < deadline:
        viewer.poll()
        time.sleep(0.02)
    assert viewer.notice is not None, "the viewer never reported"
    return viewer.notice


@pytest.mark.parametrize("display", [None, ":97"])
def test_viewer_without_a_usable_display(
    monkeypatch: pytest.MonkeyPatch, display: str | None
) -> None:
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display is None:
        monkeypatch.delenv("DISPLAY", raising=False)
    else:
        monkeypatch.setenv("DISPLAY", display)  # nothing listens there (and cv2 is headless)
    viewer = Viewer("test")
    viewer.start()
    try:
        notice = wait_for_notice(viewer)
        if display is None:
            assert notice == "No display: remote video is not shown."
        else:
            assert notice.startswith("Cannot open a video window")
            assert "\n" not in notice and len(notice) < 260
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
        assert viewer.show(frame) is False
        assert not viewer.active
        assert viewer.notice == notice  # reported once, not replaced
    finally:
        viewer.close()
    viewer.close()  # idempotent


FAKE_CV2 = '''
"""Stands in for OpenCV's HighGUI in the viewer child; logs what it is asked to do."""
import os

WINDOW_NORMAL, WINDOW_KEEPRATIO, WND_PROP_VISIBLE = 0, 2, 4
_log = os.environ["FAKE_CV2_LOG"]


def _write(text):
    with open(_log, "a") as f:
        f.write(text + "\\n")


def namedWindow(title, flags):
    _write(f"window {title} {flags}")


def resizeWindow(title, w, h):
    _write(f"resize {w} {h}")


def imshow(title, image):
    _write(f"show {image.shape[1]}x{image.shape[0]} {int(image[5, 5, 0])}")


def waitKey(ms):
    return -1


def getWindowProperty(title, prop):
    return 0.0 if os.path.exists(_log + ".closed") else 1.0


def destroyAllWindows():
    _write("destroyed")
'''


async def test_viewer_shows_frames_and_notices_window_close(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "cv2.py").write_text(FAKE_CV2)
    log = tmp_path / "cv2.log"
    monkeypatch.syspath_prepend(str(tmp_path))  # spawn hands sys.path to the child
    monkeypatch.setenv("FAKE_CV2_LOG", str(log))
    monkeypatch.setenv("DISPLAY", ":0")
    source = PatternSource(320, 240, fps=30)
    viewer = Viewer("far end")
    viewer.start()
    try:
        deadline = time.monotonic() + 15
        while viewer.shown < 5 and time.monotonic() < deadline:
            viewer.show(await source.recv())
        assert viewer.shown >= 5, viewer.notice
        assert viewer.notice is None
        await asyncio.sleep(0.2)
        lines = log.read_text().splitlines()
        assert lines[0] == "window far end 2"  # resizable, aspect ratio kept
        assert lines[1] == "resize 320 240"
        assert sum(line.startswith("show 320x240") for line in lines) == viewer.shown
        (tmp_path / "cv2.log.closed").touch()  # the user closes the window
        deadline = time.monotonic() + 5
        while not viewer.window_closed and time.monotonic() < deadline:
            viewer.poll()
            await asyncio.sleep(0.02)
        assert viewer.window_closed
        assert viewer.show(await source.recv()) is False
    finally:
        viewer.close()
    assert log.read_text().splitlines()[-1] == "destroyed"
