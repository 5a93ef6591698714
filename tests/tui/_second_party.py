"""A second user for the real-terminal test: logs in (password from $SOFTPHONE_PASSWORD), calls
the first, prints what happens one word a line (`ringing`, `connected`, `ended`) and exits
once the call has ended (or after a bound). Run inside the softphone's network namespace."""

from __future__ import annotations

import os
import sys
import threading

from softphone.client import Backoff
from softphone.engine import CallState, EngineThread
from softphone.engine.events import CallStateChange, EngineEvent

BOUND = 60.0


def main(url: str, user: str, callee: str) -> int:
    password = os.environ["SOFTPHONE_PASSWORD"]
    done = threading.Event()

    def seen(event: EngineEvent) -> None:
        if isinstance(event, CallStateChange):
            if event.state == CallState.RINGING:
                print("ringing", flush=True)
            elif event.state == CallState.CONNECTED:
                print("connected", flush=True)
            elif event.state in (CallState.ENDED, CallState.CANCELLED):
                print("ended", flush=True)
                done.set()

    with EngineThread(audio_in="tone", audio_out="null") as engine:
        engine.subscribe(seen)
        engine.start(url, user, lambda: password, backoff=Backoff(base=0.2, cap=1.0))
        engine.make(callee)
        done.wait(BOUND)
    return 0 if done.is_set() else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
