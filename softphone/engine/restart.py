"""How one call's media is restarted under the same call id, ours or the other party's.

Where our DTLS association still works, an ICE restart on the same peer connection: new ICE
credentials and candidates, the same DTLS association and certificate (what Firefox expects: it
never starts a new handshake on an ICE restart; Chromium and our engine accept it too;
`_aiortc_ice.IceRestart`, as aiortc has none of its own). A far end that answers with another
fingerprint or RFC 8842 tls-id made a new DTLS association: we follow on a new peer connection.
Where our DTLS association is gone (failed, closed), a new peer connection with a new
certificate: a changed fingerprint is what every stack takes as "new association".

A `MediaRestart` belongs to one `CallSession`, which runs it under its lock (`restart` for
ours, `answer` for a re-offer of the other party's with new ICE credentials). It does the
mechanics; the session keeps the call's state and its signaling, which it lends through
`RestartingCall`. While a restart negotiates, the media health says `restarting`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from softphone.engine.call_media import CallMedia
from softphone.engine.context import CallOptions
from softphone.engine.errors import EngineError, EngineErrorCode
from softphone.engine.media_supervisor import MediaSupervisor
from softphone.engine.peer import Peer
from softphone.engine.sdp import ice_ufrags, new_dtls_wanted
from softphone.engine.trickle import Trickle

log = logging.getLogger("softphone.engine")

Code = EngineErrorCode


def is_restart(remote_sdp: str | None, sdp: str) -> bool:
    """Whether the other party's re-offer `sdp` restarts the media (new ICE credentials)."""
    ufrags = ice_ufrags(sdp)
    return bool(ufrags) and not ufrags & ice_ufrags(remote_sdp)


class RestartingCall(Protocol):
    """What a restart may read and change of its call, and ask of it."""

    @property
    def id(self) -> str: ...
    @property
    def media(self) -> CallMedia: ...

    peer: Peer | None  # the current peer connection: a restart may move the call to a new one

    def new_peer(self, *, fresh_certificate: bool = False) -> Peer:
        """A peer connection of this call (its certificate unless `fresh_certificate`)."""
        ...

    async def exchange(self, sdp: str) -> str:
        """Send our re-offer; the other party's answer."""
        ...

    async def negotiated(self, reason: str) -> None:
        """Both descriptions are applied: take the call's tracks and hold flags from them."""
        ...

    async def send_update_answer(self, sdp: str) -> None:
        """Send our answer to the other party's re-offer."""
        ...

    async def end_with(self, error: EngineError) -> None:
        """End the call with `error`."""
        ...


class MediaRestart:
    """See the module documentation."""

    def __init__(
        self,
        call: RestartingCall,
        supervisor: MediaSupervisor,
        trickle: Trickle,
        options: CallOptions,
    ) -> None:
        self._call = call
        self._supervisor = supervisor
        self._trickle = trickle
        self._options = options

    # -- ours --------------------------------------------------------------------------------

    async def restart(self) -> None:
        """Restart the media; returns once the new path is up (or raises)."""
        old = self._call.peer
        assert old is not None
        self._supervisor.set_restarting(True)
        try:
            if old.can_restart_ice:
                done = await self._restart_ice(old)
                if done:
                    return
            await self._restart_transport(old, fresh_certificate=not old.can_restart_ice)
        finally:
            self._supervisor.set_restarting(False)

    async def _restart_ice(self, peer: Peer) -> bool:
        """An ICE restart that keeps the DTLS association; False when the far end answered
        with a new one (the caller then moves to a new peer connection)."""
        call = self._call
        try:
            await peer.prepare_ice_restart()
            offer = await peer.create_offer()
            answer = await call.exchange(offer.sdp)
        except BaseException as exc:
            await peer.abandon_ice_restart()
            if isinstance(exc, EngineError | asyncio.CancelledError):
                raise
            raise EngineError(Code.GENERIC, f"media restart failed: {exc}") from exc
        if new_dtls_wanted(peer.remote_sdp, answer):
            log.info("call %s: the far end made a new DTLS association", call.id)
            await peer.abandon_ice_restart()
            return False
        try:
            await peer.apply_local(offer)
            await peer.apply_answer(answer)
        except Exception as exc:
            await peer.abandon_ice_restart()
            await call.end_with(EngineError(Code.ANSWER_MISMATCH, f"bad restart answer: {exc}"))
            raise EngineError(Code.GENERIC, f"media restart failed: {exc}") from exc
        task = peer.start_ice_restart()
        await self._trickle.apply_early()
        await call.negotiated("media restarted")
        if task is not None and not await self._ice_restarted(task):
            raise EngineError(Code.GENERIC, "media restart: ICE found no working path")
        return True

    async def _ice_restarted(self, task: asyncio.Task[bool]) -> bool:
        self._supervisor.ice_restart_started(task)
        try:
            async with asyncio.timeout(self._options.media_timeout):
                return await asyncio.shield(task)
        except TimeoutError:
            return False

    async def _restart_transport(self, old: Peer, *, fresh_certificate: bool) -> None:
        """Renegotiate on a new peer connection: same sending tracks, hold direction and
        header-extension ids; the old connection closes once the answer is applied."""
        call = self._call
        media = call.media
        new = call.new_peer(fresh_certificate=fresh_certificate)
        new.set_hold(old.local_hold)
        new.add_track("audio", media.source)
        if media.video is not None or old.has_kind("video"):
            new.add_track("video", media.video)
        # The old connection must stop using the call's tracks before the far end sees the
        # re-offer: Chrome closes the old DTLS association then, and aiortc's sender stops
        # its track on the way out (the new connection then sent nothing).
        old.detach_tracks()
        try:
            offer = await new.create_offer([old.remote_sdp, old.local_sdp])
            call.peer = new
            answer = await call.exchange(offer.sdp)
            await new.apply_answer(answer)
            await self._trickle.apply_early()
        except BaseException as exc:
            call.peer = old
            await new.close()
            old.reattach_tracks({"audio": media.source, "video": media.video})
            if isinstance(exc, EngineError | asyncio.CancelledError):
                raise
            raise EngineError(Code.GENERIC, f"media restart failed: {exc}") from exc
        await old.close()
        await call.negotiated("media restarted")
        self._supervisor.watch()  # the new connection must come up in time too

    # -- the other party's -------------------------------------------------------------------

    async def answer(self, sdp: str) -> None:
        """Answer the other party's re-offer `sdp` with new ICE credentials: an ICE restart
        on this peer connection where the far end keeps its DTLS association (same
        fingerprint and tls-id) and ours still works, else a new peer connection (with the
        call's certificate: the far end knows its fingerprint)."""
        call = self._call
        old = call.peer
        assert old is not None
        tracks: dict[str, Any] = {"audio": call.media.source, "video": call.media.video}
        if old.can_restart_ice and not new_dtls_wanted(old.remote_sdp, sdp):
            await self._answer_ice_restart(old, sdp, tracks)
            return
        new = call.new_peer()
        new.set_hold(old.local_hold)
        call.peer = new
        try:
            answer = await new.answer(sdp, tracks)
            await self._trickle.apply_early()
        except BaseException:
            call.peer = old
            await new.close()
            raise
        # Our view changes before the answer goes out, so it is current by the time the other
        # party's operation completes.
        await call.negotiated("remote media restart")
        await call.send_update_answer(answer)
        await old.close()

    async def _answer_ice_restart(self, peer: Peer, sdp: str, tracks: dict[str, Any]) -> None:
        supervisor = self._supervisor
        supervisor.set_restarting(True)
        try:
            await peer.prepare_ice_restart()
            try:
                answer = await peer.answer(sdp, tracks)
            except BaseException:
                await peer.abandon_ice_restart()
                raise
            task = peer.start_ice_restart()
            await self._trickle.apply_early()
            await self._call.negotiated("remote media restart")
            await self._call.send_update_answer(answer)
        finally:
            supervisor.set_restarting(False)
        if task is not None:
            supervisor.ice_restart_started(task)
            task.add_done_callback(lambda _: supervisor.check())


__all__ = ["MediaRestart", "RestartingCall", "is_restart"]
