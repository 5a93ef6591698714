"""Signaling client: REST (aiohttp) and the notification websocket (aiohttp as well), with
reconnect, resume and resync. Imports only `softphone.protocol`, aiohttp, msgspec and the
standard library, so it runs headless (no media, engine or UI).

- `SignalingClient`: a user's device (login, subscribe, channel, refresh, stop).
- `AnonymousSignaling`: one anonymous call with its call-scoped token and channel.
- `RestClient`: the typed REST API; `NotificationChannel`: one subscription's websocket.
- Events (`softphone.client.events`) go to one `on_event` callback; `EventStream` adapts it to
  `async for`.
"""

from softphone.client import events
from softphone.client.anonymous import AnonymousSignaling
from softphone.client.backoff import Backoff
from softphone.client.channel import ChannelEnd, NotificationChannel
from softphone.client.errors import (
    AuthError,
    CertificateError,
    ClientError,
    Disconnected,
    ServerError,
    ServerUnreachable,
)
from softphone.client.events import EventStream
from softphone.client.rest import RestClient
from softphone.client.session import SignalingClient

__all__ = [
    "AnonymousSignaling",
    "AuthError",
    "Backoff",
    "CertificateError",
    "ChannelEnd",
    "ClientError",
    "Disconnected",
    "EventStream",
    "NotificationChannel",
    "RestClient",
    "ServerError",
    "ServerUnreachable",
    "SignalingClient",
    "events",
]
