"""Mute, DTMF and statistics."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from softphone.client import errors as client_errors
from softphone.engine import errors
from softphone.engine.call import CallRecord
from softphone.engine.core import (
    DTMF_CHARS,
    EngineCore,
    S,
)
from softphone.engine.errors import EngineError
from softphone.engine.events import (
    CallStatsReceived,
)
from softphone.engine.states import ESTABLISHED

log = logging.getLogger("softphone.engine")


class Controls(EngineCore):
    # -- mute, DTMF, stats -------------------------------------------------------------------

    def _mutable(self, call_id: str) -> CallRecord:
        rec = self._record(call_id)
        if rec.terminal:
            raise EngineError(errors.INVALID_STATE, f"call {call_id} is {rec.state.value}")
        return rec

    async def mute(self, call_id: str) -> None:
        """Send silence instead of our audio and video (no signaling)."""
        rec = self._mutable(call_id)
        rec.muted = True
        self._apply_mute(rec, self._res[rec.id])

    async def unmute(self, call_id: str) -> None:
        rec = self._mutable(call_id)
        rec.muted = False
        self._apply_mute(rec, self._res[rec.id])

    async def send_dtmf(
        self,
        call_id: str,
        digits: str,
        *,
        duration_ms: int = 100,
        gap_ms: int = 70,
        inband: bool = True,
        signaled: bool = True,
    ) -> None:
        """Send DTMF digits in-band (tones in our audio) and/or signaled (`call.dtmf`)."""
        allowed = {S.CONNECTED}
        rec = self._require(call_id, allowed, "send DTMF on")
        if not digits or not set(digits) <= DTMF_CHARS or len(digits) > 64:
            raise EngineError(errors.INVALID_PARAM, f"bad DTMF digits {digits!r}")
        if not 40 <= duration_ms <= 2000:
            raise EngineError(errors.INVALID_PARAM, "DTMF duration is 40-2000 ms")
        res = self._res[rec.id]
        async with rec.lock:
            self._check(rec, allowed, "send DTMF on")
            if inband and res.source is not None:
                played = res.source.play_dtmf(digits, duration_ms=duration_ms, gap_ms=gap_ms)
                if inspect.isawaitable(played):
                    self._spawn(played, f"dtmf {rec.id}")
            if signaled:
                assert res.rest is not None and rec.server_id is not None
                try:
                    await res.rest.dtmf(rec.server_id, digits, duration_ms)
                except client_errors.ClientError as exc:
                    raise EngineError(errors.GENERIC, f"DTMF not sent: {exc}") from exc

    async def get_stats(self, call_id: str) -> dict[str, Any]:
        """A summary of the call's RTP statistics; also emitted as `call:statsReceived`."""
        rec = self._require(call_id, ESTABLISHED, "get stats of")
        peer = self._res[rec.id].peer
        if peer is None:
            raise EngineError(errors.INVALID_STATE, "no media session")
        stats = await peer.stats()
        self._emit(CallStatsReceived(rec.id, stats))
        return stats
