"""The viewer opens a real OpenCV (Qt) window on an X server and shows the frames it is sent.

Runs against a private Xvfb; the X tools come from x11-utils (xwininfo) and x11-apps (xwd),
which scripts/install.sh --test installs. Missing tools are a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from softphone.media.video import PatternSource
from softphone.media.viewer import Viewer

TITLE = "softphone viewer test"
WIDTH, HEIGHT = 384, 216  # 16:9, unlike Qt's default 400x300 window
# Four vertical bars, RGB.
BARS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))

Image = npt.NDArray[np.uint8]


def _display_taken(number: int) -> bool:
    return Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists()


@dataclass
class Xvfb:
    display: str
    pid: int


@pytest.fixture
def xvfb() -> Iterator[Xvfb]:
    for tool in ("Xvfb", "xwininfo", "xwd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not installed (scripts/install.sh --test installs it)")
    for number in range(90, 130):
        if _display_taken(number):
            continue
        ready_r, ready_w = os.pipe()
        proc = subprocess.Popen(
            ["Xvfb", f":{number}", "-displayfd", str(ready_w),
             "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
            pass_fds=(ready_w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            started = ready.readline().strip() == str(number).encode()  # EOF: it gave up
        if not started:  # another server took the number meanwhile
            proc.wait(5)
            continue
        try:
            yield Xvfb(display=f":{number}", pid=proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return
    pytest.fail("no free X display number in :90-:129")


@dataclass
class Window:
    id: str
    width: int
    height: int


_TREE_LINE = re.compile(r'^\s*(0x[0-9a-f]+) "(.*)": \(.*\)\s+(\d+)x(\d+)[+-]')


def find_window(display: str, title: str) -> Window | None:
    """The top-level window with this title, if it exists and is mapped."""
    for _attempt in range(5):  # xwininfo fails if a window goes away while it walks the tree
        listing = subprocess.run(
            ["xwininfo", "-display", display, "-root", "-tree"], capture_output=True, text=True
        )
        if listing.returncode == 0:
            break
        time.sleep(0.05)
    listing.check_returncode()
    tree = listing.stdout
    for line in tree.splitlines():
        match = _TREE_LINE.match(line)
        if match and match[2] == title:
            # No check: the window may have gone away meanwhile.
            info = subprocess.run(
                ["xwininfo", "-display", display, "-id", match[1]], capture_output=True, text=True
            ).stdout
            if "IsViewable" in info:
                return Window(match[1], int(match[3]), int(match[4]))
    return None


def capture(display: str, window: Window) -> Image:
    """The window's pixels as RGB, from an XWD dump (X11 window dump, version 7)."""
    data = subprocess.run(
        ["xwd", "-display", display, "-id", window.id, "-silent"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    header = np.frombuffer(data[:100], dtype=">u4")
    header_size, version, _format, _depth, width, height = (int(v) for v in header[:6])
    byte_order, bits_per_pixel, bytes_per_line = int(header[7]), int(header[11]), int(header[12])
    masks = [int(v) for v in header[14:17]]  # red, green, blue
    ncolors = int(header[19])
    assert version == 7 and bits_per_pixel == 32, header
    offset = header_size + 12 * ncolors  # each XWDColor is 12 bytes
    dtype = "<u4" if byte_order == 0 else ">u4"
    rows = np.frombuffer(data, dtype=dtype, count=height * bytes_per_line // 4, offset=offset)
    pixels = rows.reshape(height, bytes_per_line // 4)[:, :width]
    shifts = [(mask & -mask).bit_length() - 1 for mask in masks]
    channels = [(pixels & mask) >> shift for mask, shift in zip(masks, shifts, strict=True)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def bars() -> Image:
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    step = WIDTH // len(BARS)
    for i, colour in enumerate(BARS):
        image[:, i * step : (i + 1) * step] = colour
    return image


def wait_until(predicate: object, timeout: float, viewer: Viewer | None = None) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if viewer is not None:
            viewer.poll()
        if predicate():
            return True
        time.sleep(0.02)
    return False


def send_until_shown(viewer: Viewer, frame: av.VideoFrame, count: int) -> None:
    target = viewer.shown + count
    deadline = time.monotonic() + 10
    while viewer.shown < target and time.monotonic() < deadline:
        if not viewer.show(frame):
            assert viewer.notice is None, viewer.notice
            time.sleep(0.01)
    assert viewer.shown == target, viewer.notice


def matches(display: str, title: str, expected: Image) -> bool:
    """The window shows this image (found afresh: Qt may replace its window)."""
    window = find_window(display, title)
    if window is None:
        return False
    try:
        image = capture(display, window)
    except subprocess.CalledProcessError:  # the window went away meanwhile
        return False
    if image.shape != expected.shape:
        return False
    diff = np.abs(image.astype(np.int16) - expected.astype(np.int16))
    return float(diff.mean()) < 2.0


class _ClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong), ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]  # fmt: skip


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _ClientMessage), ("pad", ctypes.c_long * 24)]


@contextlib.contextmanager
def xlib(display: str) -> Iterator[tuple[Any, int]]:
    """libX11 through ctypes and a connection to the display (python-xlib is no dependency)."""
    x11: Any = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    dpy_t, xid = ctypes.c_void_p, ctypes.c_ulong
    x11.XOpenDisplay.restype = dpy_t
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = xid
    x11.XInternAtom.argtypes = [dpy_t, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [dpy_t, xid, ctypes.c_int, ctypes.c_long, ctypes.POINTER(_XEvent)]
    x11.XResizeWindow.argtypes = [dpy_t, xid, ctypes.c_uint, ctypes.c_uint]
    x11.XSync.argtypes = [dpy_t, ctypes.c_int]
    x11.XCloseDisplay.argtypes = [dpy_t]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"
    try:
        yield x11, dpy
        x11.XSync(dpy, 0)
    finally:
        x11.XCloseDisplay(dpy)


def send_wm_delete(display: str, window: Window) -> None:
    """What a window manager sends when the user clicks the close button."""
    with xlib(display) as (x11, dpy):
        event = _XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.display = dpy
        event.xclient.window = int(window.id, 16)
        event.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        assert x11.XSendEvent(dpy, event.xclient.window, 0, 0, ctypes.byref(event))


def resize(display: str, window: Window, width: int, height: int) -> None:
    """What a user dragging the window's corner does (there is no window manager here)."""
    with xlib(display) as (x11, dpy):
        x11.XResizeWindow(dpy, int(window.id, 16), width, height)


@pytest.fixture
def viewer(xvfb: Xvfb, monkeypatch: pytest.MonkeyPatch) -> Iterator[Viewer]:
    monkeypatch.setenv("DISPLAY", xvfb.display)  # the spawned child inherits it
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    viewer = Viewer(TITLE)
    viewer.start()
    yield viewer
    viewer.close()


async def test_window_shows_the_frames(
    viewer: Viewer, xvfb: Xvfb, capfd: pytest.CaptureFixture[str]
) -> None:
    frame = av.VideoFrame.from_ndarray(bars(), format="rgb24")
    send_until_shown(viewer, frame, 5)

    window: Window | None = None

    def mapped() -> bool:
        nonlocal window
        window = find_window(xvfb.display, TITLE)
        return window is not None

    assert wait_until(mapped, 5), "no window with the title"
    assert window is not None
    # Starts at the stream's size, so with its aspect ratio.
    assert (window.width, window.height) == (WIDTH, HEIGHT)
    assert window.width * HEIGHT == window.height * WIDTH
    assert wait_until(lambda: matches(xvfb.display, TITLE, bars()), 3), "bars not shown"
    image = capture(xvfb.display, window)
    step = WIDTH // len(BARS)
    for i, colour in enumerate(BARS):
        centre = image[HEIGHT // 2, i * step + step // 2]
        assert tuple(int(c) for c in centre) == colour

    # Live video: the window follows the frames, the test pattern with its barcode included.
    source = PatternSource(WIDTH, HEIGHT, fps=30)
    last = frame
    for _ in range(10):
        last = await source.recv()
        send_until_shown(viewer, last, 1)
    assert viewer.shown == 15
    expected = np.asarray(last.to_ndarray(format="rgb24"), dtype=np.uint8)
    assert wait_until(lambda: matches(xvfb.display, TITLE, expected), 3), "pattern not shown"
    assert viewer.notice is None and not viewer.window_closed
    assert "cv2" not in sys.modules  # only the viewer process loads OpenCV

    viewer.close()  # the call ends
    assert viewer.exitcode == 0
    assert find_window(xvfb.display, TITLE) is None
    # Qt's chatter went to the viewer's log, not to the terminal.
    err = capfd.readouterr().err
    assert "QFontDatabase" not in err and "qt." not in err


def test_window_resizes_keeping_the_aspect_ratio(viewer: Viewer, xvfb: Xvfb) -> None:
    frame = av.VideoFrame.from_ndarray(bars(), format="rgb24")
    send_until_shown(viewer, frame, 2)
    assert wait_until(lambda: matches(xvfb.display, TITLE, bars()), 5), "bars not shown"
    window = find_window(xvfb.display, TITLE)
    assert window is not None
    resize(xvfb.display, window, 768, 300)  # wider than 16:9

    def letterboxed() -> bool:
        viewer.show(frame)  # frames keep coming
        window = find_window(xvfb.display, TITLE)
        if window is None or (window.width, window.height) != (768, 300):
            return False
        row = capture(xvfb.display, window)[150].astype(np.int16)
        picture = np.flatnonzero(np.abs(row - row[0]).sum(axis=1) > 30)  # not the border
        if picture.size == 0:
            return False
        width = int(picture[-1] - picture[0] + 1)
        centred = abs(int(picture[0]) - (767 - int(picture[-1]))) <= 2
        return abs(width - 300 * WIDTH // HEIGHT) <= 3 and centred

    assert wait_until(letterboxed, 5), "the picture does not keep its aspect ratio"
    assert viewer.notice is None and not viewer.window_closed


def test_user_closes_the_window(viewer: Viewer, xvfb: Xvfb) -> None:
    frame = av.VideoFrame.from_ndarray(bars(), format="rgb24")
    send_until_shown(viewer, frame, 2)
    assert wait_until(lambda: find_window(xvfb.display, TITLE) is not None, 5)
    window = find_window(xvfb.display, TITLE)
    assert window is not None
    send_wm_delete(xvfb.display, window)
    assert wait_until(lambda: viewer.window_closed, 5, viewer), viewer.notice
    assert viewer.notice is None  # closing the window is the user's choice, not a failure
    assert viewer.show(frame) is False
    assert wait_until(lambda: find_window(xvfb.display, TITLE) is None, 5)


def test_x_server_dies_during_the_call(viewer: Viewer, xvfb: Xvfb) -> None:
    frame = av.VideoFrame.from_ndarray(bars(), format="rgb24")
    send_until_shown(viewer, frame, 2)
    assert wait_until(lambda: find_window(xvfb.display, TITLE) is not None, 5)
    os.kill(xvfb.pid, 15)  # SIGTERM; the fixture reaps it
    deadline = time.monotonic() + 10
    while viewer.notice is None and time.monotonic() < deadline:
        viewer.show(frame)
        time.sleep(0.02)
    assert viewer.notice is not None and viewer.notice.startswith("The video window failed: ")
    assert "\n" not in viewer.notice and not viewer.window_closed


MAIN_WITH_AV = """
import sys, time
import av  # loaded by the main module before the viewer starts, as in the app
import numpy as np
from softphone.media.viewer import Viewer

if __name__ == "__main__":
    viewer = Viewer(sys.argv[1])
    viewer.start()
    frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
    deadline = time.monotonic() + 10
    while viewer.shown < 3 and viewer.notice is None and time.monotonic() < deadline:
        viewer.show(frame) or time.sleep(0.01)
    print(viewer.shown, viewer.notice)
    viewer.close()
"""


def test_viewer_process_does_not_inherit_the_main_module(
    xvfb: Xvfb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A multiprocessing "spawn" child re-imports __main__: av before cv2 hangs Qt's X connection.
    script = tmp_path / "app.py"
    script.write_text(MAIN_WITH_AV)
    monkeypatch.setenv("DISPLAY", xvfb.display)
    out = subprocess.run(
        [sys.executable, str(script), TITLE], capture_output=True, text=True, timeout=20
    )
    assert out.stdout.split() == ["3", "None"], out.stdout + out.stderr


def test_dead_display_gives_a_notice(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    number = next(n for n in range(150, 200) if not _display_taken(n))
    monkeypatch.setenv("DISPLAY", f":{number}")  # no server there: Qt aborts the child
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    viewer = Viewer(TITLE)
    viewer.start()
    try:
        assert wait_until(lambda: viewer.notice is not None, 10, viewer), "no notice"
        reason = f"could not connect to display :{number}"
        assert viewer.notice == f"Cannot open a video window: {reason}."
        frame = av.VideoFrame.from_ndarray(bars(), format="rgb24")
        assert viewer.show(frame) is False and viewer.dropped == 0
    finally:
        viewer.close()
    assert "could not connect" not in capfd.readouterr().err  # not on the terminal
