"""`CallSignaling`: how one call reaches the server, and what it does while the server is down.

The engine builds one per call (the user's REST client, or an anonymous call's own channel);
the `CallSession` tells the server of its re-offers (`post_update`) and its end (`tell_end`)
through it. Media does not need the server, so neither ever waits long for one that is down: a
re-offer gets `reoffer_wait` seconds and then fails with nothing applied, and an end goes to
the engine's outbox (`remember_end`) to be delivered once the server is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from softphone.client import AnonymousSignaling, RestClient, SignalingClient
from softphone.client import errors as client_errors
from softphone.engine.errors import EngineError, EngineErrorCode
from softphone.engine.outbox import refused
from softphone.protocol.models import IceServer

log = logging.getLogger("softphone.engine")

UNREACHABLE = "the server is unreachable; the call is unchanged"
# Between tries of a re-offer the server did not take (it may be restarting).
REOFFER_RETRY = 0.5


@dataclass(eq=False)
class CallSignaling:
    """How a call reaches the server: the REST client of the user's session (or of an
    anonymous call's own channel) and the ICE servers its peer connections use.

    A user's call also has its `device` (whose channel tells whether the server is reachable
    now, and when it is again) and `remember_end(server_id, reason)`, the engine's outbox for
    ends the server could not be told yet."""

    rest: RestClient
    ice: list[IceServer] = field(default_factory=list)
    anonymous: AnonymousSignaling | None = None
    device: SignalingClient | None = None
    remember_end: Callable[[str, str], None] | None = None

    @property
    def connected(self) -> bool:
        return self.device is None or self.device.connected

    async def wait_connected(self, timeout: float) -> bool:
        """Whether the channel is (or comes) up within `timeout` seconds."""
        if self.device is None or self.device.connected:
            return True
        if timeout <= 0:
            return False
        try:
            await self.device.wait_connected(timeout)
        except (TimeoutError, client_errors.ClientError):
            return False
        return True

    async def post_update(self, call_id: str, server_id: str, sdp: str, wait: float) -> None:
        """POST a re-offer once the server can take it: a server that is down (restarting,
        say) gets `wait` seconds to come back, then the re-offer fails with
        SIGNALING_UNAVAILABLE and nothing applied, so the caller rolls back and the call goes
        on as it was (its media does not need the server)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if not await self.wait_connected(deadline - loop.time()):
                raise EngineError(EngineErrorCode.SIGNALING_UNAVAILABLE, UNREACHABLE)
            try:
                await self.rest.update(server_id, sdp)
                return
            except client_errors.ServerError as exc:
                if not exc.transient:
                    raise  # glare and real refusals are the caller's to handle
                failure: client_errors.ClientError = exc
            except client_errors.ServerUnreachable as exc:
                failure = exc
            left = deadline - loop.time()
            log.info("call %s: re-offer not taken (%s); %.1f s left", call_id, failure, left)
            if left <= 0:
                unavailable = EngineErrorCode.SIGNALING_UNAVAILABLE
                raise EngineError(unavailable, UNREACHABLE) from failure
            # The channel may not have noticed the outage yet: pace the next try.
            await asyncio.sleep(min(REOFFER_RETRY, left))

    async def tell_end(
        self, call_id: str, server_id: str, reason: str, timeout: float | None = None
    ) -> None:
        """Tell the server we ended the call. An end it cannot take now (no channel, no
        answer, a 5xx) goes to the engine's outbox, which delivers it once the server is back;
        the call ends here at once either way. A refusal means it had ended there already."""
        remember = self.remember_end
        if remember is not None and not self.connected:
            remember(server_id, reason)  # do not make the user wait for a server that is down
            return
        try:
            async with asyncio.timeout(timeout):
                await self.rest.end(server_id)
        except (client_errors.ClientError, TimeoutError) as exc:
            if refused(exc) or remember is None:
                log.info("call %s: end not taken by the server: %s", call_id, exc)
            else:
                remember(server_id, reason)


__all__ = ["UNREACHABLE", "CallSignaling"]
