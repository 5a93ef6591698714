"""The page against our engine (aiortc): calls both ways, hold and unhold by re-offer both ways."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from softphone.engine import Engine
from softphone.engine.states import CallState
from softphone.server.runner import RunningServer
from tests.server.harness import PASSWORD
from tests.web.test_pages import assert_no_secrets, login, media_flows, row, wait_state


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice never offers 127.0.0.1 by itself; these tests stay on loopback."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
async def alice_engine(web_server: RunningServer) -> AsyncIterator[Engine]:
    engine = Engine()
    await engine.start(web_server.url, "alice", lambda: PASSWORD)
    yield engine
    await engine.stop()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_engine_and_page_call_and_hold_both_ways(
    browser: Any, web_server: RunningServer, alice_engine: Engine
) -> None:
    engine = alice_engine
    bob, _ = await login(browser, web_server, "bob")

    # The engine calls the page; the engine holds and unholds, then the page does.
    out = await engine.make("bob")
    await row(bob).locator("button.answer").click()
    await until(lambda: engine.get(out).state == CallState.CONNECTED)
    await wait_state(bob, "Connected")
    await engine.hold(out)
    await wait_state(bob, "On Hold")
    await engine.unhold(out)
    await wait_state(bob, "Connected")
    await row(bob).locator("button.hold").click()
    await until(lambda: engine.get(out).state == CallState.ON_HOLD)
    await row(bob).locator("button.unhold").click()
    await until(lambda: engine.get(out).state == CallState.CONNECTED)
    await media_flows(bob, str(await row(bob).get_attribute("data-call-id")), video=False)
    await engine.end(out)
    await wait_state(bob, "Ended")

    # The page calls the engine: the engine's re-offers (it answered first) reach the page too.
    await bob.fill("#callee", "alice")
    await bob.click("#make-call")
    await until(lambda: any(c.direction == "incoming" for c in engine.get_all()))
    incoming = next(c for c in engine.get_all() if c.direction == "incoming")
    await engine.answer(incoming.id)
    await wait_state(bob, "Connected", 2)
    await engine.hold(incoming.id)
    await wait_state(bob, "On Hold", 2)
    await engine.unhold(incoming.id)
    await wait_state(bob, "Connected", 2)
    await media_flows(bob, str(await row(bob, 2).get_attribute("data-call-id")), video=False)
    await row(bob, 2).locator("button.end").click()
    await until(lambda: engine.get(incoming.id).state == CallState.ENDED)
    await assert_no_secrets(bob)


async def test_page_video_call_to_engine_carries_chromes_media(
    browser: Any, web_server: RunningServer, alice_engine: Engine
) -> None:
    """Chrome's fake devices reach our engine: the ~400 Hz beeps and the video test card."""
    import numpy as np

    from softphone.media.analysis import dominant_frequency, rms

    engine = alice_engine
    pcm: list[np.ndarray[Any, Any]] = []
    frames: list[Any] = []
    engine.add_pcm_listener(lambda _call, block: pcm.append(block.copy()))
    engine.add_video_listener(lambda _call, frame: frames.append(frame))
    bob, _ = await login(browser, web_server, "bob")
    await bob.set_checked("#make-with-video", True)
    await bob.fill("#callee", "alice")
    await bob.click("#make-call")
    await until(lambda: any(c.direction == "incoming" for c in engine.get_all()))
    incoming = next(c for c in engine.get_all() if c.direction == "incoming")
    assert incoming.media_offered.video
    await engine.answer(incoming.id, video=True)
    await wait_state(bob, "Connected")
    pcm.clear()
    frames.clear()
    await asyncio.sleep(3.0)
    audio = np.concatenate(pcm)
    blocks = audio[: len(audio) // 960 * 960].reshape(-1, 960)
    loud = np.array([rms(b) > 0.05 for b in blocks])
    onsets = int(np.count_nonzero(loud[1:] & ~loud[:-1]))
    assert 4 <= onsets <= 8, onsets  # one beep every 500 ms for 3 s
    beep = np.concatenate([b for b, hot in zip(blocks, loud, strict=True) if hot])
    assert 300 <= dominant_frequency(beep) <= 1000
    assert len(frames) >= 20, len(frames)  # Chrome sends its test card at about 20 fps
    assert (frames[-1].width, frames[-1].height) == (640, 480)
    await media_flows(bob, str(await row(bob).get_attribute("data-call-id")), video=True)
    await engine.end(incoming.id)
    await wait_state(bob, "Ended")


async def test_page_rejects_an_engine_call(
    browser: Any, web_server: RunningServer, alice_engine: Engine
) -> None:
    from softphone.engine.events import CallStateChange

    engine = alice_engine
    states: list[CallState] = []
    engine.subscribe(lambda e: states.append(e.state) if isinstance(e, CallStateChange) else None)
    bob, _ = await login(browser, web_server, "bob")
    out = await engine.make("bob")
    await row(bob).locator("button.reject").click()
    await until(lambda: engine.get(out).state == CallState.ENDED)
    assert states == [CallState.INITIATED, CallState.RINGING, CallState.ENDED]
    assert engine.get(out).end_reason == "rejected"
    await wait_state(bob, "Ended")


async def test_engine_restarts_media_toward_the_page(
    browser: Any, web_server: RunningServer, alice_engine: Engine
) -> None:
    """restart_media (a new peer connection under the same call: new ICE credentials and a new
    DTLS handshake, by re-offer) toward Chrome: media flows both ways again afterwards."""
    engine = alice_engine
    blocks: list[float] = []
    engine.add_pcm_listener(lambda _call, block: blocks.append(time.monotonic()))
    bob, _ = await login(browser, web_server, "bob")
    out = await engine.make("bob")
    await row(bob).locator("button.answer").click()
    await until(lambda: engine.get(out).state == CallState.CONNECTED)
    await wait_state(bob, "Connected")
    cid = str(await row(bob).get_attribute("data-call-id"))
    await media_flows(bob, cid, video=False)
    await engine.restart_media(out)
    restarted = time.monotonic()
    await until(lambda: sum(1 for t in blocks if t > restarted + 0.5) > 50, timeout=10)
    await media_flows(bob, cid, video=False)  # the page hears the engine again
    sent = (await engine.get_stats(out))["audio"]["packets_sent"]
    await asyncio.sleep(0.5)
    assert (await engine.get_stats(out))["audio"]["packets_sent"] > sent
    assert engine.get(out).state == CallState.CONNECTED
    await engine.end(out)
    await wait_state(bob, "Ended")


def opus_fmtp(sdp: str) -> list[str]:
    """The fmtp lines of the Opus payload types in `sdp`."""
    lines = sdp.splitlines()
    opus = {
        line.split()[0].removeprefix("a=rtpmap:")
        for line in lines
        if line.startswith("a=rtpmap:") and "opus/48000" in line.lower()
    }
    return [line for line in lines if line.startswith("a=fmtp:") and line[7:].split()[0] in opus]


async def test_opus_fec_negotiated_with_chromium_and_audio_both_ways(
    browser: Any, web_server: RunningServer, alice_engine: Engine
) -> None:
    """Our offer asks for Opus in-band FEC and Chromium's answer agrees (useinbandfec=1 in
    both descriptions); audio still flows both ways: the page receives ours, and Chromium's
    fake microphone (a beep a second) is decoded and played by our receive path."""
    engine = alice_engine
    bob, _ = await login(browser, web_server, "bob")
    loud: list[int] = []
    engine.add_pcm_listener(lambda _cid, pcm: loud.append(int(abs(pcm).max())))
    out = await engine.make("bob")
    await row(bob).locator("button.answer").click()
    await until(lambda: engine.get(out).state == CallState.CONNECTED)
    cid = str(await row(bob).get_attribute("data-call-id"))
    # Our offer as Chromium got it, and Chromium's answer as we got it.
    offer = await bob.evaluate(
        "id => window.softphone.calls.calls.get(id).pc.remoteDescription.sdp", cid
    )
    peer = engine.session(out).peer
    assert peer is not None and peer.remote_sdp is not None
    for sdp in (offer, peer.remote_sdp):
        assert opus_fmtp(sdp) and all("useinbandfec=1" in f for f in opus_fmtp(sdp)), sdp
    await media_flows(bob, cid, video=False)
    await until(lambda: len(loud) >= 150 and max(loud) > 1000)  # 3 s played, a beep heard
    stats = await engine.get_stats(out)
    jitter_buffer = stats["audio"]["jitter_buffer"]
    assert jitter_buffer["played"] > 0, stats
    await engine.end(out)
    await wait_state(bob, "Ended")
