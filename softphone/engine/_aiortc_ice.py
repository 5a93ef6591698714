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
- An ICE restart that keeps the DTLS association (`IceRestart`; aiortc has none): a new aioice
  `Connection` (new ufrag/pwd, gathered afresh) takes the place of the old one in the
  gatherer and the transport, sharing the old one's receive queue, so the DTLS transport's
  pending read gets the datagrams of whichever path carries them. The old path keeps
  carrying media until the new one is nominated; then the transport sends and receives on
  the new one, the transport's monitor follows it, and the old one is closed (with a queue
  of its own, so its closing does not end the DTLS transport's read).
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


def _ice_transports(pc: RTCPeerConnection) -> list[Any]:
    found: list[Any] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is not None and dtls.transport not in found:
            found.append(dtls.transport)
    return found


class IceRestart:
    """One ICE restart of `pc`'s transports that keeps their DTLS associations: `prepare`
    before the offer or answer is made (it then carries the new ufrag, pwd and candidates),
    `start` once the remote description with the far end's new parameters is applied."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self._swaps: list[tuple[Any, Any, Any]] = []  # (ice transport, old, new connection)
        self.task: asyncio.Task[bool] | None = None

    async def prepare(self) -> None:
        for ice in _ice_transports(self.pc):
            old = ice._connection
            new = aioice.ice.Connection(
                ice_controlling=old.ice_controlling,
                components=1,
                stun_server=old.stun_server,
                turn_server=old.turn_server,
                turn_username=old.turn_username,
                turn_password=old.turn_password,
                turn_ssl=old.turn_ssl,
                turn_transport=old.turn_transport,
                use_ipv4=old._use_ipv4,
                use_ipv6=old._use_ipv6,
                transport_policy=old._transport_policy,
            )
            new._tie_breaker = old._tie_breaker
            await new.gather_candidates()
            new._queue = old._queue  # the DTLS transport's pending read waits on this queue
            ice.iceGatherer._connection = new
            ice.iceGatherer._remote_candidates_end = False
            ice._connection = new
            self._swaps.append((ice, old, new))

    def start(self, remote_ufrag: str, remote_pwd: str) -> asyncio.Task[bool]:
        """Run the connectivity checks on the new connections; the task's result says whether
        every one connected (the old paths are closed then)."""
        for _, _, new in self._swaps:
            new.remote_username, new.remote_password = remote_ufrag, remote_pwd
        self.task = asyncio.ensure_future(self._connect())
        return self.task

    async def _connect(self) -> bool:
        ok = True
        for ice, old, new in self._swaps:
            try:
                await new.connect()
            except ConnectionError:
                ok = False
                continue
            ice._recv, ice._send = new.recv, new.send
            monitor = ice._RTCIceTransport__monitor_task
            if monitor is not None:
                monitor.cancel()
            ice._RTCIceTransport__monitor_task = asyncio.ensure_future(ice._monitor())
            old._queue = asyncio.Queue()  # its close must not wake the DTLS read with None
            await old.close()
        return ok

    async def abandon(self) -> None:
        """The restart did not happen (the re-offer was refused): back to the old paths."""
        if self.task is not None:
            self.task.cancel()
        for ice, old, new in self._swaps:
            ice.iceGatherer._connection = old
            ice._connection = old
            new._queue = asyncio.Queue()
            await new.close()
        self._swaps.clear()


def remote_candidates_end(pc: RTCPeerConnection) -> bool:
    """Whether the far end said it has no more candidates (each transport)."""
    return all(ice.iceGatherer._remote_candidates_end for ice in _ice_transports(pc))


def has_local_candidates(pc: RTCPeerConnection) -> bool:
    return any(ice.iceGatherer.getLocalCandidates() for ice in _ice_transports(pc))


def describe_all(failures: Sequence[TurnFailure]) -> str:
    return "; ".join(f.describe() for f in failures)


__all__ = [
    "IceRestart",
    "SelectedPair",
    "TurnFailure",
    "describe_all",
    "has_local_candidates",
    "record_turn_failures",
    "remote_candidates_end",
    "selected_pair",
    "turn_failures",
]
