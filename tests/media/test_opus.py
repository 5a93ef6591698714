"""Opus decoding with concealment and FEC, on packets from aiortc's own encoder (with and without
our FEC settings), and the SDP that asks the far end for FEC."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder

from softphone.media._aiortc_audio import FecOpusEncoder
from softphone.media.analysis import best_correlation, dominant_frequency, rms
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.opus import OpusDecoder, has_fec, packet_samples, with_inband_fec


def speechy(seconds: float) -> np.ndarray:
    """A voiced buzz with a moving pitch: SILK territory, so FEC gets used."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    pcm: np.ndarray = np.round(x / np.max(np.abs(x)) * 0.5 * 32767).astype(np.int16)
    return pcm


def encode(pcm: np.ndarray, encoder: OpusEncoder) -> list[bytes]:
    packets: list[bytes] = []
    for i in range(0, pcm.size - BLOCK + 1, BLOCK):
        frame = av.AudioFrame.from_ndarray(pcm[i : i + BLOCK].reshape(1, -1), layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = i
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        packets.extend(encoder.encode(frame)[0])
    return packets


def tone(seconds: float, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return np.round(0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def test_normal_decoding_is_mono_48k_and_faithful() -> None:
    packets = encode(tone(1.0), FecOpusEncoder())
    decoder = OpusDecoder()
    pcm = np.concatenate([decoder.decode(p) for p in packets])
    assert all(packet_samples(p) == BLOCK for p in packets)
    assert pcm.size == len(packets) * BLOCK
    tail = pcm[-SAMPLE_RATE // 2 :]
    assert abs(dominant_frequency(tail) - 1000) < 3
    assert 0.13 < rms(tail) < 0.25  # mono 0.3 peak, through aiortc's -3 dB stereo upmix


def test_our_encoder_carries_fec_and_aiortcs_does_not() -> None:
    ours = encode(speechy(1.0), FecOpusEncoder())[10:]
    theirs = encode(speechy(1.0), OpusEncoder())[10:]
    # SILK codes LBRR only for frames its VAD calls active enough: most of these
    assert sum(map(has_fec, ours)) >= 0.5 * len(ours)
    assert not any(map(has_fec, theirs))  # 96 kb/s CELT: no SILK layer at all


def test_fec_rebuilds_a_lost_frame_better_than_concealment() -> None:
    pcm = speechy(2.0)
    packets = encode(pcm, FecOpusEncoder())
    reference = OpusDecoder()
    clean = [reference.decode(p) for p in packets]
    fec_err, plc_err = [], []
    losses = [n for n in range(20, len(packets) - 1, 3) if has_fec(packets[n + 1])][:10]
    assert len(losses) == 10
    for lost in losses:
        with_fec, with_plc = OpusDecoder(), OpusDecoder()
        for p in packets[:lost]:
            with_fec.decode(p)
            with_plc.decode(p)
        recovered = with_fec.recover(packets[lost + 1], BLOCK)
        assert recovered is not None and recovered.size == BLOCK
        concealed = with_plc.conceal(BLOCK)
        target = clean[lost].astype(float)
        fec_err.append(np.mean((recovered - target) ** 2) / np.mean(target**2))
        plc_err.append(np.mean((concealed - target) ** 2) / np.mean(target**2))
        coef, _ = best_correlation(clean[lost], recovered)
        assert coef > 0.7, (lost, coef)
    assert np.median(fec_err) < 0.5 * np.median(plc_err)


def test_recover_declines_without_fec_data() -> None:
    packets = encode(tone(0.5), OpusEncoder())
    decoder = OpusDecoder()
    decoder.decode(packets[0])
    assert decoder.recover(packets[2], BLOCK) is None


def test_concealment_continues_then_fades_to_silence() -> None:
    packets = encode(tone(1.0, 440.0), FecOpusEncoder())
    decoder = OpusDecoder(fade_after_ms=60, fade_ms=100)
    for p in packets[:30]:
        decoder.decode(p)
    blocks = [decoder.conceal(BLOCK) for _ in range(12)]
    assert rms(blocks[0]) > 0.05  # the first concealed frame still sounds like the tone
    assert abs(dominant_frequency(blocks[0]) - 440) < 30
    assert all(rms(b) == 0.0 for b in blocks[8:])  # 160 ms on: silence
    levels = [rms(b) for b in blocks[3:9]]
    assert levels == sorted(levels, reverse=True)
    after = decoder.decode(packets[30])  # a packet ends it: full level again
    assert decoder.decode(packets[31]).size == BLOCK and rms(after) > 0.0


def test_garbage_is_concealed_not_raised() -> None:
    decoder = OpusDecoder()
    for p in encode(tone(0.2), FecOpusEncoder()):
        decoder.decode(p)
    out = decoder.decode(b"\xff\xff\xff")
    assert out.size > 0 and decoder.errors == 1
    assert packet_samples(b"") is None


async def test_sdp_asks_for_fec_and_aiortc_accepts_it() -> None:
    config = RTCConfiguration(iceServers=[])
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    try:
        a.addTransceiver("audio")
        offer = await a.createOffer()
        munged = with_inband_fec(offer.sdp)
        assert "useinbandfec=1" not in offer.sdp
        assert munged.count("useinbandfec=1") == 1
        await a.setLocalDescription(RTCSessionDescription(munged, "offer"))
        assert "useinbandfec=1" in a.localDescription.sdp
        await b.setRemoteDescription(a.localDescription)
        answer = await b.createAnswer()
        await b.setLocalDescription(RTCSessionDescription(with_inband_fec(answer.sdp), "answer"))
        assert "useinbandfec=1" in b.localDescription.sdp
        await a.setRemoteDescription(b.localDescription)
    finally:
        await a.close()
        await b.close()


def test_sdp_fmtp_lines_are_amended_not_duplicated() -> None:
    chrome = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    out = with_inband_fec(chrome)
    assert "a=fmtp:111 minptime=10;useinbandfec=1\r\n" in out
    assert with_inband_fec(out) == out
    assert "PCMU/8000\r\n" in out
