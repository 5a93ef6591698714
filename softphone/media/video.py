"""Video sources (test pattern with a frame-number barcode, V4L2 camera) and a video sink."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from softphone.media.devices import list_video_devices
from softphone.media.errors import MediaUnavailable
from softphone.media.switching import abandon, retire

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90000  # RTP video clock; pts in these units keep aiortc from rescaling
_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
_MAX_LATE = 0.2  # seconds behind schedule before pacing starts afresh

BARCODE_BITS = 16
# A light/dark difference smaller than this means "no barcode here" (muted frame, other video).
_MIN_CONTRAST = 60.0


def _cell_size(width: int, height: int) -> tuple[int, int]:
    """Barcode cells: the full width split in BARCODE_BITS, and as tall as they are wide.

    Cells of 40x40 px at 640x480 are large against VP8's 16x16 macroblocks, so even a
    starved encoder keeps each cell's mean far from the threshold.
    """
    cell_w = width // BARCODE_BITS
    return cell_w, min(cell_w, height // 4)


def _stamp(image: npt.NDArray[np.uint8], number: int) -> None:
    """Draw the number as two rows of cells: the bits, then the bits inverted (a checksum)."""
    height, width = image.shape[:2]
    cw, ch = _cell_size(width, height)
    for bit in range(BARCODE_BITS):
        on = (number >> bit) & 1
        x = slice(bit * cw, (bit + 1) * cw)
        image[0:ch, x] = 255 if on else 0
        image[ch : 2 * ch, x] = 0 if on else 255


def read_frame_number(frame: av.VideoFrame) -> int | None:
    """The number PatternSource stamped on this frame, or None if there is no valid barcode."""
    luma = np.asarray(frame.to_ndarray(format="gray"), dtype=np.float64)
    height, width = luma.shape
    cw, ch = _cell_size(width, height)
    if cw < 5 or ch < 5:
        return None
    mx, my = cw // 4, ch // 4  # read cell centres only: edges blur under compression
    number = 0
    for bit in range(BARCODE_BITS):
        x = slice(bit * cw + mx, (bit + 1) * cw - mx)
        top = float(luma[my : ch - my, x].mean())
        bottom = float(luma[ch + my : 2 * ch - my, x].mean())
        if abs(top - bottom) < _MIN_CONTRAST:
            return None
        if top > bottom:
            number |= 1 << bit
    return number


class _PacedVideo(MediaStreamTrack):
    """Shared pacing: frame i is due at start + i/fps (no drift), pts on the 90 kHz clock."""

    kind = "video"

    def __init__(self, fps: int) -> None:
        super().__init__()
        self.fps = fps
        self.muted = False
        self.frames_sent = 0
        self._start: float | None = None

    async def _wait_due(self) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
            return
        wait = self._start + self.frames_sent / self.fps - now
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -_MAX_LATE:  # nobody asked for a while: re-anchor rather than burst
            self._start = now - self.frames_sent / self.fps

    def _finish(self, frame: av.VideoFrame) -> av.VideoFrame:
        frame.pts = self.frames_sent * VIDEO_CLOCK // self.fps
        frame.time_base = _TIME_BASE
        self.frames_sent += 1
        return frame


class PatternSource(_PacedVideo):
    """A moving colour pattern with the frame number (from 0, mod 2**16) as a barcode on top."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 15) -> None:
        super().__init__(fps)
        self.width, self.height = width, height
        y, x = np.mgrid[0:height, 0:width]
        base = np.zeros((height, width, 3), dtype=np.uint8)
        base[..., 0] = x * 255 // max(1, width - 1)
        base[..., 1] = y * 255 // max(1, height - 1)
        base[..., 2] = (x + y) % 256
        self._base = base

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._wait_due()
        if self.muted:
            image = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        else:
            # Moving content keeps the encoder honest (a static image costs no bits).
            image = np.roll(self._base, (self.frames_sent * 4) % self.width, axis=1)
            _stamp(image, self.frames_sent % (1 << BARCODE_BITS))
        return self._finish(av.VideoFrame.from_ndarray(image, format="bgr24"))


class CameraSource(_PacedVideo):
    """A V4L2 camera through FFmpeg; frames are read on a worker thread, not the loop."""

    def __init__(
        self, device: str = "/dev/video0", width: int = 640, height: int = 480, fps: int = 15
    ) -> None:
        super().__init__(fps)
        self.device = device
        options = {"video_size": f"{width}x{height}", "framerate": str(fps)}
        try:
            self._container: Any = av.open(device, format="v4l2", options=options)
        except (OSError, av.FFmpegError) as exc:
            raise MediaUnavailable(f"Cannot open the camera {device!r}: {exc}.") from exc
        self._frames = self._container.decode(video=0)

    def _read(self) -> av.VideoFrame:
        frame: av.VideoFrame = next(self._frames)
        return frame

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            frame = await asyncio.get_running_loop().run_in_executor(None, self._read)
        except (StopIteration, av.FFmpegError, OSError) as exc:
            raise MediaStreamError from exc
        if self.muted:
            black = np.zeros((frame.height, frame.width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(black, format="bgr24")
        return self._finish(frame)

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(Exception):
            self._container.close()


class SwitchableVideo(MediaStreamTrack):
    """The outgoing video track of a call whose source (`inner`) can be replaced while it is
    sent (`switch`): timestamps run on across a switch, so the far end sees one stream.
    `muted` is passed on to the current source (sources black out their own frames)."""

    kind = "video"

    def __init__(
        self, inner: MediaStreamTrack, size: tuple[int, int] = (640, 480), fps: int = 15
    ) -> None:
        super().__init__()
        self._inner = inner
        self.size, self.fps = size, fps  # what a replacement source is opened with
        self._muted = False
        self._read: asyncio.Future[Any] | None = None  # the inner source's recv() in flight
        self._shift = 0  # added to the inner source's pts (90 kHz)
        self._rebase = False
        self._last: tuple[int, float] | None = None  # (pts, monotonic time) of the last frame

    @property
    def inner(self) -> MediaStreamTrack:
        return self._inner

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = value
        if hasattr(self._inner, "muted"):
            self._inner.muted = value

    def switch(self, source: MediaStreamTrack) -> MediaStreamTrack:
        """Send `source` from now on; the previous source is stopped and returned."""
        old, self._inner = self._inner, source
        self.muted = self._muted
        self._rebase = True
        self._drop_read()  # a reader waiting on the old source wakes up and reads the new one
        retire(old, source)
        return old

    def _drop_read(self) -> None:
        read, self._read = self._read, None
        abandon(read)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        while True:
            inner = self._inner
            read = self._read
            if read is None:
                read = self._read = asyncio.ensure_future(inner.recv())
            try:
                await asyncio.wait((read,))
            except asyncio.CancelledError:
                if self._read is read:
                    self._drop_read()
                raise
            if self._read is read:
                self._read = None
            if inner is not self._inner or read.cancelled():
                continue  # switched meanwhile
            frame = read.result()
            assert isinstance(frame, av.VideoFrame)
            return self._restamp(frame)

    def _restamp(self, frame: av.VideoFrame) -> av.VideoFrame:
        base = frame.time_base or _TIME_BASE
        pts = int((frame.pts or 0) * base * VIDEO_CLOCK)
        now = time.monotonic()
        if self._rebase and self._last is not None:
            last_pts, last_time = self._last
            self._shift = last_pts + max(1, round((now - last_time) * VIDEO_CLOCK)) - pts
        self._rebase = False
        pts += self._shift
        if self._last is not None and pts <= self._last[0]:
            pts = self._last[0] + 1
        frame.pts = pts
        frame.time_base = _TIME_BASE
        self._last = (pts, now)
        return frame

    def stop(self) -> None:
        super().stop()
        self._drop_read()
        with contextlib.suppress(Exception):
            self._inner.stop()


def _camera_path(spec: str) -> str | None:
    """The V4L2 node of a camera spec ("/dev/videoN", "N", "camera:..."), "" for the first
    camera, None for the test pattern."""
    spec = spec.strip()
    if spec.startswith("camera:"):
        spec = spec.removeprefix("camera:") or "default"
    if spec in ("pattern", "test", ""):
        return None
    if spec in ("default", "camera"):
        return ""
    return f"/dev/video{spec}" if spec.isdigit() else spec


def check_camera(spec: str) -> None:
    """Raise MediaUnavailable if `open_video_source(spec, ...)` cannot find its camera (the
    camera is not opened)."""
    path = _camera_path(spec)
    if path is None:
        return
    cameras = list_video_devices()
    if path == "" and not cameras:
        raise MediaUnavailable("No camera found (no /dev/video* device).")
    if path and not os.path.exists(path):
        raise MediaUnavailable(f"No camera {path!r}.")


def open_video_source(spec: str, width: int = 640, height: int = 480, fps: int = 15) -> Any:
    """A video source from a spec: "pattern" (the barcode test pattern), "default" (the
    first camera), "/dev/videoN" or "N" (a V4L2 camera). Raises MediaUnavailable."""
    path = _camera_path(spec)
    if path is None:
        return PatternSource(width, height, fps)
    if path == "":
        cameras = list_video_devices()
        if not cameras:
            raise MediaUnavailable("No camera found (no /dev/video* device).")
        path = cameras[0]
    return CameraSource(path, width, height, fps)


def describe_camera(spec: str) -> str:
    """A readable label for a camera spec ("test pattern", "/dev/video0")."""
    path = _camera_path(spec)
    if path is None:
        return "test pattern"
    return path or "default camera"


class VideoSink:
    """Consumes a remote video track, calling ``on_frame`` (on the loop) for each frame."""

    def __init__(self, on_frame: Callable[[av.VideoFrame], None] | None = None) -> None:
        self.on_frame = on_frame
        self.frames = 0
        self.last_size: tuple[int, int] | None = None
        self.callback_errors = 0
        self._task: asyncio.Task[None] | None = None

    def start(self, track: MediaStreamTrack) -> None:
        if self._task is not None and not self._task.done():
            raise RuntimeError("this sink is already consuming a track")
        self._task = asyncio.get_running_loop().create_task(self._consume(track))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _hand_on(self, frame: av.VideoFrame) -> None:
        """on_frame is someone else's code: a bug there must not stop the video."""
        assert self.on_frame is not None
        try:
            self.on_frame(frame)
        except Exception:
            self.callback_errors += 1
            if self.callback_errors == 1:
                log.exception("on_frame failed (further failures are only counted)")

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                self.frames += 1
                self.last_size = (frame.width, frame.height)
                if self.on_frame is not None:
                    self._hand_on(frame)
        except MediaStreamError:
            pass  # the remote track ended with the call
