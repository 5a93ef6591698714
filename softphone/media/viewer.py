"""Remote video in a window owned by a separate process.

OpenCV's HighGUI (the Qt build of the ``opencv-python`` wheel) wants its own main thread and
would stall the engine's event loop, so the window lives in a child process fed over a pipe, and
``cv2`` is only ever imported in that child. The parent sends a frame only when the child has
said it is ready for one: the event loop never blocks on a slow window, and frames the window
could not keep up with are dropped and counted.

The child is a fresh interpreter that imports this module and nothing else of ours: not a
multiprocessing "spawn" child, which would re-import the parent's ``__main__`` first. That
matters because ``av`` and ``cv2`` bundle libxcb extension libraries under the same sonames but
linked to different libxcb copies; once ``av`` is loaded, Qt's X connection hangs for good
(``xcb_shm_query_version`` waits forever). So ``av`` must never be imported before ``cv2`` here.

The Qt build in the wheel sometimes misses the MapNotify of its own new window (about one start
in ten on Xvfb); Qt then believes the window is unmapped and never paints it: a black window for
the whole call. After the first frame the child therefore sends its window a synthetic MapNotify
through Xlib (see ``_announce_mapped``), which Qt takes as the real one; when Qt already had it,
the only effect is one repaint.

Qt writes warnings to stderr and aborts the whole process when it cannot reach the X server
("could not connect to display"). The child's stdout and stderr therefore go to a log file,
never to the terminal the TUI draws on, and a child that dies without saying why becomes a
notice in the parent, made from that log and its exit status.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

_READY = "ready"
_NOTICE = "notice"
_CLOSED = "closed"

# Qt's harmless start-up chatter, never the reason a window failed.
_NOISE = ("QFontDatabase:", "Note that Qt no longer ships fonts")
_QT_CATEGORY = re.compile(r"^qt(\.\w+)+:\s*")


def _no_display_notice() -> str | None:
    """Why no window can open here, or None when an X display is configured."""
    if os.environ.get("DISPLAY"):
        return None
    if os.environ.get("WAYLAND_DISPLAY"):  # the wheel's Qt has only the xcb (X11) platform
        return "No X display (Wayland without XWayland): remote video is not shown."
    return "No display: remote video is not shown."


def _window_error(exc: Exception) -> str:
    """One sentence for the user out of OpenCV's multi-line build advice."""
    text = str(exc)
    if "not implemented" in text:
        # opencv-python-headless has no HighGUI at all; the GUI wheel is opencv-python.
        return "Cannot open a video window: this OpenCV build has no GUI support."
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"Cannot open a video window: {first[:200].rstrip('.')}."


def _exit_reason(exitcode: int | None, stderr: str) -> str:
    """The most telling line of a dead child's stderr, else how it exited."""
    lines = [_QT_CATEGORY.sub("", line.strip()) for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.startswith(_NOISE)]
    if lines:
        # Qt says why first; a Python traceback says it last.
        line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
        return line[:200].rstrip(".")
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the viewer process was killed by {name}"
    if exitcode is None:
        return "the viewer process stopped answering"
    return f"the viewer process exited with status {exitcode}"


def _window_open(cv2: Any, title: str) -> bool:
    try:
        return bool(cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1)
    except Exception:  # Qt's cv2.error "NULL guiReceiver" once the user closed the window
        return False


# Xlib constants for _announce_mapped.
_X_MAP_NOTIFY = 19
_X_STRUCTURE_NOTIFY_MASK = 1 << 17
_X_ANY_PROPERTY_TYPE = 0


class _XMapEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("event", ctypes.c_ulong),
        ("window", ctypes.c_ulong),
        ("override_redirect", ctypes.c_int),
    ]


class _XEvent(ctypes.Union):
    _fields_ = [("xmap", _XMapEvent), ("pad", ctypes.c_long * 24)]  # XEvent is 24 longs


def _xlib() -> Any:
    x11: Any = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    dpy, xid, c_int, ptr = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.POINTER
    x11.XOpenDisplay.restype = dpy
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [dpy]
    x11.XDefaultRootWindow.restype = xid
    x11.XDefaultRootWindow.argtypes = [dpy]
    x11.XInternAtom.restype = xid
    x11.XInternAtom.argtypes = [dpy, ctypes.c_char_p, c_int]
    x11.XQueryTree.restype = c_int
    x11.XQueryTree.argtypes = [dpy, xid, ptr(xid), ptr(xid), ptr(ptr(xid)), ptr(ctypes.c_uint)]
    x11.XGetWindowProperty.restype = c_int
    x11.XGetWindowProperty.argtypes = [
        dpy, xid, xid, ctypes.c_long, ctypes.c_long, c_int, xid,
        ptr(xid), ptr(c_int), ptr(ctypes.c_ulong), ptr(ctypes.c_ulong), ptr(ptr(ctypes.c_ubyte)),
    ]  # fmt: skip
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XSendEvent.restype = c_int
    x11.XSendEvent.argtypes = [dpy, xid, c_int, ctypes.c_long, ptr(_XEvent)]
    x11.XSync.argtypes = [dpy, c_int]
    return x11


def _x_property(x11: Any, dpy: int, window: int, atom: int) -> list[int] | bytes | None:
    """A window property: 32-bit items as ints, 8-bit items as bytes."""
    kind, fmt = ctypes.c_ulong(), ctypes.c_int()
    count, left = ctypes.c_ulong(), ctypes.c_ulong()
    data = ctypes.POINTER(ctypes.c_ubyte)()
    if x11.XGetWindowProperty(
        dpy, window, atom, 0, 1024, 0, _X_ANY_PROPERTY_TYPE,
        ctypes.byref(kind), ctypes.byref(fmt), ctypes.byref(count), ctypes.byref(left),
        ctypes.byref(data),
    ) != 0 or not data:  # fmt: skip
        return None
    try:
        if fmt.value == 32:  # Xlib hands 32-bit items over as C longs
            longs = ctypes.cast(data, ctypes.POINTER(ctypes.c_long))
            return [int(longs[i]) for i in range(count.value)]
        return bytes(data[: count.value]) if fmt.value == 8 else None
    finally:
        x11.XFree(data)


def _announce_mapped(title: str) -> int:
    """Send this process's top-level window titled ``title`` a synthetic MapNotify.

    Works around the Qt build in opencv-python missing its window's MapNotify now and then (see
    the module docstring). The window is found by its _NET_WM_PID and _NET_WM_NAME (Qt sets
    both), at most three levels below the root (window-manager frames in between). Best
    effort: returns how many windows were told, 0 when there is nothing to do or no Xlib.
    """
    try:
        x11 = _xlib()
    except OSError:
        return 0
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        return 0
    told = 0
    try:
        pid_atom = x11.XInternAtom(dpy, b"_NET_WM_PID", 1)
        name_atom = x11.XInternAtom(dpy, b"_NET_WM_NAME", 1)
        if not pid_atom or not name_atom:
            return 0
        parents = [x11.XDefaultRootWindow(dpy)]
        for _depth in range(3):
            windows: list[int] = []
            for parent in parents:
                root, up = ctypes.c_ulong(), ctypes.c_ulong()
                children = ctypes.POINTER(ctypes.c_ulong)()
                count = ctypes.c_uint()
                if x11.XQueryTree(
                    dpy, parent, ctypes.byref(root), ctypes.byref(up), ctypes.byref(children),
                    ctypes.byref(count),
                ) and children:  # fmt: skip
                    windows.extend(int(children[i]) for i in range(count.value))
                    x11.XFree(children)
            for window in windows:
                if (
                    _x_property(x11, dpy, window, pid_atom) == [os.getpid()]
                    and _x_property(x11, dpy, window, name_atom) == title.encode()
                ):
                    event = _XEvent()
                    event.xmap.type = _X_MAP_NOTIFY
                    event.xmap.send_event = 1
                    event.xmap.event = event.xmap.window = window
                    told += bool(
                        x11.XSendEvent(
                            dpy, window, 0, _X_STRUCTURE_NOTIFY_MASK, ctypes.byref(event)
                        )
                    )
            parents = windows
        x11.XSync(dpy, 0)
    finally:
        x11.XCloseDisplay(dpy)
    return told


def _child(conn: Connection, title: str) -> None:
    """Viewer process: show frames until the pipe closes or the user closes the window."""
    # A Qt abort is reported by the parent: no core file for it.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    notice = _no_display_notice()
    if notice is None and "av" in sys.modules:  # see the module docstring: Qt would hang
        notice = "Cannot open a video window: av was imported before cv2 in the viewer."
    if notice is not None:
        conn.send((_NOTICE, notice))
        return
    try:
        import cv2

        # Resizable, the picture keeps its aspect ratio, and no toolbar or status bar around it
        # (Qt's default): the window is the picture. getattr: WINDOW_GUI_NORMAL is 0x10 in every
        # cv2 build, stand-ins in tests may lack it.
        flags = cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | getattr(cv2, "WINDOW_GUI_NORMAL", 0)
        cv2.namedWindow(title, flags)
    except Exception as exc:  # cv2.error from a headless build, missing libGL...
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
                cv2.imshow(title, image)
                if not sized:
                    cv2.waitKey(1)
                    _announce_mapped(title)  # see the module docstring
                    sized = True
                conn.send((_READY, None))
            cv2.waitKey(1)  # HighGUI paints and handles events only in here
            if not _window_open(cv2, title):
                conn.send((_CLOSED, None))
                return
    except (EOFError, BrokenPipeError, OSError):
        pass  # the parent hung up: the call ended (or the parent died)
    finally:
        with contextlib.suppress(Exception):
            cv2.destroyAllWindows()


# The child's whole program. The parent's sys.path comes first over the pipe, as multiprocessing
# would hand it over, so the child finds the same modules (this one, and cv2) as the parent.
_BOOTSTRAP = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "conn = Connection(int(sys.argv[1]))\n"
    "sys.path[:] = conn.recv()\n"
    "from softphone.media.viewer import _child\n"
    "_child(conn, sys.argv[2])\n"
)


class Viewer:
    """Parent side: ``show(frame)`` from the event loop, ``close()`` when the call ends."""

    def __init__(self, title: str = "softphone") -> None:
        self.title = title
        self.notice: str | None = None  # set once if the window cannot be shown
        self.shown = 0
        self.dropped = 0
        self.window_closed = False
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._opened = False  # the child opened its window (said "ready" once)
        self._stderr_path: str | None = None

    def start(self) -> None:
        # A fresh interpreter (fork would copy aiortc's threads; see the module docstring).
        parent, child = multiprocessing.Pipe()
        fd, self._stderr_path = tempfile.mkstemp(prefix="softphone-viewer-", suffix=".log")
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(child.fileno()), self.title],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                pass_fds=(child.fileno(),),
                start_new_session=True,  # no terminal signals; it ends when the pipe closes
            )
        except OSError as exc:  # no interpreter to run: say so, the call goes on
            parent.close()
            self.notice = f"Cannot open a video window: {exc}."
            return
        finally:
            os.close(fd)
            child.close()
        self._conn = parent
        with contextlib.suppress(OSError):  # a child dead already: poll() reports it
            parent.send(list(sys.path))

    @property
    def exitcode(self) -> int | None:
        """The viewer process's exit status once it has ended (negative: killed by a signal)."""
        return None if self._process is None else self._process.poll()

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
                    self._ready = self._opened = True
                elif kind == _NOTICE and self.notice is None:
                    self.notice = str(text)
                elif kind == _CLOSED:
                    self.window_closed = True
        except (EOFError, OSError):
            self._ready = False
            if self.notice is None and not self.window_closed:
                self._child_died()

    def _child_died(self) -> None:
        """The child hung up without a word: it crashed (Qt aborts on a dead display)."""
        process = self._process
        exitcode = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                exitcode = process.wait(1.0)  # its pipe closed as it exited: this is quick
        stderr = ""
        if self._stderr_path is not None:
            with contextlib.suppress(OSError), open(self._stderr_path, errors="replace") as f:
                stderr = f.read()[-8000:]
        reason = _exit_reason(exitcode, stderr)
        if self._opened:
            self.notice = f"The video window failed: {reason}."
        else:
            self.notice = f"Cannot open a video window: {reason}."
        log.warning("viewer process ended (exit %s): %s", exitcode, stderr.strip() or "no output")

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
            self.poll()  # a crash turns into a notice
            if self.notice is None:
                self.window_closed = True
            return False
        self.shown += 1
        return True

    def close(self, timeout: float = 2.0) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        process = self._process
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        path, self._stderr_path = self._stderr_path, None
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
