"""The call engine: calls over the signaling client and aiortc, on one asyncio loop.

Operations on one call are serialised by the call's lock (its operation queue); notifications
for a call are processed in order by the call's worker under the same lock. Two notifications
are handled at once instead, so an operation waiting on them cannot deadlock: the answer to our
re-offer (`call.update_answer`) resolves the waiting operation, and an ending notification
fails it. Every failure path ends the call (peer connection closed, tracks and sinks stopped)
and emits `call:error`.
"""

from __future__ import annotations

from softphone.engine.controls import Controls
from softphone.engine.devices import Devices
from softphone.engine.incoming import IncomingCalls
from softphone.engine.outgoing import OutgoingCalls
from softphone.engine.renegotiation import Renegotiation


class Engine(OutgoingCalls, IncomingCalls, Renegotiation, Controls, Devices):
    """Calls for one user (or anonymous calls), with events after the calling SDK.

    `audio_in` / `audio_out` are media specs (`"tone"`, `"silence"`, `"wav:PATH"`, `"device"`,
    `"null"`, ...) opened per call; an unavailable device gives a `media:error` event and
    silence / the null sink instead, and the call goes on. `camera` picks the video source
    (`"pattern"`, `"default"`, `"/dev/video0"`). `list_devices`, `set_audio_input`,
    `set_audio_output` and `set_camera` list and switch them, live calls included
    (`media:deviceChange`).
    """
