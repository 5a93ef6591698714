"""The media health of one call: is what the user should hear and see actually arriving?

A `MediaHealth` belongs to one `CallSession`, which feeds it what it observes (no I/O here):

- the transport: the ICE state, aiortc's connection state (ICE and DTLS together), why the
  DTLS handshake failed, and the TURN servers that refused us (`transport`);
- per remote track, a counter of what arrived *and was decoded* (audio: packets our receive
  stream played or rebuilt from FEC; video: frames out of the video sink), and whether the
  track should be flowing now (connected, nobody holding) (`flows`);
- whether a media restart is under way (`restarting`).

From these it derives one state, `state`:

    new, checking            the media connection is being set up
    connected                up, and every track that should flow does
    stalled                  up, but a track that should flow has delivered nothing for
                             `stall_after` seconds
    restarting               a media restart (ICE restart or new transport) is under way
    failed                   ICE or DTLS failed (`reason` says which, with the TURN failures)
    closed                   the call's media is closed

and `reason`, a sentence a person understands. `dead_for()` is how long the media of a call
that had been up has not been `connected` (the session recovers or ends the call past its
limit). A change of state is returned by `update` as a `HealthChange` for the session to
report (`call:mediaConnectionChange`, and `media:error` when it went bad).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

UP = frozenset({"connected", "completed"})
BAD = frozenset({"stalled", "failed"})


@dataclass
class _Flow:
    kind: str
    count: int
    progress: float  # when `count` last grew, or when the track started being expected


@dataclass(frozen=True, slots=True)
class HealthChange:
    previous: str
    state: str
    ice: str
    connection: str
    reason: str | None


@dataclass
class MediaHealth:
    """See the module documentation."""

    stall_after: float = 2.0
    clock: Callable[[], float] = time.monotonic
    ice: str = "new"
    connection: str = "new"
    dtls_failure: str | None = None
    turn_failures: tuple[str, ...] = ()
    path_note: str | None = None  # e.g. the other party offered no candidates
    restarting: bool = False
    state: str = "new"
    reason: str | None = None
    ever_up: bool = False  # media has been `connected` once in this call
    _flows: dict[str, _Flow] = field(default_factory=dict)
    _expecting: bool = False
    _bad_since: float | None = None
    _last_arrival: float = 0.0  # when any track's count last grew
    _bad_reason: str | None = None

    # -- what the session observed -----------------------------------------------------------

    def transport(
        self,
        ice: str,
        connection: str,
        dtls_failure: str | None = None,
        turn_failures: Sequence[str] = (),
    ) -> None:
        self.ice, self.connection = ice, connection
        self.dtls_failure = dtls_failure
        self.turn_failures = tuple(turn_failures)

    def flows(self, counts: Mapping[str, tuple[str, int]], expecting: bool) -> None:
        """`counts`: track id → (kind, decoded so far). `expecting`: they should grow now."""
        now = self.clock()
        if expecting and not self._expecting:
            for flow in self._flows.values():
                flow.progress = now  # a fresh grace period (unhold, restart, answer)
        self._expecting = expecting
        for track_id in list(self._flows):
            if track_id not in counts:
                del self._flows[track_id]
        for track_id, (kind, count) in counts.items():
            known = self._flows.get(track_id)
            if known is None or known.kind != kind:
                self._flows[track_id] = _Flow(kind, count, now)
            elif count != known.count:
                known.count, known.progress = count, now
                self._last_arrival = now

    def set_restarting(self, restarting: bool) -> None:
        was, self.restarting = self.restarting, restarting
        if was and not restarting:
            now = self.clock()
            for flow in self._flows.values():
                flow.progress = now

    # -- what it makes of it -----------------------------------------------------------------

    def _derive(self) -> tuple[str, str | None]:
        if self.ice == "closed" or (self.connection == "closed" and self.ice not in UP):
            return "closed", None
        if self.restarting:
            return "restarting", "the media connection is being restarted"
        if self.dtls_failure is not None:
            return "failed", f"the secure media connection (DTLS) failed: {self.dtls_failure}"
        if self.ice == "failed":
            return "failed", self.no_path_reason()
        if self.connection == "failed":
            return "failed", "the media connection failed"
        if self.ice in UP and self.connection == "connected":
            silent = self.silent_tracks()
            if silent:
                return "stalled", silent
            return "connected", None
        if self.ice in UP and self.connection == "connecting":
            return "checking", None  # ICE up, the DTLS handshake under way
        if self.ice == "disconnected":
            return "stalled", "the media connection was interrupted"
        return self.ice, None

    def no_path_reason(self) -> str:
        """Why ICE found no path, naming the TURN servers that refused us, if any."""
        notes = list(self.turn_failures)
        if self.path_note:
            notes.append(self.path_note)
        if notes:
            return "no media path: " + "; ".join(notes)
        return "ICE found no working path"

    def silent_tracks(self) -> str | None:
        """A sentence about the tracks that should flow and have not for `stall_after`."""
        if not self._expecting:
            return None
        now = self.clock()
        silent = sorted(
            {f.kind for f in self._flows.values() if now - f.progress > self.stall_after}
        )
        if not silent:
            return None
        what = " and ".join(silent)
        return f"no {what} has arrived from the other party for {self.stall_after:g} s"

    def update(self) -> HealthChange | None:
        """Derive the state now; the change since the last call, if any."""
        state, reason = self._derive()
        now = self.clock()
        if state == "connected" and self._waiting_for_arrival():
            # Up again (a restart's grace period), but nothing has arrived since the media
            # went bad: still stalled, and the dead time keeps counting.
            state = "stalled"
            reason = self._bad_reason or "no media has arrived since the restart"
        if state == "connected":
            self.ever_up = True
            self._bad_since = None
            self._bad_reason = None
        elif self.ever_up and self._bad_since is None and state != "closed":
            # Dead since the last packet when the media stalled (not since we noticed).
            stalled = state == "stalled" and self._expecting and self._flows
            self._bad_since = min(f.progress for f in self._flows.values()) if stalled else now
        if state in BAD and reason:
            self._bad_reason = reason  # what a later "still nothing" repeats
        previous = self.state
        changed = state != previous or (state in BAD and reason != self.reason)
        self.state, self.reason = state, reason
        if not changed:
            return None
        return HealthChange(previous, state, self.ice, self.connection, reason)

    def _waiting_for_arrival(self) -> bool:
        bad = self._bad_since
        return (
            bad is not None and self._expecting and bool(self._flows) and self._last_arrival <= bad
        )

    def dead_for(self) -> float:
        """Seconds the media of a call that had been up has not been `connected`."""
        if self._bad_since is None:
            return 0.0
        return self.clock() - self._bad_since

    def delivered(self) -> dict[str, int]:
        """What arrived per track so far (for statistics and tests)."""
        return {track_id: flow.count for track_id, flow in self._flows.items()}


__all__ = ["BAD", "UP", "HealthChange", "MediaHealth"]
