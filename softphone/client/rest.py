"""REST client for protocol v1 (`/v1/...`), decoding into `softphone.protocol.models`.

aiohttp carries both the REST calls and the notification websocket (see `connect_websocket`):
it is already a dependency of the project, so the client has one HTTP stack (one connection
pool, one set of timeouts and TLS settings) instead of adding the `websockets` package.

The bearer token is set by `login` (or given, e.g. the call-scoped token of an anonymous call).
It travels only in the Authorization header: never in a URL, never in a log line, not in repr.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from softphone.client.errors import AuthError, CertificateError, ServerError, ServerUnreachable
from softphone.client.tls import TlsSettings
from softphone.protocol.models import (
    AnonymousCallRequest,
    AnonymousCallResponse,
    AnonymousIceRequest,
    AnonymousIceResponse,
    CallInfo,
    CallList,
    CandidateRequest,
    DtmfRequest,
    ErrorBody,
    ForwardRequest,
    Health,
    History,
    HistoryEntry,
    LoginRequest,
    LoginResponse,
    MakeCallRequest,
    Media,
    SdpRequest,
    Service,
    SubscriptionRefresh,
    SubscriptionRequest,
    SubscriptionResponse,
    TokenCredentials,
)

log = logging.getLogger("softphone.client.rest")

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error(status: int, payload: bytes, retry_after: float | None) -> ServerError:
    try:
        detail = msgspec.json.decode(payload, type=ErrorBody).error
        code, message = detail.code, detail.message
    except (msgspec.DecodeError, msgspec.ValidationError):
        code = f"http_{status}"
        message = payload[:200].decode("utf-8", "replace").strip() or "no error body"
    cls = AuthError if status == 401 else ServerError
    return cls(code, message, status, retry_after)


def _decode(data: bytes, model: type[T], what: str) -> T:
    try:
        return msgspec.json.decode(data, type=model)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ServerError("bad_response", f"{what}: unexpected response body: {exc}", 200) from exc


def _id(value: str) -> str:
    return quote(value, safe="")


class RestClient:
    """Typed access to the REST API; every method raises `ServerError` (its subclass
    `AuthError` for 401) when the server refuses and `ServerUnreachable` when it cannot be
    reached. Pass `session` to share an `aiohttp.ClientSession`; otherwise one is created on
    first use (checking certificates as `tls` says: the system CA bundle by default) and closed
    by `close()`. A refused certificate raises `CertificateError`."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        token: str | None = None,
        tls: TlsSettings | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._tls = tls or TlsSettings()
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._token = token

    def __repr__(self) -> str:
        return f"RestClient({self._base!r}, authenticated={self._token is not None})"

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def token(self) -> str | None:
        """The bearer token in use (a secret: do not log or display it)."""
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = self._tls.new_session()
        return self._session

    def url(self, path: str) -> str:
        """Absolute URL of a path on the server (absolute URLs pass through)."""
        if "://" in path:
            return path
        return self._base + ("" if path.startswith("/") else "/") + path

    def _headers(self, auth: bool) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if auth:
            if self._token is None:
                raise AuthError("unauthorized", "not logged in", 401)
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        params: dict[str, str] | None = None,
    ) -> bytes:
        headers = self._headers(auth)
        data = None
        if body is not None:
            data = _encoder.encode(body)
            headers["Content-Type"] = "application/json"
        try:
            async with self.session.request(
                method,
                self.url(path),
                data=data,
                headers=headers,
                params=params,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                payload = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise ServerUnreachable(
                f"{method} {path}: no answer within {self._timeout:g} s"
            ) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CertificateError(self._tls.explain(self._base, exc.certificate_error)) from exc
        except aiohttp.ClientError as exc:
            raise ServerUnreachable(f"{method} {path}: {exc}") from exc
        log.debug("%s %s -> %d", method, path, status)  # paths hold ids only, never tokens
        if status >= 400:
            raise _error(status, payload, retry_after)
        return payload

    async def _get(
        self,
        method: str,
        path: str,
        model: type[T],
        body: Any = None,
        *,
        auth: bool = True,
        params: dict[str, str] | None = None,
    ) -> T:
        return _decode(
            await self._send(method, path, body, auth=auth, params=params),
            model,
            f"{method} {path}",
        )

    async def connect_websocket(
        self, channel: str, *, close_timeout: float = 2.0
    ) -> aiohttp.ClientWebSocketResponse:
        """Open the notification websocket, authenticated by the Authorization header."""
        headers = self._headers(auth=True)
        try:
            return await self.session.ws_connect(
                self.url(channel),
                headers=headers,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_close=close_timeout),
            )
        except aiohttp.WSServerHandshakeError as exc:
            code = "unauthorized" if exc.status == 401 else f"http_{exc.status}"
            cls = AuthError if exc.status == 401 else ServerError
            raise cls(code, f"websocket upgrade refused: {exc.message}", exc.status) from exc
        except TimeoutError as exc:
            raise ServerUnreachable(f"websocket {channel}: no answer in time") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CertificateError(self._tls.explain(self._base, exc.certificate_error)) from exc
        except aiohttp.ClientError as exc:
            raise ServerUnreachable(f"websocket {channel}: {exc}") from exc

    # -- sessions and subscriptions ----------------------------------------------------------

    async def login(self, username: str, password: str) -> LoginResponse:
        result = await self._get(
            "POST",
            "/v1/sessions",
            LoginResponse,
            LoginRequest(username=username, password=password),
            auth=False,
        )
        self._token = result.token
        return result

    async def logout(self) -> None:
        """Revoke the token (its subscription closes with 4000); forgotten here either way."""
        try:
            await self._send("DELETE", "/v1/sessions")
        finally:
            self._token = None

    async def subscribe(
        self,
        services: Sequence[Service] = ("call",),
        *,
        expires: int = 3600,
        force_logout: bool = False,
    ) -> SubscriptionResponse:
        body = SubscriptionRequest(
            services=list(services), force_logout=force_logout, expires=expires
        )
        return await self._get("POST", "/v1/subscriptions", SubscriptionResponse, body)

    async def refresh_subscription(
        self, subscription_id: str, expires: int = 3600
    ) -> SubscriptionResponse:
        return await self._get(
            "PUT",
            f"/v1/subscriptions/{_id(subscription_id)}",
            SubscriptionResponse,
            SubscriptionRefresh(expires=expires),
        )

    async def get_subscription(self, subscription_id: str) -> SubscriptionResponse:
        return await self._get(
            "GET", f"/v1/subscriptions/{_id(subscription_id)}", SubscriptionResponse
        )

    async def unsubscribe(self, subscription_id: str) -> None:
        await self._send("DELETE", f"/v1/subscriptions/{_id(subscription_id)}")

    # -- calls -------------------------------------------------------------------------------

    async def make_call(
        self,
        to: str,
        sdp: str,
        *,
        audio: bool = True,
        video: bool = False,
        display_name: str | None = None,
    ) -> CallInfo:
        body = MakeCallRequest(
            to=to, sdp=sdp, media=Media(audio=audio, video=video), display_name=display_name
        )
        return await self._get("POST", "/v1/calls", CallInfo, body)

    async def list_calls(self) -> list[CallInfo]:
        return (await self._get("GET", "/v1/calls", CallList)).calls

    async def get_call(self, call_id: str) -> CallInfo:
        return await self._get("GET", f"/v1/calls/{_id(call_id)}", CallInfo)

    async def _action(self, call_id: str, action: str, body: Any = None) -> CallInfo:
        return await self._get("POST", f"/v1/calls/{_id(call_id)}/{action}", CallInfo, body)

    async def ringing(self, call_id: str) -> CallInfo:
        return await self._action(call_id, "ringing")

    async def answer(self, call_id: str, sdp: str) -> CallInfo:
        return await self._action(call_id, "answer", SdpRequest(sdp=sdp))

    async def reject(self, call_id: str) -> CallInfo:
        return await self._action(call_id, "reject")

    async def end(self, call_id: str) -> CallInfo:
        return await self._action(call_id, "end")

    async def update(self, call_id: str, sdp: str) -> CallInfo:
        return await self._action(call_id, "update", SdpRequest(sdp=sdp))

    async def update_answer(self, call_id: str, sdp: str) -> CallInfo:
        return await self._action(call_id, "update-answer", SdpRequest(sdp=sdp))

    async def dtmf(self, call_id: str, digits: str, duration_ms: int = 100) -> CallInfo:
        return await self._action(
            call_id, "dtmf", DtmfRequest(digits=digits, duration_ms=duration_ms)
        )

    async def candidate(
        self,
        call_id: str,
        candidate: str | None,
        sdp_mid: str | None = None,
        sdp_mline_index: int | None = None,
        ufrag: str | None = None,
    ) -> CallInfo:
        """Trickle one ICE candidate to the other party (None: the end of our candidates)."""
        body = CandidateRequest(
            candidate=candidate, sdp_mid=sdp_mid, sdp_mline_index=sdp_mline_index, ufrag=ufrag
        )
        return await self._action(call_id, "candidates", body)

    async def forward(self, call_id: str, to: str) -> CallInfo:
        return await self._action(call_id, "forward", ForwardRequest(to=to))

    async def make_anonymous_call(
        self,
        *,
        sdp: str,
        to: str | None = None,
        from_: str | None = None,
        audio: bool = True,
        video: bool = False,
        display_name: str | None = None,
        credentials: TokenCredentials | None = None,
        adopt_token: bool = True,
    ) -> AnonymousCallResponse:
        """Start an anonymous call (no login). With `adopt_token` this client then acts as the
        anonymous party, with the call-scoped token, for the call's actions and channel."""
        body = AnonymousCallRequest(
            to=to,
            from_=from_,
            sdp=sdp,
            media=Media(audio=audio, video=video),
            display_name=display_name,
            credentials=credentials,
        )
        result = await self._get(
            "POST", "/v1/anonymous/calls", AnonymousCallResponse, body, auth=False
        )
        if adopt_token:
            self._token = result.token
        return result

    async def anonymous_ice_servers(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        credentials: TokenCredentials | None = None,
    ) -> AnonymousIceResponse:
        """The ICE servers (fresh TURN credentials) for the anonymous call about to be made,
        before its offer: the same `to`/`from_`/`credentials` as the call will send. No login;
        a token set is checked but not used up. A server older than this lookup answers 404."""
        body = AnonymousIceRequest(to=to, from_=from_, credentials=credentials)
        return await self._get(
            "POST", "/v1/anonymous/ice-servers", AnonymousIceResponse, body, auth=False
        )

    # -- history, health ---------------------------------------------------------------------

    async def history(self, limit: int = 50, offset: int = 0) -> list[HistoryEntry]:
        params = {"limit": str(limit), "offset": str(offset)}
        return (await self._get("GET", "/v1/history", History, params=params)).records

    async def health(self) -> Health:
        return await self._get("GET", "/v1/health", Health, auth=False)


__all__ = ["RestClient", "parse_retry_after"]
