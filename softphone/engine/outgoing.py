"""Outgoing calls: make, make_anonymous, and the answer to them."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from softphone.client import AnonymousSignaling, ServerError, SignalingClient
from softphone.engine import errors
from softphone.engine.call import CallRecord
from softphone.engine.core import (
    EngineCore,
    S,
    _error_info,
    _kind,
    _new_id,
    _Res,
)
from softphone.engine.errors import EngineError
from softphone.engine.events import (
    CallNewTrack,
    CallStart,
    MediaOffered,
)
from softphone.protocol.models import CallInfo, TokenCredentials

log = logging.getLogger("softphone.engine")


class OutgoingCalls(EngineCore):
    # -- outgoing calls ----------------------------------------------------------------------

    def _signaling(self) -> SignalingClient:
        if self._client is None:
            raise EngineError(errors.INVALID_STATE, "engine not started")
        return self._client

    async def make(
        self,
        to: str,
        *,
        audio: bool = True,
        video: bool = False,
        video_size: tuple[int, int] = (640, 480),
        display_name: str | None = None,
    ) -> str:
        """Start a call to `to`; returns its id at once (`call:start`, Initiating). The call
        moves to Initiated when the server accepted it, Ringing, then Connected."""
        client = self._signaling()
        if not audio and not video:
            raise EngineError(errors.INVALID_PARAM, "a call needs audio or video")
        rec = CallRecord(
            id=_new_id(),
            from_=client.username,
            to=to,
            direction="outgoing",
            start_time=time.time(),
            media_offered=MediaOffered(audio, video),
        )
        rest = client.rest
        res = _Res(rest=rest, ice=client.ice_servers)

        async def post(sdp: str) -> CallInfo:
            return await rest.make_call(
                to, sdp, audio=audio, video=video, display_name=display_name
            )

        self._register(rec, res)
        self._emit(CallStart(rec.id))
        self._spawn(self._setup_outgoing(rec, res, post, video_size), f"make {rec.id}")
        return rec.id

    async def make_anonymous(
        self,
        to: str,
        credentials: TokenCredentials | None = None,
        *,
        from_: str | None = None,
        audio: bool = True,
        video: bool = False,
        video_size: tuple[int, int] = (640, 480),
        display_name: str | None = None,
        server_url: str | None = None,
    ) -> str:
        """An anonymous call (no login): regular mode (`credentials` None; `from_` defaults to
        "anonymous") or token mode (the tokens name both parties: `from_`, when given, must
        match the caller's token, and the call's `from_` becomes the caller the server read
        from it).

        The offer gathers its candidates with the ICE servers (TURN) the server gives for this
        call before it is made (`POST /v1/anonymous/ice-servers`); only a server too old for
        that lookup (404) leaves the offer to `anonymous_ice_servers`. Later offers (a media
        restart) use the ICE servers of the call's response."""
        url = server_url or self._server_url
        if url is None:
            raise EngineError(errors.INVALID_PARAM, "no server url (start() or server_url=)")
        rec = CallRecord(
            id=_new_id(),
            from_=from_ or ("anonymous" if credentials is None else ""),
            to=to,
            direction="outgoing",
            start_time=time.time(),
            media_offered=MediaOffered(audio, video),
            anonymous=True,
        )
        anon = AnonymousSignaling(url, on_event=self._on_anonymous_event)
        res = _Res(rest=anon.rest, ice=list(self._anonymous_ice), anon=anon)
        caller = from_ if credentials is not None else rec.from_

        async def lookup() -> None:
            try:
                found = await anon.lookup_ice_servers(to=to, from_=caller, credentials=credentials)
            except ServerError as exc:
                if exc.status != 404:
                    raise
                log.info("call %s: server has no anonymous ICE lookup; local ICE servers", rec.id)
                return
            res.ice = list(found.ice_servers)

        async def post(sdp: str) -> CallInfo:
            info = await anon.call(
                sdp=sdp,
                to=to,
                from_=caller,
                audio=audio,
                video=video,
                display_name=display_name,
                credentials=credentials,
            )
            res.ice = anon.ice_servers  # freshly minted, for later offers (restart_media)
            if credentials is not None:
                rec.from_ = info.caller
            return info

        self._register(rec, res)
        self._emit(CallStart(rec.id))
        self._spawn(
            self._setup_outgoing(rec, res, post, video_size, prepare=lookup), f"make {rec.id}"
        )
        return rec.id

    async def _setup_outgoing(
        self,
        rec: CallRecord,
        res: _Res,
        post: Callable[[str], Awaitable[CallInfo]],
        video_size: tuple[int, int],
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Make the peer connection (after `prepare`, which may set `res.ice`), offer, post."""
        async with rec.lock:
            if rec.terminal:
                return
            try:
                try:
                    if prepare is not None:
                        await prepare()
                finally:
                    # Made even when `prepare` failed (it gathers nothing until an offer), so a
                    # refused call reports its media closed like any call that failed to start.
                    peer = res.peer = self._new_peer(rec, res)
                if rec.media_offered.audio:
                    res.source = self._open_source(rec)
                    self._apply_mute(rec, res)
                peer.add_track("audio", res.source)
                if rec.media_offered.video:
                    res.video = self._open_video(video_size)
                    peer.add_track("video", res.video)
                offer = await peer.create_offer()
                info = await post(offer.sdp)
            except Exception as exc:
                self._emit(CallStart(rec.id, _error_info(exc)))
                await self._fail(rec, exc)
                return
            rec.server_id = info.id
            self._bind(rec)
            for track_id, kind in peer.local_tracks().items():
                rec.local_tracks[track_id] = kind
                self._emit(CallNewTrack(rec.id, track_id, _kind(kind), True))
            self._transition(rec, S.INITIATED, "call started")

    async def _answered(self, rec: CallRecord, res: _Res, sdp: str) -> None:
        assert res.peer is not None
        try:
            await res.peer.apply_answer(sdp)
        except Exception as exc:
            await self._fail(rec, EngineError(errors.ANSWER_MISMATCH, f"bad answer: {exc}"))
            return
        self._transition(rec, S.CONNECTED, "answered")
        await self._sync_tracks(rec, res)
        self._after_negotiation(rec, res, "answered")
