"""Re-offers keep the RTP header extension ids negotiated earlier (browsers refuse a remap)."""

from __future__ import annotations

import re

from aiortc import RTCPeerConnection, RTCSessionDescription

from softphone.engine.peer import Peer
from softphone.engine.sdp import keep_extmap_ids
from softphone.media.audio import ToneSource

# What Chrome puts in an audio offer (its numbering differs from aiortc's 1 = mid, 2 = level).
CHROME_IDS = {
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01": 3,
    "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
}
EXTMAP = re.compile(r"^a=extmap:(\d+)(?:/\w+)? (\S+)", re.MULTILINE)


def extmaps(sdp: str) -> list[tuple[str, int]]:
    return [(uri, int(ext_id)) for ext_id, uri in EXTMAP.findall(sdp)]


def chrome_like(sdp: str) -> str:
    """An aiortc offer with its extmap lines replaced by Chrome's."""
    lines = [line for line in sdp.split("\r\n") if not line.startswith("a=extmap:")]
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("a=mid:"):
            out.extend(f"a=extmap:{i} {uri}" for uri, i in CHROME_IDS.items())
    return "\r\n".join(out)


def test_rewrite_maps_known_uris_and_gives_new_ones_free_ids() -> None:
    current = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    )
    offer = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
        "a=extmap:2/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
        "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
        "a=sendrecv\r\n"
    )

    out = keep_extmap_ids(offer, [current, None])

    assert "a=extmap:1/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on\r\n" in out
    assert extmaps(out) == [
        ("urn:ietf:params:rtp-hdrext:sdes:mid", 4),
        ("urn:ietf:params:rtp-hdrext:ssrc-audio-level", 1),
        ("urn:ietf:params:rtp-hdrext:sdes:mid", 4),  # the same id in every bundled section
        ("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", 2),  # new: first free
    ]
    assert out.count("\r\n") == offer.count("\r\n")
    assert keep_extmap_ids(offer, [None]) == offer  # nothing negotiated: untouched


async def test_engine_reoffer_after_a_chrome_offer_keeps_chromes_ids() -> None:
    """Chrome offers first with its ids; the engine's hold re-offer must reuse them."""
    browser = RTCPeerConnection()
    engine = Peer([])
    try:
        browser.addTransceiver("audio", direction="sendrecv")
        await browser.setLocalDescription(await browser.createOffer())
        assert browser.localDescription is not None
        offer = chrome_like(browser.localDescription.sdp)
        answer = await engine.answer(offer, {"audio": ToneSource(1000.0)})
        assert dict(extmaps(answer)) == {
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
            "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
        }

        raw = await engine.pc.createOffer()  # aiortc by itself renumbers: the bug
        assert dict(extmaps(raw.sdp))["urn:ietf:params:rtp-hdrext:sdes:mid"] == 1

        engine.set_hold(True)
        reoffer = await engine.create_offer()

        assert dict(extmaps(reoffer.sdp)) == {
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
            "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
        }
        assert "a=sendonly" in reoffer.sdp
        # The far end answers with the same ids; the engine keeps them for its streams.
        await browser.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await browser.setRemoteDescription(reoffer)
        await browser.setLocalDescription(await browser.createAnswer())
        assert browser.localDescription is not None
        await engine.apply_local(reoffer)
        await engine.apply_answer(browser.localDescription.sdp)
        assert engine.local_hold
        kept = engine.transceivers()[0]._headerExtensions
        assert {(e.uri, e.id) for e in kept} == {
            ("urn:ietf:params:rtp-hdrext:ssrc-audio-level", 1),
            ("urn:ietf:params:rtp-hdrext:sdes:mid", 4),
        }
    finally:
        await engine.close()
        await browser.close()


async def test_replacement_peer_first_offer_keeps_the_old_ids() -> None:
    """restart_media offers from a new peer connection: it keeps the call's ids too."""
    negotiated = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" + "".join(
        f"a=extmap:{i} {uri}\r\n" for uri, i in CHROME_IDS.items()
    )
    fresh = Peer([])
    try:
        fresh.add_track("audio", ToneSource(600.0))
        offer = await fresh.create_offer([negotiated, None])
        assert dict(extmaps(offer.sdp)) == {
            "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
        }
        assert "a=candidate:" in offer.sdp  # still the gathered first offer
    finally:
        await fresh.close()
