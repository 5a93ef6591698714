"""What aiortc does not tell about ICE: TURN failures and the selected candidate pair.

Every touch of aioice's and aiortc's ICE internals for this is here (aiortc 1.16.0 with aioice
0.13.0; any other version raises ImportError at import):

- `aioice.ice.Connection.get_component_candidates` creates one task per candidate source,
  the TURN one calling the module function `aioice.ice.relayed_candidate`, and drops any
  exception it raised (a 401 for a wrong secret, a 403, a timeout): no relay candidate, no log.
  `record_turn_failures` wraps both: the first marks the running connection in a context
  variable (the tasks it creates copy it), the second records why its allocation failed.
- `Connection.gather_candidates` gathers for `_components`, which an end-of-candidates with no
  remote candidate (an offer from a peer whose own TURN failed) has already pruned to nothing:
  the answerer then never contacted its TURN server, so it could not say why there is no path.
  We gather for component 1 in that case (the candidates only show in our answer; connectivity
  checks still see the pruned set).
- `RTCDtlsTransport.transport` (public) → `RTCIceTransport._connection` (the aioice
  `Connection`) → `_nominated` (component → `CandidatePair`): the pair ICE selected.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aioice
import aiortc

AIORTC_VERSION, AIOICE_VERSION = "1.16.0", "0.13.0"
if (aiortc.__version__, aioice.__version__) != (AIORTC_VERSION, AIOICE_VERSION):
    raise ImportError(
        f"softphone's ICE internals were written for aiortc {AIORTC_VERSION} and aioice "
        f"{AIOICE_VERSION}, found {aiortc.__version__} and {aioice.__version__}: "
        "re-check softphone/engine/_aiortc_ice.py"
    )

import aioice.ice  # noqa: E402
from aioice import stun  # noqa: E402
from aiortc import RTCPeerConnection  # noqa: E402


@dataclass(frozen=True)
class TurnFailure:
    """A TURN server that gave us no relay address, and why, in words a person can read."""

    server: str  # host:port as configured
    transport: str  # udp or tcp
    code: int | None  # the STUN error code (401 unauthorized, 403, 437, 486, ...), if any
    reason: str

    def describe(self) -> str:
        return f"TURN server {self.server} ({self.transport}): {self.reason}"


@dataclass(frozen=True)
class SelectedPair:
    local_type: str  # host, srflx, prflx or relay
    local_address: tuple[str, int]
    remote_type: str
    remote_address: tuple[str, int]

    @property
    def relayed(self) -> bool:
        return "relay" in (self.local_type, self.remote_type)


_failures: weakref.WeakKeyDictionary[Any, list[TurnFailure]] = weakref.WeakKeyDictionary()
_gathering: contextvars.ContextVar[Any] = contextvars.ContextVar("softphone_ice_gathering")
_MARK = "softphone_turn_failures"


def _describe(exc: BaseException) -> tuple[int | None, str]:
    if isinstance(exc, stun.TransactionFailed):
        code, phrase = exc.response.attributes.get("ERROR-CODE", (None, ""))
        if code == 401:
            return code, f"refused our credentials (401 {phrase or 'Unauthorized'})"
        if code == 403:
            return code, f"refused the allocation (403 {phrase or 'Forbidden'})"
        return code, f"allocation failed ({code} {phrase})".rstrip()
    if isinstance(exc, stun.TransactionTimeout):
        return None, "no response (unreachable or not a TURN server)"
    if isinstance(exc, asyncio.CancelledError):
        return None, "no relay address in time"
    return None, f"unreachable ({exc.__class__.__name__}: {exc})"


def record_turn_failures() -> None:
    """Install the wrappers (idempotent)."""
    original_gather = aioice.ice.Connection.get_component_candidates
    if getattr(original_gather, _MARK, False):
        return
    original_relayed = aioice.ice.relayed_candidate

    async def get_component_candidates(self: Any, *args: Any, **kwargs: Any) -> Any:
        _gathering.set(self)  # this task's context only; its TURN task copies it
        return await original_gather(self, *args, **kwargs)

    async def relayed_candidate(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original_relayed(*args, **kwargs)
        except BaseException as exc:
            connection = _gathering.get(None)
            if connection is not None:
                host, port = kwargs["turn_server"]
                code, reason = _describe(exc)
                failure = TurnFailure(f"{host}:{port}", kwargs["turn_transport"], code, reason)
                _failures.setdefault(connection, []).append(failure)
            raise

    original_gather_all = aioice.ice.Connection.gather_candidates

    async def gather_candidates(self: Any) -> None:
        pruned = self._components
        if pruned or self.turn_server is None:
            await original_gather_all(self)
            return
        self._components = {1}
        try:
            await original_gather_all(self)
        finally:
            self._components = pruned

    setattr(get_component_candidates, _MARK, True)
    aioice.ice.Connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]
    aioice.ice.Connection.gather_candidates = gather_candidates  # type: ignore[method-assign]
    aioice.ice.relayed_candidate = relayed_candidate


def _connections(pc: RTCPeerConnection) -> list[Any]:
    found: list[Any] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        connection = getattr(dtls.transport, "_connection", None) if dtls else None
        if connection is not None and connection not in found:
            found.append(connection)
    return found


def turn_failures(pc: RTCPeerConnection) -> list[TurnFailure]:
    """The TURN allocations that failed while `pc` gathered (deduplicated, in order)."""
    seen: list[TurnFailure] = []
    for connection in _connections(pc):
        for failure in _failures.get(connection, []):
            if failure not in seen:
                seen.append(failure)
    return seen


def selected_pair(pc: RTCPeerConnection) -> SelectedPair | None:
    """The candidate pair ICE nominated for RTP (component 1), or None before that."""
    for connection in _connections(pc):
        nominated: dict[int, Any] = getattr(connection, "_nominated", {})
        pair = nominated.get(1)
        if pair is not None:
            local, remote = pair.local_candidate, pair.remote_candidate
            return SelectedPair(
                local.type, (local.host, local.port), remote.type, (remote.host, remote.port)
            )
    return None


def describe_all(failures: Sequence[TurnFailure]) -> str:
    return "; ".join(f.describe() for f in failures)


__all__ = [
    "SelectedPair",
    "TurnFailure",
    "describe_all",
    "record_turn_failures",
    "selected_pair",
    "turn_failures",
]
