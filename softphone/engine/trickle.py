"""The other party's trickled ICE candidates (protocol §3.3, a v1 extension).

A `Trickle` belongs to one `CallSession`. `call.candidate` notifications are taken by a worker
of their own, not behind the call's lock: an operation under way (a media restart waiting for
its new path, say) needs the other party's candidates now. A candidate goes into the current
peer connection once that has the description it belongs to (same ICE ufrag); until then
(an offer not answered yet, a re-offer's answer not applied yet) it is kept, and the session
calls `apply_early` after each remote description it applies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from softphone.engine.context import CallContext
from softphone.engine.peer import Peer
from softphone.engine.sdp import ice_ufrags
from softphone.protocol import frames

log = logging.getLogger("softphone.engine")

MAX_EARLY_CANDIDATES = 100  # trickled candidates kept for a description not applied yet


class TrickledCall(Protocol):
    """What the candidates need to know of their call."""

    @property
    def id(self) -> str: ...
    @property
    def terminal(self) -> bool: ...
    @property
    def peer(self) -> Peer | None: ...


class Trickle:
    """See the module documentation. `added` is called after each candidate tried."""

    def __init__(self, call: TrickledCall, ctx: CallContext, added: Callable[[], object]) -> None:
        self._call = call
        self._ctx = ctx
        self._added = added
        self._early: list[frames.CallCandidate] = []  # before their description
        self._queue: asyncio.Queue[frames.CallCandidate] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def deliver(self, frame: frames.CallCandidate) -> None:
        """A candidate of the other party's, in arrival order."""
        self._queue.put_nowait(frame)
        if self._worker is None:
            self._worker = self._ctx.spawn(self._take(), f"candidates {self._call.id}")

    async def apply_early(self) -> None:
        """A remote description was applied: the candidates kept for it go in now (those of
        other ICE credentials stay kept)."""
        early, self._early = self._early, []
        for frame in early:
            await self._add(frame)

    def stop(self) -> None:
        """The call is over: take no more (not from inside the worker itself)."""
        if self._worker is not None and self._worker is not asyncio.current_task():
            self._worker.cancel()

    async def _take(self) -> None:
        while not self._call.terminal:
            frame = await self._queue.get()
            await self._add(frame)

    async def _add(self, frame: frames.CallCandidate) -> None:
        call = self._call
        peer = call.peer
        if call.terminal:
            return
        pending = peer is None or peer.remote_sdp is None or peer.closed
        if not pending and frame.ufrag:
            assert peer is not None
            pending = frame.ufrag not in ice_ufrags(peer.remote_sdp)
        if pending:
            self._early = [*self._early[-(MAX_EARLY_CANDIDATES - 1) :], frame]
            return
        assert peer is not None
        try:
            await peer.add_candidate(frame.candidate, frame.sdp_mid, frame.sdp_mline_index)
        except Exception as exc:  # one bad or late candidate does not end the call
            log.info("call %s: trickled candidate not taken: %s", call.id, exc)
        self._added()


__all__ = ["MAX_EARLY_CANDIDATES", "Trickle", "TrickledCall"]
