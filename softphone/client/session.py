"""A user's signaling session: log in, subscribe, keep the notification channel and the
subscription alive, and leave cleanly.

`start()` returns at once; a supervisor task logs in, subscribes and runs the channel. A server
that cannot be reached (at start or later) is retried with back-off and reported as
`WsChange("reconnecting")`, never raised. A refusal that retrying cannot fix ends the session
with events: wrong password (`AuthError` event, and the password provider is not asked again),
subscription gone or replaced, authentication expired (4002). The owner may then `start()`
again (after asking for a password, say). `wait_connected()` waits for the channel, or raises
what ended the session.

The subscription is refreshed at half its lifetime (±20 % jitter, so devices do not refresh in
lock-step); a failed refresh is retried sooner (half the time left), and a refresh answered
404 means the server forgot the subscription: the session subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from softphone.client import errors, events
from softphone.client.backoff import Backoff
from softphone.client.channel import ChannelEnd, NotificationChannel
from softphone.client.events import Event, EventCallback
from softphone.client.rest import RestClient
from softphone.client.tls import TlsSettings
from softphone.protocol.models import IceServer, Service, SubscriptionResponse

log = logging.getLogger("softphone.client.session")

PasswordProvider = Callable[[], str | Awaitable[str]]
MIN_REFRESH_RETRY = 1.0


class _Resubscribe(Exception):
    """The server forgot the subscription; make a new one."""


class SignalingClient:
    """One device of user `username` on the server at `base_url`.

    `password_provider` is called for each login (never stored); it may be a coroutine
    function. Events go to `on_event` (see `softphone.client.events`). `rest` is the
    authenticated `RestClient` for call actions.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password_provider: PasswordProvider,
        *,
        on_event: EventCallback = events.ignore,
        services: Sequence[Service] = ("call",),
        expires: int = 3600,
        force_logout: bool = False,
        backoff: Backoff | None = None,
        ping_interval: float | None = None,
        missed_pongs: int = 2,
        refresh_at: float = 0.5,
        refresh_jitter: float = 0.2,
        timeout: float = 10.0,
        stop_timeout: float = 3.0,
        session: aiohttp.ClientSession | None = None,
        ca_file: str | None = None,
        insecure_skip_tls_verify_for_development: bool = False,
    ) -> None:
        if not 0 < refresh_at < 1 or not 0 <= refresh_jitter < 1:
            raise ValueError("refresh_at is a fraction in (0, 1), refresh_jitter in [0, 1)")
        self.username = username
        self._password_provider = password_provider
        self._on_event = on_event
        self._services = list(services)
        self._expires = expires
        self._force_logout = force_logout
        self._backoff = backoff or Backoff()
        self._ping_interval = ping_interval
        self._missed_pongs = missed_pongs
        self._refresh_at = refresh_at
        self._refresh_jitter = refresh_jitter
        self._stop_timeout = stop_timeout
        tls = TlsSettings(ca_file, insecure_skip_tls_verify_for_development)
        self._rest = RestClient(base_url, session=session, timeout=timeout, tls=tls)
        self._subscription: SubscriptionResponse | None = None
        self._cursor: tuple[str, int] | None = None  # (subscription id, last seq) to resume
        self._channel: NotificationChannel | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._failure: errors.ClientError | None = None
        self._ws_state: events.WsState = "disconnected"

    def __repr__(self) -> str:
        return (
            f"SignalingClient({self._rest.base_url!r}, {self.username!r}, "
            f"connected={self.connected})"
        )

    # -- state -------------------------------------------------------------------------------

    @property
    def rest(self) -> RestClient:
        return self._rest

    @property
    def subscription(self) -> SubscriptionResponse | None:
        return self._subscription

    @property
    def ice_servers(self) -> list[IceServer]:
        """ICE servers (with TURN credentials) from the latest subscribe or refresh."""
        return list(self._subscription.ice_servers) if self._subscription else []

    @property
    def connected(self) -> bool:
        return self._channel is not None and self._channel.connected

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def failure(self) -> errors.ClientError | None:
        """What ended the last run (None while running or after a clean stop)."""
        return self._failure

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start (or restart after an ending) in the background; returns at once."""
        if self.running:
            return
        self._failure = None
        self._connected.clear()
        self._task = asyncio.create_task(self._supervise(), name=f"signaling {self.username}")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the channel is connected; raise what ended the session if it ends first
        (`AuthError`, `ServerError`, or `Disconnected`), TimeoutError after `timeout`."""
        task = self._task
        if task is None:
            raise errors.Disconnected("not started")
        waiter = asyncio.ensure_future(self._connected.wait())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._connected.is_set():
            return
        raise self._failure or errors.Disconnected("stopped")

    async def stop(self) -> None:
        """Close the channel, then unsubscribe and log out (best effort, bounded in time).

        The channel closes first, so our own unsubscribe is not reported back as `gone`."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_channel()
        if self._ws_state != "disconnected":
            self._emit(events.WsChange("disconnected", reason="stopped"))
        sub, had_token = self._subscription, self._rest.token is not None
        try:
            async with asyncio.timeout(self._stop_timeout):
                await self._leave()
        except TimeoutError:
            log.info(
                "server did not answer unsubscribe/logout within %.1f s; left anyway",
                self._stop_timeout,
            )
        finally:
            self._subscription = None
            self._cursor = None
            self._rest.token = None
            if sub is not None:
                self._emit(
                    events.SubscriptionChange("unsubscribed", None, "stopped", sub.subscription_id)
                )
            if had_token:
                self._emit(events.AuthChange("unauthenticated", "logged out"))
            await self._rest.close()

    async def _leave(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(errors.ClientError):
                await self._rest.unsubscribe(self._subscription.subscription_id)
        if self._rest.token is not None:
            with contextlib.suppress(errors.ClientError):
                await self._rest.logout()

    async def __aenter__(self) -> SignalingClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- emitting ----------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if isinstance(event, events.WsChange):
            self._ws_state = event.state
            if event.state == "connected":
                self._connected.set()
            else:
                self._connected.clear()
        try:
            self._on_event(event)
        except Exception:
            log.exception("on_event callback failed on %s; event dropped", event.name)

    # -- the supervisor ----------------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            try:
                await self._ensure_subscription()
            except errors.AuthError as exc:
                self._auth_failed(exc)
                return
            except errors.CertificateError as exc:  # will not change by retrying
                self._failure = exc
                self._emit(events.WsChange("disconnected", attempt, str(exc)))
                return
            except errors.ServerError as exc:
                if not exc.transient:
                    self._failure = exc
                    self._emit(events.SubscriptionError(exc))
                    self._emit(events.WsChange("disconnected", attempt, str(exc)))
                    return
                attempt = await self._wait_to_retry(attempt, exc)
                if attempt < 0:
                    return
                continue
            except errors.ServerUnreachable as exc:
                attempt = await self._wait_to_retry(attempt, exc)
                if attempt < 0:
                    return
                continue
            attempt = 0
            try:
                end, detail = await self._run_channel()
            except _Resubscribe:
                continue
            except errors.AuthError as exc:  # a refresh refused: the token is no good
                self._auth_failed(exc)
                return
            self._ended(end, detail)
            return

    def _auth_failed(self, exc: errors.AuthError) -> None:
        self._rest.token = None
        self._subscription = None
        self._failure = exc
        if self._ws_state != "disconnected":
            self._emit(events.WsChange("disconnected", reason=exc.message))
        self._emit(events.AuthError(exc))
        self._emit(events.AuthChange("unauthenticated", exc.code))

    async def _wait_to_retry(self, attempt: int, exc: errors.ClientError) -> int:
        """Sleep before the next attempt, or give up (returns -1) when attempts run out."""
        attempt += 1
        if self._backoff.exhausted(attempt):
            reason = f"gave up after {attempt - 1} attempts ({exc})"
            self._failure = errors.Disconnected(reason)
            self._emit(events.WsChange("disconnected", attempt - 1, reason))
            self._emit(events.SubscriptionChange("unsubscribed", "lost_connection", reason))
            return -1
        delay = self._backoff.delay(attempt)
        if isinstance(exc, errors.ServerError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        log.info("signaling server not available (%s); retry %d in %.2f s", exc, attempt, delay)
        self._emit(events.WsChange("reconnecting", attempt, str(exc), delay))
        await asyncio.sleep(delay)
        return attempt

    async def _ensure_subscription(self) -> None:
        logged_in = False
        if self._rest.token is None:
            await self._login()
            logged_in = True
        if self._subscription is None:
            try:
                sub = await self._rest.subscribe(
                    self._services, expires=self._expires, force_logout=self._force_logout
                )
            except errors.AuthError as exc:
                if logged_in:
                    raise
                # A token kept from an earlier run died meanwhile: log in again, once.
                self._rest.token = None
                self._emit(events.AuthChange("unauthenticated", exc.code))
                await self._login()
                sub = await self._rest.subscribe(
                    self._services, expires=self._expires, force_logout=self._force_logout
                )
            self._subscription = sub
            self._emit(events.SubscriptionChange("subscribed", subscription_id=sub.subscription_id))

    async def _login(self) -> None:
        provided = self._password_provider()
        password = provided if isinstance(provided, str) else await provided
        await self._rest.login(self.username, password)
        del password, provided
        self._emit(events.AuthChange("authenticated"))

    async def _run_channel(self) -> tuple[ChannelEnd, str]:
        sub = self._subscription
        assert sub is not None
        resume_from = 0
        if self._cursor is not None and self._cursor[0] == sub.subscription_id:
            resume_from = self._cursor[1]
        channel = NotificationChannel(
            self._rest,
            sub.subscription_id,
            channel=sub.channel,
            on_event=self._emit,
            ping_interval=self._ping_interval,
            missed_pongs=self._missed_pongs,
            backoff=self._backoff,
            connect_timeout=self._rest.timeout,
            resume_from=resume_from,
        )
        self._channel = channel
        channel.start()
        closed = asyncio.ensure_future(channel.wait_closed())
        failures = 0
        delay = self._refresh_delay(sub)
        try:
            while True:
                done, _ = await asyncio.wait({closed}, timeout=delay)
                if done:
                    return closed.result(), channel.end_detail or ""

                delay, failures = await self._refresh(failures)
        finally:
            closed.cancel()
            self._cursor = (sub.subscription_id, channel.last_seq)
            await self._stop_channel()

    async def _refresh(self, failures: int) -> tuple[float, int]:
        """Refresh the subscription; returns the delay to the next refresh and the failures."""
        sub = self._subscription
        assert sub is not None
        try:
            fresh = await self._rest.refresh_subscription(sub.subscription_id, self._expires)
        except errors.AuthError:
            raise  # the supervisor ends the session (the token is no good)
        except errors.ServerError as exc:
            if exc.status == 404:
                log.info(
                    "subscription %s is unknown to the server; subscribing again",
                    sub.subscription_id,
                )
                self._subscription = None
                self._emit(
                    events.SubscriptionChange(
                        "unsubscribed", "gone", exc.message, sub.subscription_id
                    )
                )
                raise _Resubscribe from exc
            return self._refresh_failed(failures + 1, exc)
        except errors.ServerUnreachable as exc:
            return self._refresh_failed(failures + 1, exc)
        self._subscription = fresh
        self._emit(events.SubscriptionResub(failures + 1, False, None, fresh.expires_at))
        return self._refresh_delay(fresh), 0

    def _refresh_failed(self, failures: int, exc: errors.ClientError) -> tuple[float, int]:
        sub = self._subscription
        assert sub is not None
        self._emit(events.SubscriptionResub(failures, True, exc, sub.expires_at))
        left = sub.expires_at - time.time()
        return max(MIN_REFRESH_RETRY, left / 2), failures

    def _refresh_delay(self, sub: SubscriptionResponse) -> float:
        lifetime = min(float(self._expires), sub.expires_at - time.time())
        lifetime = max(lifetime, MIN_REFRESH_RETRY)
        spread = random.uniform(1 - self._refresh_jitter, 1 + self._refresh_jitter)
        return lifetime * self._refresh_at * spread

    async def _stop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.stop()

    def _ended(self, end: ChannelEnd, detail: str) -> None:
        """The channel ended for good (it emitted the events); settle local state."""
        if end is ChannelEnd.AUTH:
            self._rest.token = None
            self._subscription = None
            self._failure = errors.AuthError("unauthorized", detail, 401)
            return
        if end in (ChannelEnd.GONE, ChannelEnd.REPLACED):
            self._subscription = None
        self._failure = errors.Disconnected(f"{end.value}: {detail}")


__all__ = ["PasswordProvider", "SignalingClient"]
