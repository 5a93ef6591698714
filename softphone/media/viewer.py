"""Remote video in a window owned by a separate process.

OpenCV's HighGUI wants its own main thread and would stall the engine's event loop, so the
window lives in a spawned child fed over a pipe. The parent sends a frame only when the child
has said it is ready for one: the event loop never blocks on a slow window, and frames the
window could not keep up with are dropped and counted.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import av

_READY = "ready"
_NOTICE = "notice"
_CLOSED = "closed"


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _window_error(exc: Exception) -> str:
    """One sentence for the user out of OpenCV's multi-line build advice."""
    text = str(exc)
    if "not implemented" in text:
        # opencv-python-headless has no HighGUI at all; the GUI wheel is opencv-python.
        return "Cannot open a video window: this OpenCV build has no GUI support."
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"Cannot open a video window: {first[:200]}."


def _child(conn: Connection, title: str) -> None:
    """Viewer process: show frames until the pipe closes or the user closes the window."""
    if not _has_display():
        conn.send((_NOTICE, "No display: remote video is not shown."))
        return
    try:
        import cv2

        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
    except Exception as exc:  # cv2.error from a headless build, missing libGL, no server...
        conn.send((_NOTICE, _window_error(exc)))
        return
    sized = False
    conn.send((_READY, None))
    try:
        while True:
            if conn.poll(0.03):
                image = conn.recv()
                if not sized:  # start at the stream's size; the user may resize after
                    cv2.resizeWindow(title, image.shape[1], image.shape[0])
                    sized = True
                cv2.imshow(title, image)
                conn.send((_READY, None))
            cv2.waitKey(1)  # HighGUI paints and handles events only in here
            if cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                conn.send((_CLOSED, None))
                return
    except (EOFError, BrokenPipeError, OSError):
        pass  # the parent hung up: the call ended
    finally:
        with contextlib.suppress(Exception):
            cv2.destroyAllWindows()


class Viewer:
    """Parent side: ``show(frame)`` from the event loop, ``close()`` when the call ends."""

    def __init__(self, title: str = "softphone") -> None:
        self.title = title
        self.notice: str | None = None  # set once if the window cannot be shown
        self.shown = 0
        self.dropped = 0
        self.window_closed = False
        self._conn: Connection | None = None
        self._process: Any = None
        self._ready = False

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")  # fork would copy aiortc's threads
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_child, args=(child, self.title), name="softphone-viewer", daemon=True
        )
        self._process.start()
        child.close()
        self._conn = parent

    @property
    def active(self) -> bool:
        return self._conn is not None and self.notice is None and not self.window_closed

    def poll(self) -> None:
        """Take in the child's messages (ready / notice / closed) without blocking."""
        conn = self._conn
        try:
            while conn is not None and conn.poll():
                kind, text = conn.recv()
                if kind == _READY:
                    self._ready = True
                elif kind == _NOTICE and self.notice is None:
                    self.notice = str(text)
                elif kind == _CLOSED:
                    self.window_closed = True
        except (EOFError, OSError):
            self._ready = False
            if self.notice is None and not self.window_closed:
                self.window_closed = True

    def show(self, frame: av.VideoFrame) -> bool:
        """Send the frame if the window is ready for one; False if dropped or not shown."""
        self.poll()
        if not self.active or not self._ready or self._conn is None:
            if self.active:
                self.dropped += 1
            return False
        self._ready = False
        try:
            self._conn.send(frame.to_ndarray(format="bgr24"))
        except (BrokenPipeError, OSError):
            self.window_closed = True
            return False
        self.shown += 1
        return True

    def close(self, timeout: float = 2.0) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        process, self._process = self._process, None
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(timeout)
