"""Incoming calls: ringing feedback, answer, reject, ignore; and ending any call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from softphone.client import errors as client_errors
from softphone.engine import errors
from softphone.engine.call import CallRecord
from softphone.engine.core import (
    EngineCore,
    S,
    _incoming_only,
    _Res,
)
from softphone.engine.errors import EngineError
from softphone.engine.events import (
    CallReceive,
    MediaOffered,
)
from softphone.protocol import frames

log = logging.getLogger("softphone.engine")


class IncomingCalls(EngineCore):
    # -- incoming calls ----------------------------------------------------------------------

    def _incoming(self, frame: frames.CallIncoming) -> None:
        info = frame.call
        if info.id in self._calls:
            return
        client = self._client
        if client is None:
            return
        rec = CallRecord(
            id=info.id,
            from_=info.caller,
            to=info.callee,
            direction="incoming",
            start_time=time.time(),
            media_offered=MediaOffered(info.media.audio, info.media.video),
            anonymous=info.anonymous,
            server_id=info.id,
            remote_offer=frame.sdp,
        )
        res = _Res(rest=client.rest, ice=client.ice_servers)
        self._register(rec, res)
        self._emit(CallReceive(rec.id, rec.media_offered))
        res.feedback = self._spawn(self._feedback(rec, res), f"ringing {rec.id}")

    async def _feedback(self, rec: CallRecord, res: _Res) -> None:
        async with rec.lock:
            if rec.state != S.INITIATING:
                return
            if not self._ringing_feedback:
                self._transition(rec, S.INITIATED, "incoming call")
                return
            assert res.rest is not None and rec.server_id is not None
            try:
                await res.rest.ringing(rec.server_id)
            except client_errors.ClientError as exc:
                log.info("call %s: ringing feedback failed: %s", rec.id, exc)
                if not rec.terminal:
                    self._transition(rec, S.INITIATED, "incoming call (no ringing feedback)")
                return
            if rec.state == S.INITIATING:
                self._transition(rec, S.RINGING, "ringing feedback sent")

    async def answer(
        self,
        call_id: str,
        *,
        audio: bool = True,
        video: bool = False,
        video_size: tuple[int, int] = (640, 480),
    ) -> None:
        """Answer an incoming call (Initiated or Ringing) → Connected. Answering right on
        call:receive (still Initiating) waits for the ringing feedback already under way."""
        allowed = {S.INITIATED, S.RINGING}
        rec = self._require(call_id, allowed | {S.INITIATING}, "answer")
        _incoming_only(rec, "answer")
        res = self._res[rec.id]
        if rec.state == S.INITIATING and res.feedback is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(res.feedback)
        async with rec.lock:
            self._check(rec, allowed, "answer")
            assert rec.remote_offer is not None and rec.server_id is not None
            assert res.rest is not None
            peer = res.peer = self._new_peer(rec, res)
            try:
                tracks: dict[str, Any] = {}
                if audio:
                    res.source = tracks["audio"] = self._open_source(rec)
                    self._apply_mute(rec, res)
                if video and rec.media_offered.video:
                    res.video = tracks["video"] = self._open_video(video_size)
                sdp = await peer.answer(rec.remote_offer, tracks)
                await res.rest.answer(rec.server_id, sdp)
            except client_errors.ServerError as exc:
                if exc.status == 409 or exc.status == 404 or exc.status == 403:
                    # Cancelled or answered elsewhere meanwhile: its notification ends the call.
                    await self._release(rec, res)
                    res.peer = None
                    res.source = res.video = None
                    raise EngineError(errors.INVALID_STATE, f"cannot answer: {exc}") from exc
                await self._fail(rec, exc)
                raise EngineError(errors.GENERIC, f"answer failed: {exc}") from exc
            except Exception as exc:
                await self._fail(rec, exc)
                raise EngineError(errors.GENERIC, f"answer failed: {exc}") from exc
            rec.remote_offer = None
            self._transition(rec, S.CONNECTED, "answered")
            await self._sync_tracks(rec, res)
            self._after_negotiation(rec, res, "answered")

    async def reject(self, call_id: str) -> None:
        """Decline an incoming call; both sides end (reason `rejected`)."""
        allowed = {S.INITIATING, S.INITIATED, S.RINGING}
        rec = self._require(call_id, allowed, "reject")
        _incoming_only(rec, "reject")
        res = self._res[rec.id]
        async with rec.lock:
            self._check(rec, allowed, "reject")
            assert res.rest is not None and rec.server_id is not None
            try:
                await res.rest.reject(rec.server_id)
            except client_errors.ServerError as exc:
                if exc.status != 409:
                    await self._fail(rec, exc)
                raise EngineError(errors.INVALID_STATE, f"cannot reject: {exc}") from exc
            except client_errors.ClientError as exc:
                await self._fail(rec, exc)
                raise EngineError(errors.GENERIC, f"reject failed: {exc}") from exc
            await self._finish(rec, S.ENDED, "rejected", "rejected")

    async def ignore(self, call_id: str) -> None:
        """Drop an incoming call locally (no signaling: it rings on elsewhere or times out)."""
        allowed = {S.INITIATING, S.INITIATED, S.RINGING}
        rec = self._require(call_id, allowed, "ignore")
        _incoming_only(rec, "ignore")
        async with rec.lock:
            self._check(rec, allowed, "ignore")
            await self._finish(rec, S.ENDED, "ignored", "ignored")

    async def end(self, call_id: str) -> None:
        """Hang up, cancel or reject, whatever the live state; → Ended."""
        rec = self._record(call_id)
        if rec.terminal:
            raise EngineError(errors.INVALID_STATE, f"call {call_id} already {rec.state.value}")
        res = self._res[rec.id]
        async with rec.lock:
            if rec.terminal:
                return  # ended while we waited for the lock
            if rec.established:
                reason = "hangup"
            elif rec.direction == "outgoing":
                reason = "cancelled"
            else:
                reason = "rejected"
            if rec.server_id is not None and res.rest is not None:
                try:
                    await res.rest.end(rec.server_id)
                except client_errors.ClientError as exc:
                    log.info("call %s: server refused end: %s", rec.id, exc)
            await self._finish(rec, S.ENDED, reason, "ended locally")
