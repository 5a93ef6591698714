"""What the switchable audio and video tracks share: letting go of the old source."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiortc import MediaStreamTrack


def abandon(read: asyncio.Future[Any] | None) -> None:
    """Give up an in-flight `recv()` of the old source: cancel it, or, when it already
    finished, retrieve its outcome so a late frame (or error) is dropped silently."""
    if read is None:
        return
    if read.done():
        if not read.cancelled():
            read.exception()
    else:
        read.cancel()


def retire(old: MediaStreamTrack, new: MediaStreamTrack) -> None:
    """Stop the source a switch replaced (never the one now in use)."""
    if old is not new:
        with contextlib.suppress(Exception):
            old.stop()


__all__ = ["abandon", "retire"]
