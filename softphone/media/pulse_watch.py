"""Watching the sound server (PulseAudio, or PipeWire's pulse server) for devices plugged in and
out, so lists and calls follow a headset without a rescan.

A daemon thread holds its own pulsectl connection, subscribed to sink, source, card and server
events (new, remove, change: a default device changing is a server event). libpulse's loop is
not asyncio's and pulsectl blocks, hence the thread; it wakes every `_TICK` to see whether it
should stop, so stopping takes at most that long. Events come in bursts (a USB headset brings
a card, a sink and a source, each announced more than once; every volume change is a "change"),
so after one the thread waits until `settle` seconds pass without another (at most
`_MAX_BURST`), reads the devices, and reports them only when they differ from what it
reported last. Routing by name (`pulse.routed`) opens streams on PortAudio's "pulse" device,
so none of this needs PortAudio to re-initialise: it works during calls.

`changed(devices)` runs on the watch's thread: hand the tuple to your own loop
(`call_soon_threadsafe`). The first report is the devices found on connecting (a baseline).
No library or no server at start: the thread ends at once and `problem` says why (nothing is
watched; PortAudio's own devices need a rescan). A server that goes away later is reported as
no devices, then reconnected every `_RECONNECT` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from softphone.media.pulse import PulseDevice, connect, read_devices

log = logging.getLogger(__name__)

Devices = tuple[PulseDevice, ...]
_TICK = 0.25  # seconds between looks at the stop flag
_MAX_BURST = 2.0  # a burst of events longer than this is reported anyway
_RECONNECT = 3.0  # seconds between attempts after the server went away
SETTLE = 0.3


class PulseWatch:
    """Reports the server's sinks and sources to `changed` whenever they change."""

    def __init__(self, changed: Callable[[Devices], None], *, settle: float = SETTLE) -> None:
        self._changed = changed
        self._settle = settle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: Devices | None = None
        self._pending = False  # an event came since the last read
        self._connected = False  # connected once at least: reconnect after a loss
        self.problem = ""  # why nothing is watched ("" while watching)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="softphone-pulse-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop watching and wait for the thread (blocks up to `_TICK` plus a read)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self) -> None:
        try:
            import pulsectl  # type: ignore[import-untyped]
        except (ImportError, OSError) as exc:  # it loads libpulse at import
            self.problem = f"pulsectl or libpulse is missing ({exc})"
            return
        while not self._stop.is_set():
            try:
                self._session(pulsectl)
            except Exception as exc:  # PulseError, PulseDisconnected: the server is gone
                if not self._connected:
                    self.problem = f"no PulseAudio or PipeWire server ({exc})"
                    log.info("device changes are not watched: %s", self.problem)
                    return
                log.info("sound server connection lost (%s); retrying", exc)
                self._report(())
                self._stop.wait(_RECONNECT)

    def _session(self, pulsectl: Any) -> None:
        """One connection: report the devices, then each change, until stopped or lost."""
        with connect(pulsectl, "softphone-watch") as pulse:
            self._connected = True
            pulse.event_mask_set("sink", "source", "card", "server")

            def on_event(_event: object) -> None:
                self._pending = True
                raise pulsectl.PulseLoopStop  # ends event_listen: back to the loop below

            pulse.event_callback_set(on_event)
            self._report(tuple(read_devices(pulse)))
            while not self._stop.is_set():
                self._pending = False
                pulse.event_listen(timeout=_TICK)
                if not self._pending:
                    continue
                deadline = time.monotonic() + _MAX_BURST
                while self._pending and time.monotonic() < deadline:
                    self._pending = False
                    pulse.event_listen(timeout=self._settle)  # returns early on an event
                self._report(tuple(read_devices(pulse)))

    def _report(self, devices: Devices) -> None:
        if devices == self._last:
            return  # a volume change, a burst that changed nothing we list
        self._last = devices
        try:
            self._changed(devices)
        except Exception:
            log.exception("device change callback failed")


__all__ = ["SETTLE", "Devices", "PulseWatch"]
