"""What the engine reads from SDP text, and the one thing it rewrites in it.

Pure functions of a description (no peer connection): directions and hold, ICE credentials
and candidates, DTLS fingerprints and RFC 8842 tls-ids (a new association wanted), the media
kinds offered, and `keep_extmap_ids` for our re-offers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aiortc.sdp import SessionDescription


def sdp_directions(sdp: str) -> list[tuple[str, str]]:
    """(kind, direction) of each audio/video m-line of an SDP."""
    parsed = SessionDescription.parse(sdp)
    kinds = ("audio", "video")
    return [(m.kind, m.direction or "sendrecv") for m in parsed.media if m.kind in kinds]


def holds(sdp: str | None) -> bool:
    """Whether the side that wrote `sdp` holds: its first m-line does not receive."""
    if not sdp:
        return False
    dirs = sdp_directions(sdp)
    if not dirs:
        return False
    audio = [d for k, d in dirs if k == "audio"]
    direction = audio[0] if audio else dirs[0][1]
    return "recv" not in direction


def ice_ufrags(sdp: str | None) -> set[str]:
    if not sdp:
        return set()
    parsed = SessionDescription.parse(sdp)
    return {m.ice.usernameFragment for m in parsed.media if m.ice and m.ice.usernameFragment}


def ice_credentials(sdp: str | None) -> tuple[str, str] | None:
    """The (ufrag, pwd) of the first m-line of `sdp` that has them."""
    if not sdp:
        return None
    for m in SessionDescription.parse(sdp).media:
        if m.ice and m.ice.usernameFragment and m.ice.password:
            return m.ice.usernameFragment, m.ice.password
    return None


def fingerprints(sdp: str | None) -> set[str]:
    if not sdp:
        return set()
    return {
        line.split(":", 1)[1].strip().upper()
        for line in sdp.splitlines()
        if line.startswith("a=fingerprint:")
    }


_TLS_ID = re.compile(r"^a=tls-id:(\S+)\s*$", re.M)


def tls_ids(sdp: str | None) -> set[str]:
    """RFC 8842 `a=tls-id` values: a new one means a new DTLS association."""
    return set(_TLS_ID.findall(sdp or ""))


def new_dtls_wanted(old_remote: str | None, new_remote: str) -> bool:
    """Whether the far end's new description asks for a new DTLS association: another
    fingerprint, or another tls-id where both have one (RFC 8842)."""
    if fingerprints(new_remote) != fingerprints(old_remote):
        return True
    old_ids, new_ids = tls_ids(old_remote), tls_ids(new_remote)
    return bool(old_ids and new_ids and old_ids != new_ids)


def candidate_count(sdp: str | None) -> int:
    return sum(1 for line in (sdp or "").splitlines() if line.startswith("a=candidate:"))


def has_end_of_candidates(sdp: str | None) -> bool:
    return "a=end-of-candidates" in (sdp or "")


def media_kinds(sdp: str) -> set[str]:
    return {kind for kind, direction in sdp_directions(sdp) if direction != "inactive"}


_EXTMAP = re.compile(r"^a=extmap:(\d+)(/\w+)? (\S+)(.*)$")
_MAX_EXTMAP_ID = 255  # two-byte header; 15 is reserved in the one-byte form


def keep_extmap_ids(offer: str, negotiated: Sequence[str | None]) -> str:
    """`offer` with each `a=extmap:` id set to the id already negotiated for its URI.

    aiortc numbers header extensions from its own table in every offer, so after a remote
    (e.g. Chrome) first offer with other ids, our re-offer would remap them, which browsers
    refuse ("extension ID reassignment not supported"). The ids come from the negotiated
    descriptions in order (the remote's first); an extension not negotiated yet gets an id
    no other extension uses.
    """
    known: dict[str, int] = {}
    for sdp in negotiated:
        for line in (sdp or "").splitlines():
            m = _EXTMAP.match(line)
            if m:
                known.setdefault(m.group(3), int(m.group(1)))
    if not known:
        return offer
    used = set(known.values())
    fresh: dict[str, int | None] = {}

    def free_id() -> int | None:
        for candidate in range(1, _MAX_EXTMAP_ID + 1):
            if candidate != 15 and candidate not in used:
                used.add(candidate)
                return candidate
        return None

    lines = []
    for line in offer.split("\r\n"):
        m = _EXTMAP.match(line)
        if m:
            uri = m.group(3)
            ext_id = known.get(uri)
            if ext_id is None:
                if uri not in fresh:
                    fresh[uri] = free_id()
                ext_id = fresh[uri]
            if ext_id is not None:
                line = f"a=extmap:{ext_id}{m.group(2) or ''} {uri}{m.group(4)}"
        lines.append(line)
    return "\r\n".join(lines)


__all__ = [
    "candidate_count",
    "fingerprints",
    "has_end_of_candidates",
    "holds",
    "ice_credentials",
    "ice_ufrags",
    "keep_extmap_ids",
    "media_kinds",
    "new_dtls_wanted",
    "sdp_directions",
    "tls_ids",
]
