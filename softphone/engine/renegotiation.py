"""Re-offers: hold, unhold, video on and off, media restart, and remote re-offers."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from softphone.client import errors as client_errors
from softphone.engine import errors
from softphone.engine.call import CallRecord
from softphone.engine.core import (
    EngineCore,
    S,
    _RemoteEnded,
    _Res,
)
from softphone.engine.errors import EngineError
from softphone.engine.peer import Peer, ice_ufrags
from softphone.engine.states import ESTABLISHED, CallState

log = logging.getLogger("softphone.engine")


class Renegotiation(EngineCore):
    # -- renegotiation -----------------------------------------------------------------------

    async def hold(self, call_id: str) -> None:
        """Put the call on hold (re-offer sendonly; we send silence and receive nothing)."""
        rec = self._require(call_id, ESTABLISHED, "hold")
        if rec.local_hold:
            raise EngineError(errors.INVALID_STATE, f"call {call_id} is already held locally")

        def prepare(peer: Peer) -> None:
            if rec.local_hold:
                raise EngineError(errors.INVALID_STATE, "already held locally")
            peer.set_hold(True)

        await self._reoffer(rec, prepare, lambda peer: peer.set_hold(False), "local hold")

    async def unhold(self, call_id: str) -> None:
        """Release our hold (media flows again unless the remote party holds too)."""
        rec = self._require(call_id, ESTABLISHED, "unhold")
        if not rec.local_hold:
            raise EngineError(errors.INVALID_STATE, f"call {call_id} is not held locally")

        def prepare(peer: Peer) -> None:
            if not rec.local_hold:
                raise EngineError(errors.INVALID_STATE, "not held locally")
            peer.set_hold(False)

        await self._reoffer(rec, prepare, lambda peer: peer.set_hold(True), "local unhold")

    async def start_video(
        self, call_id: str, video_size: tuple[int, int] = (640, 480), fps: int = 15
    ) -> None:
        """Start sending video (renegotiated)."""
        allowed = {S.CONNECTED}
        rec = self._require(call_id, allowed, "start video on")
        res = self._res[rec.id]
        if res.video is not None:
            raise EngineError(errors.INVALID_STATE, "the call already sends video")
        source = self._open_video(video_size, fps)

        def prepare(peer: Peer) -> None:
            if res.video is not None:
                raise EngineError(errors.INVALID_STATE, "the call already sends video")
            res.video = source
            if not peer.set_track("video", source):
                peer.add_track("video", source)

        def undo(peer: Peer) -> None:
            peer.set_track("video", None)
            res.video = None

        try:
            await self._reoffer(rec, prepare, undo, "video started", allowed)
        except BaseException:
            if res.video is not source:
                source.stop()
            raise

    async def stop_video(self, call_id: str) -> None:
        """Stop sending video (renegotiated)."""
        allowed = {S.CONNECTED}
        rec = self._require(call_id, allowed, "stop video on")
        res = self._res[rec.id]
        if res.video is None:
            raise EngineError(errors.INVALID_STATE, "the call sends no video")
        source = res.video

        def prepare(peer: Peer) -> None:
            peer.set_track("video", None)
            res.video = None

        def undo(peer: Peer) -> None:
            peer.set_track("video", source)
            res.video = source

        await self._reoffer(rec, prepare, undo, "video stopped", allowed)
        source.stop()

    async def restart_media(self, call_id: str) -> None:
        """Renegotiate the media on a new peer connection under the same call id (aiortc has
        no ICE restart)."""
        rec = self._require(call_id, ESTABLISHED, "restart media on")
        res = self._res[rec.id]
        async with rec.lock:
            self._check(rec, ESTABLISHED, "restart media on")
            old = res.peer
            assert old is not None
            hold = old.local_hold
            new = self._new_peer(rec, res)
            new.set_hold(hold)
            new.add_track("audio", res.source)
            if res.video is not None or old.has_kind("video"):
                new.add_track("video", res.video)
            # The old connection must stop using the call's tracks before the far end sees the
            # re-offer: Chrome closes the old DTLS association then, and aiortc's sender stops
            # its track on the way out (the new connection then sent nothing).
            old.detach_tracks()
            try:
                offer = await new.create_offer([old.remote_sdp, old.local_sdp])
                res.peer = new
                answer = await self._exchange(rec, res, offer.sdp)
                await new.apply_answer(answer)
            except BaseException as exc:
                res.peer = old
                await new.close()
                old.reattach_tracks({"audio": res.source, "video": res.video})
                if isinstance(exc, EngineError):
                    raise
                raise EngineError(errors.GENERIC, f"media restart failed: {exc}") from exc
            await old.close()
            await self._sync_tracks(rec, res)
            self._after_negotiation(rec, res, "media restarted")
            self._watch_media(rec)  # the new connection must come up in time too

    async def _exchange(self, rec: CallRecord, res: _Res, sdp: str) -> str:
        """POST a re-offer and wait for the other party's answer (glare raises ServerError)."""
        assert res.rest is not None and rec.server_id is not None
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        res.update_answer = waiter
        try:
            await res.rest.update(rec.server_id, sdp)
            async with asyncio.timeout(self._update_timeout):
                return await waiter
        except _RemoteEnded as exc:
            raise EngineError(errors.INVALID_STATE, "the call ended meanwhile") from exc
        finally:
            res.update_answer = None
            if not waiter.done():
                waiter.cancel()

    async def _reoffer(
        self,
        rec: CallRecord,
        prepare: Callable[[Peer], None],
        undo: Callable[[Peer], None],
        reason: str,
        allowed: frozenset[CallState] | set[CallState] = ESTABLISHED,
    ) -> None:
        """Re-offer on the current peer connection; glare (409 + Retry-After) rolls back and
        retries later with jitter, letting the other party's re-offer through meanwhile."""
        res = self._res[rec.id]
        attempt = 0
        while True:
            async with rec.lock:
                self._check(rec, allowed, reason)
                peer = res.peer
                assert peer is not None
                prepare(peer)
                try:
                    offer = await peer.create_offer()
                    # POST first, so a refused re-offer (glare) leaves nothing to roll back;
                    # our offer becomes the local description once the server took it.
                    answer = await self._exchange(rec, res, offer.sdp)
                    await peer.apply_local(offer)
                    await peer.apply_answer(answer)
                except client_errors.ServerError as exc:
                    undo(peer)
                    if exc.code != "glare" or attempt >= self._glare_retries:
                        raise EngineError(errors.GENERIC, f"{reason} refused: {exc}") from exc
                    delay = (exc.retry_after or 1.0) * random.uniform(0.5, 1.0)
                except EngineError:
                    undo(peer)
                    raise
                except TimeoutError as exc:
                    await self._fail(rec, EngineError(errors.GENERIC, f"{reason}: no answer"))
                    raise EngineError(errors.GENERIC, f"{reason}: no answer in time") from exc
                except Exception as exc:
                    await self._fail(rec, exc)
                    raise EngineError(errors.GENERIC, f"{reason} failed: {exc}") from exc
                else:
                    await self._sync_tracks(rec, res)
                    self._after_negotiation(rec, res, reason)
                    return
            attempt += 1
            await asyncio.sleep(delay)

    async def _remote_update(self, rec: CallRecord, res: _Res, sdp: str) -> None:
        """The other party re-offered: answer it (a new ICE ufrag means a media restart)."""
        assert res.rest is not None and rec.server_id is not None
        old = res.peer
        assert old is not None
        tracks: dict[str, Any] = {"audio": res.source, "video": res.video}
        restart = bool(ice_ufrags(sdp)) and not ice_ufrags(sdp) & ice_ufrags(old.remote_sdp)
        if restart:
            new = self._new_peer(rec, res)
            new.set_hold(old.local_hold)
            res.peer = new
            try:
                answer = await new.answer(sdp, tracks)
            except BaseException:
                res.peer = old
                await new.close()
                raise
            reason = "remote media restart"
        else:
            answer = await old.answer(sdp, tracks)
            reason = "remote update"
        # Our view changes before the answer goes out, so it is current by the time the other
        # party's operation completes.
        await self._sync_tracks(rec, res)
        self._after_negotiation(rec, res, reason)
        await res.rest.update_answer(rec.server_id, answer)
        if restart:
            await old.close()
