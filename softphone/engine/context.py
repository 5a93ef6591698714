"""What a call session needs from the engine that holds it, handed over explicitly.

`Engine` builds one `CallContext` and gives it to every `CallSession`; a session never reaches
into the engine otherwise. This is the only wiring between the registry and the calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

from softphone.engine.events import EngineEvent
from softphone.engine.sources import MediaSettings


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How calls behave; `Engine`'s keyword arguments of the same names."""

    ringing_feedback: bool = True  # an incoming call tells the caller it rings
    update_timeout: float = 10.0  # seconds a re-offer waits for its answer
    reoffer_wait: float = 10.0  # seconds a re-offer waits for an unreachable server
    glare_retries: int = 5  # re-offers refused for glare retried this often
    inband_dtmf: bool = True  # detect DTMF tones in received audio
    show_video: bool = False  # open a window for remote video
    media_timeout: float = 20.0  # seconds the media connection has to come up
    # Seconds the media of an established call may be dead (failed, stalled) before the call
    # is ended with the reason; meanwhile it is restarted (`auto_restart`).
    media_dead_timeout: float = 10.0
    auto_restart: bool = True  # restart the media when it dies or the network path changes
    stall_after: float = 2.0  # seconds without decoded media before a track counts as stalled


@dataclass(frozen=True, slots=True)
class CallContext:
    """The engine's services, as a session sees them."""

    options: CallOptions
    media: MediaSettings
    emit: Callable[[EngineEvent], None]
    spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]
    # (our call id, the server's): the server knows the call; route its notifications to it.
    bind: Callable[[str, str], None]
    # (the server's call id): the call ended; stop routing to it.
    unbind: Callable[[str], None]
    # Every remote audio block and video frame, for the engine's listeners.
    heard: Callable[[str, np.ndarray[Any, Any]], None]
    seen: Callable[[str, Any], None]
