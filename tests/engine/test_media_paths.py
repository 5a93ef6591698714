"""A WAV file end to end, a notification socket lost mid-call, token-mode anonymous calls."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softphone.client import Backoff
from softphone.engine import CallState
from softphone.engine.call_media import AUDIO_GAP
from softphone.engine.events import (
    CallDtmfReceived,
    CallError,
    CallReceive,
    CallStateChange,
    MediaSourceMuted,
    MediaSourceUnmuted,
)
from softphone.media.analysis import best_correlation, dominant_frequency, rms
from softphone.media.constants import SAMPLE_RATE
from softphone.protocol.models import TokenCredentials
from softphone.server.passwords import token_hash
from softphone.server.runner import RunningServer
from softphone.server.services import SERVICES
from softphone.server.tokens import generate_key, issue_token_set, parse_key
from tests.engine.conftest import Parties, ServerFactory
from tests.engine.test_calls import connect
from tests.server.harness import PASSWORD

S = CallState


def speech_like(seconds: float = 2.5, rate: int = SAMPLE_RATE) -> np.ndarray[Any, Any]:
    """A chirp, a voiced vowel-like harmonic stack with a syllable envelope, then two tones."""
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    chirp = t < 0.8
    out[chirp] = 0.4 * np.sin(2 * np.pi * (200 * t[chirp] + (2800 / 1.6) * t[chirp] ** 2))
    voiced = (t >= 0.8) & (t < 1.7)
    f0 = 140 + 30 * np.sin(2 * np.pi * 1.5 * t[voiced])  # a gliding pitch
    phase = 2 * np.pi * np.cumsum(f0) / rate
    stack = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * 4 * (t[voiced] - 0.8))  # four "syllables"
    out[voiced] = 0.25 * envelope * stack
    tone_a = (t >= 1.8) & (t < 2.1)
    out[tone_a] = 0.35 * np.sin(2 * np.pi * 523 * t[tone_a])
    tone_b = (t >= 2.1) & (t < 2.4)
    out[tone_b] = 0.35 * np.sin(2 * np.pi * 1477 * t[tone_b])
    return (out * 32767).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray[Any, Any], rate: int = SAMPLE_RATE) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype("<i2").tobytes())


def read_wav(path: Path) -> np.ndarray[Any, Any]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)


def piecewise_correlation(reference: np.ndarray[Any, Any], heard: np.ndarray[Any, Any]) -> float:
    """Median best correlation of 250 ms pieces of `heard` with `reference`: the adaptive
    jitter buffer may drop or insert a frame to steer its delay (as NetEQ does), which shifts
    the alignment of everything after it, so each piece is aligned on its own."""
    piece = SAMPLE_RATE // 4
    scores = [
        best_correlation(reference, heard[i : i + piece])[0]
        for i in range(0, heard.size - piece + 1, piece)
    ]
    return float(np.median(scores)) if scores else 0.0


async def test_wav_file_arrives_with_the_same_content(
    server: RunningServer, parties: Parties, tmp_path: Path
) -> None:
    sent = speech_like()
    source, recording = tmp_path / "speech.wav", tmp_path / "heard.wav"
    write_wav(source, sent)
    alice = await parties.online(server, "alice", audio_in=str(source))
    bob = await parties.online(server, "bob", audio_in="silence", audio_out=str(recording))
    a_id, b_id = await connect(alice, bob)
    heard_live = await bob.ears.listen(2.5, settle=0.5)  # the file loops: a whole period
    await alice.engine.end(a_id)
    await bob.events.state(b_id, S.ENDED)

    recorded = read_wav(recording)
    assert recorded.size > 2.5 * SAMPLE_RATE, recorded.size
    looped = np.tile(sent, 4)  # any 2.5 s window of the far end is inside the looped file
    window = recorded[-int(2.5 * SAMPLE_RATE) :]
    coefficient = piecewise_correlation(looped, window)
    live = piecewise_correlation(looped, heard_live)
    other = piecewise_correlation(looped, sent[::-1].copy())  # other content scores low
    print(f"wav correlation {coefficient:.3f} (listener {live:.3f}, other {other:.3f})")
    assert coefficient > 0.8, coefficient
    assert live > 0.8, live
    assert other < 0.5, other
    # The level of speech, not of the pauses: a jitter buffer catching up after a stall (a
    # loaded machine) drops quiet frames, which raises the mean level of what is left.
    assert loud_level(window) == pytest.approx(loud_level(sent), rel=0.3)


def loud_level(pcm: Any) -> float:
    """The 90th percentile of the 20 ms blocks' RMS."""
    block = SAMPLE_RATE // 50
    blocks = pcm[: pcm.size - pcm.size % block].reshape(-1, block)
    return float(np.percentile([rms(b) for b in blocks], 90))


async def test_notification_socket_lost_mid_call(server: RunningServer, parties: Parties) -> None:
    """The callee's websocket drops: media carries on, and what was signaled while the socket
    was down (DTMF) arrives after the resume; hold/unhold afterwards still works."""
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = parties.make(audio_in="tone:600")
    slow = Backoff(base=1.0, cap=1.0, jitter=0.0)  # down for 1 s (the resume window is 2 s)
    await bob.engine.start(server.url, "bob", lambda: PASSWORD, backoff=slow, stop_timeout=1.0)
    a_id, b_id = await connect(alice, bob)
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)

    client = bob.engine.client
    assert client is not None and client.rest.token is not None
    sub = server.app[SERVICES].hub.for_session(token_hash(client.rest.token))
    assert sub is not None and sub.connection is not None
    sub.connection.close_after_flush(1001)  # the server goes away (for this socket)
    dropped = time.monotonic()
    while sub.connection is not None:
        assert time.monotonic() - dropped < 2, "the socket did not drop"
        await asyncio.sleep(0.01)

    await alice.engine.send_dtmf(a_id, "7", inband=False)  # published while bob is away
    sent_at = time.monotonic()
    assert sub.connection is None, "reconnected too early for the test to mean anything"
    during = await bob.ears.listen(0.3, settle=0.0)
    during_back = await alice.ears.listen(0.2, settle=0.0)
    during_end = time.monotonic()
    assert not [e for e in bob.events.of(b_id) if isinstance(e, CallDtmfReceived)]
    while sub.connection is None:
        assert time.monotonic() - dropped < 5, "bob's socket never came back"
        await asyncio.sleep(0.01)
    resumed = time.monotonic()
    dtmf = await bob.events.wait(CallDtmfReceived, lambda e: e.source == "signaled")
    print(
        f"socket down {resumed - dropped:.2f} s; dtmf sent {sent_at - dropped:.2f} s in; "
        f"media measured until {during_end - dropped:.2f} s"
    )
    assert during_end < resumed, "the media was not measured while the socket was down"
    # Resumed, not a fresh subscription (which would have lost the buffered notification).
    assert client.subscription is not None and client.subscription.subscription_id == sub.id
    assert dtmf.digits == "7"
    assert dominant_frequency(during) == pytest.approx(1000, abs=20)
    assert rms(during) > 0.05
    assert dominant_frequency(during_back) == pytest.approx(600, abs=20)
    for party, call_id in ((alice, a_id), (bob, b_id)):
        assert party.engine.get(call_id).state == S.CONNECTED
        assert party.events.states(call_id)[-1] == "Connected"
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert await alice.ears.frequency() == pytest.approx(600, abs=20)

    # A signaled action after the resume: alice holds and unholds.
    await alice.engine.hold(a_id)
    await bob.events.state(b_id, S.ON_HOLD)
    assert await alice.ears.level() < 0.005  # holding: bob's side stops sending
    await alice.engine.unhold(a_id)
    await bob.events.wait(
        CallStateChange, lambda e: e.call_id == b_id and e.previous.state == S.ON_HOLD
    )
    assert bob.engine.get(b_id).state == S.CONNECTED
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert await alice.ears.frequency() == pytest.approx(600, abs=20)
    assert bob.engine.get(b_id).end_reason is None


async def token_server(start_server: ServerFactory, tmp_path: Path) -> tuple[RunningServer, bytes]:
    material = generate_key("v2")
    key_file = tmp_path / "v2.key"
    key_file.write_text(material + "\n")
    extra = f"""
[anonymous]
token_max_age = 60
clock_skew = 5
[[realms]]
name = "web"
format = "v2"
key_file = "{key_file}"
"""
    return await start_server(extra=extra), parse_key("v2", material)


def token_credentials(key: bytes, now: float | None = None) -> TokenCredentials:
    tokens = issue_token_set(
        "v2", key, "web", account="desk", caller="sip:guest@localhost", callee="sip:desk@localhost",
        now=now,
    )  # fmt: skip
    return TokenCredentials(
        realm="web",
        account_token=tokens["accountToken"],
        from_token=tokens["fromToken"],
        to_token=tokens["toToken"],
    )


async def test_token_mode_anonymous_call_carries_audio_both_ways(
    start_server: ServerFactory, parties: Parties, tmp_path: Path
) -> None:
    server, key = await token_server(start_server, tmp_path)
    visitor = parties.make(audio_in="tone:1000")  # never logs in
    desk = await parties.online(server, "desk", audio_in="tone:600")

    v_id = await visitor.engine.make_anonymous(
        "desk", token_credentials(key), server_url=server.url
    )
    d_id = (await desk.events.wait(CallReceive)).call_id
    assert desk.engine.get(d_id).anonymous
    assert desk.engine.get(d_id).from_ == "guest@localhost"  # from the token, not from_=
    await desk.events.state(d_id, S.RINGING)
    await desk.engine.answer(d_id)
    await visitor.events.state(v_id, S.CONNECTED)

    assert visitor.events.states(v_id) == ["Initiated", "Ringing", "Connected"]
    assert await desk.ears.frequency() == pytest.approx(1000, abs=20)
    assert await visitor.ears.frequency() == pytest.approx(600, abs=20)
    await desk.engine.end(d_id)
    await visitor.events.state(v_id, S.ENDED)
    assert visitor.engine.get(v_id).end_reason == "hangup"


async def test_expired_token_ends_the_call_with_a_clear_error(
    start_server: ServerFactory, parties: Parties, tmp_path: Path
) -> None:
    server, key = await token_server(start_server, tmp_path)
    desk = await parties.online(server, "desk")
    visitor = parties.make()

    expired = token_credentials(key, now=time.time() - 120)
    v_id = await visitor.engine.make_anonymous("desk", expired, server_url=server.url)
    await visitor.events.state(v_id, S.ENDED)

    errors = [e for e in visitor.events.of(v_id) if isinstance(e, CallError)]
    assert len(errors) == 1
    assert "invalid or expired credentials" in errors[0].error.message
    assert visitor.events.names(v_id)[-1] == "call:stateChange"
    assert visitor.engine.get(v_id).end_reason == "error"
    assert visitor.engine.get(v_id).media_state == "closed"
    await asyncio.sleep(0.2)
    assert not [e for e in desk.events.events if isinstance(e, CallReceive)]


async def test_remote_audio_gap_reports_source_muted_and_back(
    server: RunningServer, parties: Parties
) -> None:
    alice = await parties.online(server, "alice", audio_in="tone:1000")
    bob = await parties.online(server, "bob", audio_in="tone:600")
    a_id, b_id = await connect(alice, bob)
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)

    def gaps() -> list[str]:
        kinds = (MediaSourceMuted, MediaSourceUnmuted)
        return [e.name for e in bob.events.of(b_id) if isinstance(e, kinds)]

    # Holding stops the audio too, but that is signaled: no report.
    await bob.engine.hold(b_id)
    await asyncio.sleep(AUDIO_GAP + 0.6)
    await bob.engine.unhold(b_id)
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert gaps() == []

    # alice's source stalls (a dead capture device, say): nothing reaches bob any more.
    source: Any = alice.engine.session(a_id).media.source
    resume = asyncio.Event()
    original = source.recv

    async def stalled() -> Any:
        await resume.wait()
        return await original()

    source.recv = stalled
    paused = time.monotonic()
    muted = await bob.events.wait(MediaSourceMuted, timeout=5)
    after = time.monotonic() - paused
    assert (muted.call_id, muted.track_id, muted.local) == (b_id, "remote:audio:0", False)
    assert AUDIO_GAP <= after < AUDIO_GAP + 1.0, after
    await asyncio.sleep(0.5)
    assert gaps() == ["media:sourceMuted"]  # once, not repeated
    assert bob.engine.get(b_id).state == S.CONNECTED

    source.recv = original
    resume.set()
    unmuted = await bob.events.wait(MediaSourceUnmuted, timeout=5)
    assert (unmuted.call_id, unmuted.track_id, unmuted.local) == (b_id, "remote:audio:0", False)
    assert await bob.ears.frequency() == pytest.approx(1000, abs=20)
    assert gaps() == ["media:sourceMuted", "media:sourceUnmuted"]
    print(f"sourceMuted {after:.2f} s after the source stalled")
