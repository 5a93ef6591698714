"""Engine events, named after the calling SDK's events (`call:stateChange`, ...).

Every event is a frozen dataclass with a class-level `name`. The signaling client's connection
events (`ws:change`, `subscription:change`, `auth:change`, `auth:error`, ...) are passed through
unchanged (`softphone.client.events`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from softphone.client import events as client_events
from softphone.engine.errors import ErrorInfo
from softphone.engine.states import CallState

if TYPE_CHECKING:
    from softphone.engine.devices import DeviceList
    from softphone.media.devices import AudioDevice

TrackKind = Literal["audio", "video"]
DtmfSource = Literal["signaled", "inband"]
DeviceKind = Literal["audio_in", "audio_out", "camera", "ring"]


@dataclass(frozen=True, slots=True)
class MediaOffered:
    audio: bool = True
    video: bool = False


@dataclass(frozen=True, slots=True)
class PreviousState:
    state: CallState
    local_hold: bool
    remote_hold: bool


@dataclass(frozen=True, slots=True)
class Transition:
    reason_text: str
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class CallStart:
    name: ClassVar[str] = "call:start"
    call_id: str
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class CallReceive:
    name: ClassVar[str] = "call:receive"
    call_id: str
    media_offered: MediaOffered = field(default_factory=MediaOffered)
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class CallStateChange:
    """The call's state or a hold flag changed; read the new state with `Engine.get`."""

    name: ClassVar[str] = "call:stateChange"
    call_id: str
    previous: PreviousState
    transition: Transition
    state: CallState  # the new state (a convenience; the SDK makes you read it)
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class CallNewTrack:
    name: ClassVar[str] = "call:newTrack"
    call_id: str
    track_id: str
    kind: TrackKind
    local: bool


@dataclass(frozen=True, slots=True)
class CallTrackEnded:
    name: ClassVar[str] = "call:trackEnded"
    call_id: str
    track_id: str
    kind: TrackKind
    local: bool


@dataclass(frozen=True, slots=True)
class CallError:
    name: ClassVar[str] = "call:error"
    call_id: str | None
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class MediaError:
    """A source, sink or window could not be used (the call goes on with a stand-in);
    `device` says which kind, when it was a device (`camera`: the test pattern is sent)."""

    name: ClassVar[str] = "media:error"
    error: ErrorInfo
    call_id: str | None = None
    device: DeviceKind | None = None


@dataclass(frozen=True, slots=True)
class MediaSourceMuted:
    """A track lost its source outside the user's control (device gone, network gap)."""

    name: ClassVar[str] = "media:sourceMuted"
    call_id: str
    track_id: str
    local: bool


@dataclass(frozen=True, slots=True)
class CallMuteChange:
    """The user muted or unmuted a call (`mute`, `unmute`): we send silence (and black) or
    our media again."""

    name: ClassVar[str] = "call:muteChange"
    call_id: str
    muted: bool


@dataclass(frozen=True, slots=True)
class MediaSourceUnmuted:
    name: ClassVar[str] = "media:sourceUnmuted"
    call_id: str
    track_id: str
    local: bool


@dataclass(frozen=True, slots=True)
class MediaLevels:
    """Audio levels of a call for meters, a few times a second while it has audio: what we
    send (after echo cancellation and gain control) and what we play. Linear, 0 to 1 of full
    scale, over the interval since the last event."""

    name: ClassVar[str] = "media:levels"
    call_id: str
    input_peak: float
    input_rms: float
    output_peak: float
    output_rms: float


@dataclass(frozen=True, slots=True)
class MediaDeviceChange:
    """A device in use changed (`set_audio_input`, `set_audio_output`, `set_camera`): new
    calls use it, and the live calls in `call_ids` switched to it (no renegotiation)."""

    name: ClassVar[str] = "media:deviceChange"
    kind: DeviceKind
    spec: str  # as given: a device name or index, a WAV path, "tone", "null", ...
    label: str  # readable, for a status line: "tone 440 Hz", the device's name, "file x.wav"
    call_ids: tuple[str, ...] = ()
    # The device in use that was unplugged, when that made the change (to the default one;
    # a `media:error` says so in words).
    unplugged: str = ""


@dataclass(frozen=True, slots=True)
class DevicesChanged:
    """Sound devices were plugged in or out, or the system's default changed, as the sound
    server (PulseAudio, PipeWire) reports them; only while the engine watches
    (`Engine(watch_devices=True)`, where such a server runs). `devices` is the new listing,
    as `list_devices` gives it; `added` and `removed` the devices that came and went; `lost`
    those of `removed` that were in use: the engine moved to the default device
    (`media:deviceChange` with `unplugged`) and said so in a `media:error`."""

    name: ClassVar[str] = "media:deviceListChange"
    devices: DeviceList
    added: tuple[AudioDevice, ...] = ()
    removed: tuple[AudioDevice, ...] = ()
    lost: tuple[AudioDevice, ...] = ()


@dataclass(frozen=True, slots=True)
class CallMediaConnectionChange:
    """The call's media health changed (`softphone.engine.media_health`).

    `state`: `new`, `checking`, `connected` (up and what should arrive does), `stalled` (up
    but nothing arrives, or the path was interrupted), `restarting` (a media restart is under
    way), `failed` (ICE or DTLS failed), `closed`. `ice` is the ICE connection state and
    `connection` aiortc's connection state (ICE and DTLS together) at that moment; `reason`
    says in words why the media is not `connected` (None when it is, or still being set up).
    Before these fields existed `state` was the ICE state; the values a client matched then
    (`checking`, `connected`, `failed`, `closed`) mean the same now."""

    name: ClassVar[str] = "call:mediaConnectionChange"
    call_id: str
    previous: str
    state: str
    ice: str | None = None
    connection: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CallStatsReceived:
    name: ClassVar[str] = "call:statsReceived"
    call_id: str
    stats: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallDtmfReceived:
    name: ClassVar[str] = "call:dtmf"
    call_id: str
    digits: str
    source: DtmfSource


CallEvent = (
    CallStart
    | CallReceive
    | CallStateChange
    | CallNewTrack
    | CallTrackEnded
    | CallError
    | MediaError
    | MediaSourceMuted
    | MediaSourceUnmuted
    | CallMuteChange
    | MediaLevels
    | MediaDeviceChange
    | DevicesChanged
    | CallMediaConnectionChange
    | CallStatsReceived
    | CallDtmfReceived
)

ConnectionEvent = (
    client_events.WsChange
    | client_events.SubscriptionChange
    | client_events.SubscriptionResub
    | client_events.SubscriptionError
    | client_events.AuthChange
    | client_events.AuthError
)

EngineEvent = CallEvent | ConnectionEvent

# The connection events by name, so users of the engine match on them without importing the
# signaling client.
WsChange = client_events.WsChange
SubscriptionChange = client_events.SubscriptionChange
SubscriptionResub = client_events.SubscriptionResub
SubscriptionError = client_events.SubscriptionError
AuthChange = client_events.AuthChange
AuthError = client_events.AuthError
EngineCallback = Callable[[EngineEvent], None]

__all__ = [
    "AuthChange",
    "AuthError",
    "CallDtmfReceived",
    "CallError",
    "CallEvent",
    "CallMediaConnectionChange",
    "CallMuteChange",
    "CallNewTrack",
    "CallReceive",
    "CallStart",
    "CallStateChange",
    "CallStatsReceived",
    "CallTrackEnded",
    "ConnectionEvent",
    "DeviceKind",
    "DevicesChanged",
    "DtmfSource",
    "EngineCallback",
    "EngineEvent",
    "MediaDeviceChange",
    "MediaError",
    "MediaLevels",
    "MediaOffered",
    "MediaSourceMuted",
    "MediaSourceUnmuted",
    "PreviousState",
    "SubscriptionChange",
    "SubscriptionError",
    "SubscriptionResub",
    "TrackKind",
    "Transition",
    "WsChange",
]
