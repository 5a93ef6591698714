"""Signaling for one anonymous call: no login, a call-scoped token and channel.

`lookup_ice_servers()` (before `call()`) gets the ICE servers for the offer from
`/v1/anonymous/ice-servers`. `call()` posts `/v1/anonymous/calls` and opens the call's
notification channel with the call-scoped token it returns. The server ends that token and
channel with the call (`subscription.gone` "call ended", then close 4000); this object then
closes itself, so nothing outlives the call. A refused start raises the server's error
(`ServerError` with its code, e.g. `invalid_token`, `anonymous_not_allowed`) and leaves nothing
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from softphone.client import errors, events
from softphone.client.backoff import Backoff
from softphone.client.channel import ChannelEnd, NotificationChannel
from softphone.client.events import Event, EventCallback
from softphone.client.rest import RestClient
from softphone.client.tls import TlsSettings
from softphone.protocol.models import (
    AnonymousCallResponse,
    AnonymousIceResponse,
    CallInfo,
    IceServer,
    TokenCredentials,
)

log = logging.getLogger("softphone.client.anonymous")


class AnonymousSignaling:
    """One anonymous call to an account that accepts them. `rest` acts with the call's token
    (end, dtmf, update, update_answer, get_call) once `call()` returned."""

    def __init__(
        self,
        base_url: str,
        *,
        on_event: EventCallback = events.ignore,
        backoff: Backoff | None = None,
        ping_interval: float | None = None,
        missed_pongs: int = 2,
        timeout: float = 10.0,
        end_timeout: float = 3.0,
        session: aiohttp.ClientSession | None = None,
        ca_file: str | None = None,
        insecure_skip_tls_verify_for_development: bool = False,
    ) -> None:
        self._on_event = on_event
        self._backoff = backoff or Backoff()
        self._ping_interval = ping_interval
        self._missed_pongs = missed_pongs
        self._end_timeout = end_timeout
        tls = TlsSettings(ca_file, insecure_skip_tls_verify_for_development)
        self._rest = RestClient(base_url, session=session, timeout=timeout, tls=tls)
        self._response: AnonymousCallResponse | None = None
        self._channel: NotificationChannel | None = None
        self._watcher: asyncio.Task[ChannelEnd] | None = None
        self._connected = asyncio.Event()
        self._ending = asyncio.Lock()  # the watcher does not close the session under end()

    @property
    def rest(self) -> RestClient:
        return self._rest

    @property
    def call_id(self) -> str | None:
        return self._response.call.id if self._response else None

    @property
    def ice_servers(self) -> list[IceServer]:
        """The ICE servers the call's response gave (for later offers, e.g. a media restart);
        empty before `call()` returned."""
        return list(self._response.ice_servers) if self._response else []

    async def lookup_ice_servers(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        credentials: TokenCredentials | None = None,
    ) -> AnonymousIceResponse:
        """The ICE servers for the offer of the call about to be placed, asked with what
        `call()` will send (`to`, `from_`, `credentials`). Refusals are the call's own
        (`anonymous_not_allowed`, `invalid_token`, `rate_limited`, ...); a server too old for
        the lookup raises `ServerError` with status 404. A token set is not used up."""
        try:
            return await self._rest.anonymous_ice_servers(
                to=to, from_=from_, credentials=credentials
            )
        except errors.ClientError:
            await self._rest.close()  # as call() does; the next request opens a new session
            raise

    @property
    def connected(self) -> bool:
        return self._channel is not None and self._channel.connected

    @property
    def closed(self) -> bool:
        return self._watcher is not None and self._watcher.done()

    async def call(
        self,
        *,
        sdp: str,
        to: str | None = None,
        from_: str | None = None,
        audio: bool = True,
        video: bool = False,
        display_name: str | None = None,
        credentials: TokenCredentials | None = None,
    ) -> CallInfo:
        """Start the call and its channel; returns the call as the server created it."""
        if self._response is not None:
            raise RuntimeError("an AnonymousSignaling places one call; make a new one")
        try:
            response = await self._rest.make_anonymous_call(
                sdp=sdp,
                to=to,
                from_=from_,
                audio=audio,
                video=video,
                display_name=display_name,
                credentials=credentials,
            )
        except errors.ClientError:
            await self._rest.close()
            raise
        self._response = response
        channel = NotificationChannel(
            self._rest,
            response.subscription_id,
            channel=response.channel,
            on_event=self._emit,
            ping_interval=self._ping_interval,
            missed_pongs=self._missed_pongs,
            backoff=self._backoff,
            connect_timeout=self._rest.timeout,
        )
        self._channel = channel
        channel.start()
        self._watcher = asyncio.create_task(self._watch(channel), name="anonymous call")
        return response.call

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait for the call's channel; raise `Disconnected` if it closed first."""
        if self._watcher is None:
            raise errors.Disconnected("no call placed")
        waiter = asyncio.ensure_future(self._connected.wait())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait({waiter, self._watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self._connected.is_set():
            raise errors.Disconnected("the call's channel closed")

    async def wait_closed(self) -> ChannelEnd:
        if self._watcher is None:
            raise RuntimeError("no call placed")
        return await asyncio.shield(self._watcher)

    async def end(self) -> None:
        """Hang up (best effort, bounded in time), then close."""
        call_id = self.call_id
        if call_id is not None and not self.closed:
            ended = False
            async with self._ending:
                try:
                    async with asyncio.timeout(self._end_timeout):
                        await self._rest.end(call_id)
                    ended = True
                except (errors.ClientError, TimeoutError) as exc:
                    log.info("could not end anonymous call %s: %s", call_id, exc)
            if ended and self._watcher is not None:
                # The server closes the call's channel right after; let it say goodbye.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._end_timeout):
                        await asyncio.shield(self._watcher)
        await self.close()

    async def close(self) -> None:
        """Close the channel and the HTTP session (the server ends the call once the channel
        stays away longer than its resume window)."""
        if self._channel is not None:
            await self._channel.stop()
        if self._watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._rest.close()

    async def __aenter__(self) -> AnonymousSignaling:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.end()

    def _emit(self, event: Event) -> None:
        if isinstance(event, events.WsChange):
            if event.state == "connected":
                self._connected.set()
            else:
                self._connected.clear()
        try:
            self._on_event(event)
        except Exception:
            log.exception("on_event callback failed on %s; event dropped", event.name)

    async def _watch(self, channel: NotificationChannel) -> ChannelEnd:
        end = await channel.wait_closed()
        async with self._ending:
            self._rest.token = None  # call-scoped: worthless once the call is over
            await self._rest.close()
        return end


__all__ = ["AnonymousSignaling"]
