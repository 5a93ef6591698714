"""The aiortc adapter: one RTCPeerConnection with our tracks, offers/answers, hold directions,
media connection state and summarised stats. aiortc's camelCase stays inside this module.

- The peer connection is always built with an explicit ICE server list (never aiortc's default
  public STUN server).
- Tracks are keyed by the transceiver's mid: `local:audio:0`, `remote:video:1`.
- Hold is derived from the negotiated SDP: the remote party holds when its description of the
  audio (or first) m-line does not include `recv` (sendonly or inactive); we hold when we put
  sendonly/inactive in ours.
- Re-offers keep the RTP header extension ids already negotiated (`keep_extmap_ids`, in
  engine/sdp.py with the other readers of SDP text): aiortc renumbers them from its own table,
  which browsers refuse when they made the first offer.
- Three corrections to aiortc, each in a module of its own that refuses any other aiortc
  version: DTLS with RSA peers in both roles (`_aiortc_dtls`), receivers that keep decoding
  after an RTCP BYE (`_aiortc_rtcp`), and TURN failures and the selected candidate pair, which
  aiortc does not report (`_aiortc_ice`).
- A TURN server that gave no relay address while we gathered (wrong credentials, refused,
  unreachable) is in `turn_failures` once our offer or answer is made, and goes to
  `on_turn_failure` then, once per failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from softphone.engine._aiortc_dtls import (
    accept_rsa_peers,
    certificate_of,
    dtls_failure,
    dtls_state,
    record_dtls_failures,
    share_certificate,
)
from softphone.engine._aiortc_ice import (
    IceRestart,
    SelectedPair,
    TurnFailure,
    has_local_candidates,
    record_turn_failures,
    selected_pair,
    turn_failures,
)
from softphone.engine._aiortc_rtcp import survive_bye
from softphone.engine.sdp import holds, ice_credentials, keep_extmap_ids
from softphone.media._aiortc_audio import use_fec_encoder
from softphone.media.opus import with_inband_fec
from softphone.protocol.models import IceServer

log = logging.getLogger("softphone.engine.peer")


def _offer_loopback_when_alone() -> None:
    """aioice never offers 127.0.0.1. On a machine whose only interface is loopback (a
    container, a laptop offline) no candidate at all remained, and even a call to the embedded
    echo contact could not connect. Offer 127.0.0.1 then, and only then."""
    original = aioice.ice.get_host_addresses
    if getattr(original, "softphone_loopback_fallback", False):
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        found = original(use_ipv4, use_ipv6)
        return found if found or not use_ipv4 else ["127.0.0.1"]

    host_addresses.softphone_loopback_fallback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = host_addresses


_offer_loopback_when_alone()
accept_rsa_peers()
record_dtls_failures()
survive_bye()
record_turn_failures()

StateCallback = Callable[[str, str], None]  # previous, new
TurnFailureCallback = Callable[[TurnFailure], None]


# Our summary's keys per RTCStats type, from aiortc's attribute names.
_STAT_FIELDS: dict[str, dict[str, str]] = {
    "outbound-rtp": {"bytes_sent": "bytesSent", "packets_sent": "packetsSent"},
    "inbound-rtp": {
        "bytes_received": "bytesReceived",
        "packets_received": "packetsReceived",
        "packets_lost": "packetsLost",
        "jitter": "jitter",
    },
    "remote-inbound-rtp": {
        "round_trip_time": "roundTripTime",
        "remote_packets_lost": "packetsLost",
        "remote_jitter": "jitter",
    },
    # From the far end's sender reports: aiortc's inbound-rtp has no byte count.
    "remote-outbound-rtp": {"remote_bytes_sent": "bytesSent"},
}
# aiortc reports jitter in RTP timestamp units; the WebRTC statistics (and we) use seconds.
_JITTER_FIELDS = ("jitter", "remote_jitter")


class Peer:
    """One RTCPeerConnection and the tracks we send on it."""

    def __init__(
        self,
        ice_servers: Sequence[IceServer],
        *,
        on_connection_state: StateCallback | None = None,
        on_turn_failure: TurnFailureCallback | None = None,
        on_peer_state: StateCallback | None = None,
        certificate: Any = None,
    ) -> None:
        config = RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                for s in ice_servers
            ]
        )
        self.pc = RTCPeerConnection(configuration=config)
        if certificate is not None:
            share_certificate(self.pc, certificate)
        self.certificate = certificate_of(self.pc)
        # RFC 8842: ours for this DTLS association (kept by an ICE restart, new per connection)
        self.tls_id = secrets.token_hex(16)
        self._restart: IceRestart | None = None
        self._connection_state = "new"
        self._on_peer_state = on_peer_state
        self._ice_state = "new"
        self._on_state = on_connection_state
        self._hold = False
        self._closed = False
        self._on_turn_failure = on_turn_failure
        self._turn_reported: list[TurnFailure] = []
        self._fec: set[RTCRtpTransceiver] = set()  # audio transceivers whose encoder has FEC
        self.pc.on("iceconnectionstatechange", self._ice_changed)
        self.pc.on("connectionstatechange", self._connection_changed)

    # -- state -------------------------------------------------------------------------------

    @property
    def ice_state(self) -> str:
        return self._ice_state

    @property
    def closed(self) -> bool:
        return self._closed

    def _ice_changed(self) -> None:
        previous, self._ice_state = self._ice_state, self.pc.iceConnectionState
        if previous != self._ice_state and self._on_state is not None:
            self._on_state(previous, self._ice_state)

    def _connection_changed(self) -> None:
        previous, self._connection_state = self._connection_state, self.pc.connectionState
        if previous != self._connection_state and self._on_peer_state is not None:
            self._on_peer_state(previous, self._connection_state)

    @property
    def connection_state(self) -> str:
        """aiortc's connectionState: ICE and DTLS together (`failed` when either failed)."""
        return self._connection_state

    @property
    def dtls_state(self) -> str:
        return dtls_state(self.pc)

    @property
    def dtls_failure(self) -> str | None:
        """Why the DTLS handshake failed, readable; None when it did not."""
        return dtls_failure(self.pc)

    @property
    def has_local_candidates(self) -> bool:
        return has_local_candidates(self.pc)

    @property
    def turn_failures(self) -> list[TurnFailure]:
        """TURN servers that gave us no relay address while this connection gathered (known
        once our offer or answer is made): a wrong secret shows as a 401 with the server."""
        return turn_failures(self.pc)

    def selected_pair(self) -> SelectedPair | None:
        """The candidate pair ICE selected (`relayed` when it goes through TURN), or None."""
        return selected_pair(self.pc)

    def _report_turn_failures(self) -> None:
        for failure in self.turn_failures:
            if failure not in self._turn_reported:
                self._turn_reported.append(failure)
                log.warning("%s", failure.describe())
                if self._on_turn_failure is not None:
                    self._on_turn_failure(failure)

    @property
    def local_sdp(self) -> str | None:
        desc = self.pc.localDescription
        return desc.sdp if desc is not None else None

    @property
    def remote_sdp(self) -> str | None:
        desc = self.pc.remoteDescription
        return desc.sdp if desc is not None else None

    @property
    def local_hold(self) -> bool:
        """We hold: what we put in our offers and answers (sendonly/inactive). Not read back
        from our answer, which also reflects the remote's offer (an `inactive` re-offer from a
        holding peer makes our answer inactive without us holding)."""
        return self._hold

    @property
    def remote_hold(self) -> bool:
        return holds(self.remote_sdp)

    def transceivers(self) -> list[RTCRtpTransceiver]:
        return list(self.pc.getTransceivers())

    def local_tracks(self) -> dict[str, str]:
        """track id -> kind of what we send (or would send if not held)."""
        found = {}
        for t in self.transceivers():
            if t.sender.track is not None and t.mid is not None and not t.stopped:
                found[f"local:{t.kind}:{t.mid}"] = t.kind
        return found

    def receiver_of(self, track: MediaStreamTrack) -> RTCRtpReceiver | None:
        """The RTP receiver a remote track comes from."""
        return next((t.receiver for t in self.transceivers() if t.receiver.track is track), None)

    def remote_tracks(self) -> dict[str, tuple[str, MediaStreamTrack]]:
        """track id -> (kind, track) the remote sends us per the negotiated directions."""
        found: dict[str, tuple[str, MediaStreamTrack]] = {}
        for t in self.transceivers():
            track = t.receiver.track
            direction = t.currentDirection or ""
            if track is not None and t.mid is not None and "recv" in direction:
                found[f"remote:{t.kind}:{t.mid}"] = (t.kind, track)
        return found

    # -- tracks and directions ---------------------------------------------------------------

    def _direction(self, has_track: bool) -> str:
        if self._hold:
            return "sendonly" if has_track else "inactive"
        return "sendrecv" if has_track else "recvonly"

    def add_track(self, kind: str, track: MediaStreamTrack | None) -> RTCRtpTransceiver:
        """Add a transceiver (offerer side) sending `track` (None: receive only)."""
        transceiver = self.pc.addTransceiver(kind, direction=self._direction(track is not None))
        if track is not None:
            transceiver.sender.replaceTrack(track)
        self._use_fec(transceiver)
        return transceiver

    def _use_fec(self, transceiver: RTCRtpTransceiver) -> None:
        """Our Opus carries in-band FEC, so the far end can rebuild a lost packet from the
        next one (before the sender's first frame: it makes its encoder then)."""
        if transceiver.kind == "audio" and transceiver not in self._fec:
            self._fec.add(transceiver)
            use_fec_encoder(transceiver.sender)

    def detach_tracks(self) -> None:
        """Stop sending our tracks here (directions unchanged) so aiortc can never stop them:
        its sender stops its track when it exits, e.g. when the far end closes this DTLS
        association, and our tracks outlive this connection (restart_media)."""
        for transceiver in self.pc.getTransceivers():
            with contextlib.suppress(Exception):
                transceiver.sender.replaceTrack(None)

    def reattach_tracks(self, tracks: Mapping[str, MediaStreamTrack | None]) -> None:
        """Undo `detach_tracks` (a media restart that failed keeps this connection)."""
        for transceiver in self.pc.getTransceivers():
            track = tracks.get(transceiver.kind)
            if track is not None and transceiver.sender.track is None:
                transceiver.sender.replaceTrack(track)

    def set_track(self, kind: str, track: MediaStreamTrack | None) -> bool:
        """Send `track` (None: stop sending) on the first transceiver of `kind`; False if the
        call has no such transceiver."""
        for t in self.transceivers():
            if t.kind == kind and not t.stopped:
                t.sender.replaceTrack(track)
                t.direction = self._direction(track is not None)
                return True
        return False

    def has_kind(self, kind: str) -> bool:
        return any(t.kind == kind and not t.stopped for t in self.transceivers())

    def set_hold(self, hold: bool) -> None:
        """Set the directions of our next offer or answer: held → sendonly/inactive."""
        self._hold = hold
        for t in self.transceivers():
            if not t.stopped:
                t.direction = self._direction(t.sender.track is not None)

    # -- negotiation -------------------------------------------------------------------------

    async def create_offer(self, keep_ids_of: Sequence[str | None] = ()) -> RTCSessionDescription:
        """An offer (with candidates) not yet applied: apply it with `apply_local` once the
        server accepted it, so a refused re-offer (glare) leaves nothing to roll back.

        A re-offer keeps the header extension ids already negotiated (`keep_extmap_ids`); a
        first offer keeps those of `keep_ids_of` (the descriptions of a peer connection this
        one replaces)."""
        # createOffer resets each transceiver's header extensions to aiortc's own ids; keep the
        # negotiated ones (an offer refused for glare is never applied, and no answer resets
        # them).
        saved = [(t, list(t._headerExtensions)) for t in self.transceivers()]
        offer = await self.pc.createOffer()
        if self.pc.localDescription is None:
            # First offer: aiortc gathers candidates in setLocalDescription.
            await self.pc.setLocalDescription(offer)
            self._report_turn_failures()
            local = self.pc.localDescription
            assert local is not None
            sdp = keep_extmap_ids(local.sdp, keep_ids_of) if any(keep_ids_of) else local.sdp
            return RTCSessionDescription(self._ours(sdp), local.type)
        for t, extensions in saved:
            if extensions:
                t._headerExtensions = extensions
        sdp = keep_extmap_ids(offer.sdp, [self.remote_sdp, self.local_sdp])
        return RTCSessionDescription(sdp=self._ours(sdp), type=offer.type)

    def _ours(self, sdp: str) -> str:
        """What we send of a description: in-band FEC asked for, our tls-id."""
        lines = []
        for line in with_inband_fec(sdp).split("\r\n"):
            lines.append(line)
            if line.startswith("a=fingerprint:"):
                lines.append(f"a=tls-id:{self.tls_id}")
        return "\r\n".join(lines)

    # -- ICE restart (keeps the DTLS association) --------------------------------------------

    @property
    def can_restart_ice(self) -> bool:
        """An ICE restart in place needs a DTLS association that still works."""
        return self.dtls_state == "connected" and not self._closed

    async def prepare_ice_restart(self) -> None:
        """New ICE credentials and candidates for our next offer or answer (DTLS kept)."""
        restart = IceRestart(self.pc)
        await restart.prepare()
        self._restart = restart
        self._report_turn_failures()

    def start_ice_restart(self) -> asyncio.Task[bool] | None:
        """The far end's new ICE credentials are applied: run the checks on the new path."""
        restart, self._restart = self._restart, None
        credentials = ice_credentials(self.remote_sdp)
        if restart is None or credentials is None:
            return None
        return restart.start(*credentials)

    async def abandon_ice_restart(self) -> None:
        restart, self._restart = self._restart, None
        if restart is not None:
            await restart.abandon()

    async def apply_local(self, offer: RTCSessionDescription) -> None:
        if self.pc.signalingState == "have-local-offer":
            return  # the first offer was applied by create_offer
        await self.pc.setLocalDescription(offer)

    async def answer(
        self,
        offer_sdp: str,
        tracks: Mapping[str, MediaStreamTrack | None],
        *,
        echo: Callable[[MediaStreamTrack], MediaStreamTrack] | None = None,
    ) -> str:
        """Apply a remote offer and return our answer; `tracks` by kind are attached to
        transceivers that have no track yet (None: receive only). With `echo`, a transceiver
        without a track sends `echo(remote track)` instead (the echo bot)."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for t in self.transceivers():
            if t.stopped or t.sender.track is not None:
                pass
            elif tracks.get(t.kind) is not None:
                t.sender.replaceTrack(tracks[t.kind])
            elif echo is not None and t.receiver.track is not None:
                t.sender.replaceTrack(echo(t.receiver.track))
            if t.stopped:
                continue
            self._use_fec(t)
            t.direction = self._direction(t.sender.track is not None)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        self._report_turn_failures()
        local = self.pc.localDescription
        assert local is not None
        # Asks the far end for in-band FEC (our receive path uses it to rebuild lost packets).
        return self._ours(local.sdp)

    async def add_candidate(
        self, candidate: str | None, mid: str | None = None, index: int | None = None
    ) -> None:
        """A trickled remote candidate (`candidate:...` as in SDP; None: end of candidates)."""
        if candidate is None:
            await self.pc.addIceCandidate(None)
            return
        text = candidate[len("a=") :] if candidate.startswith("a=") else candidate
        text = text[len("candidate:") :] if text.startswith("candidate:") else text
        ice = candidate_from_sdp(text)
        ice.sdpMid, ice.sdpMLineIndex = mid, index
        if mid is None and index is None:
            ice.sdpMLineIndex = 0
        await self.pc.addIceCandidate(ice)

    async def apply_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    # -- stats and closing -------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """A plain summary: per kind, codec, bytes/packets sent and received, packets lost,
        jitter, round trip time; plus the ICE connection state."""
        report = await self.pc.getStats()
        codecs: dict[str, str] = {}
        clock_rates: dict[str, int] = {}
        if self.remote_sdp:
            for m in SessionDescription.parse(self.remote_sdp).media:
                if m.kind in ("audio", "video") and m.rtp.codecs and m.kind not in codecs:
                    codecs[m.kind] = m.rtp.codecs[0].mimeType
                    clock_rates[m.kind] = m.rtp.codecs[0].clockRate
        summary: dict[str, Any] = {"ice_state": self._ice_state}
        for stat in report.values():
            kind = getattr(stat, "kind", None)
            if kind not in ("audio", "video"):
                continue
            entry = summary.setdefault(kind, {"codec": codecs.get(kind)})
            fields = _STAT_FIELDS.get(stat.type, {})
            for ours, theirs in fields.items():
                value = getattr(stat, theirs, None)
                if value is not None and ours in _JITTER_FIELDS:
                    value = value / clock_rates.get(kind, 90000)
                if value is not None:
                    entry[ours] = value
        return summary

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.detach_tracks()  # the engine stops its tracks itself when the call ends
        try:
            await self.pc.close()
        except Exception:  # closing must never raise into a teardown path
            log.exception("closing the peer connection failed")
        previous, self._ice_state = self._ice_state, "closed"
        if previous != "closed" and self._on_state is not None:
            self._on_state(previous, "closed")


__all__ = ["Peer", "SelectedPair", "TurnFailure"]
