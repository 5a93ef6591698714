"""A call's received audio through our own jitter buffer, pulled by the output clock.

This replaces aiortc's audio receive path (fixed 80 ms prefetch, stalls on loss, no
concealment) for Opus; video and other audio codecs keep aiortc's. How to wire it:

    stream = AudioReceiveStream()
    stream.attach(receiver)      # the audio RTCRtpReceiver of the call's peer connection

Attach as soon as the receiver exists and before media flows: in the peer connection's
"track" event (`pc.getReceivers()` / `transceiver.receiver` for the kind "audio"), or right
after `addTransceiver("audio")` / `setRemoteDescription`. From then on the receiver's Opus
packets go into the buffer (on the event loop, as they arrive) and the remote track's `recv()`
never yields audio: do not start an `AudioSink` on the remote track itself.

Who pulls, and when (the output clock; packets never push audio out):

- A sound device: the PortAudio *output callback* calls `stream.pull(frames)` for exactly the
  block it is about to play (any size; 10 or 20 ms blocks suit the buffer best), plays it, and
  hands the same block to the echo canceller as the far-end reference
  (`EchoCanceller.far_end(block)`, see `softphone.media.echo`). `pull` is thread-safe against
  packet arrival and quick (one Opus decode at most per 20 ms).
- Anything else (files, bots, tests, the echo service): `PulledTrack(stream)` is an aiortc
  `MediaStreamTrack` that pulls 20 ms on a monotonic clock of its own; hand it to an existing
  `AudioSink` (`MemorySink`, `WavSink`, ...) or to a peer connection as an outgoing track.

`stream.stats()` returns a `ReceiveStats` snapshot: target and current delay (ms, one packet
plus the jitter allowance / the measured playout excess), what is buffered, and counts of frames
played, recovered by FEC, concealed (and how many were inserted on purpose), dropped to shrink
the delay, packets late, duplicated, flushed or discarded, stream resets and decoder errors.
`stream.detach()` gives the receiver back to aiortc (call it when the call ends).

Send side, for the same call: `softphone.media._aiortc_audio.use_fec_encoder(sender)` after
`addTrack` (Opus in-band FEC on), and `softphone.media.opus.with_inband_fec(sdp)` on every
local description before `setLocalDescription` (asks the far end for FEC).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fractions
import threading
import time
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from softphone.media._aiortc_audio import RtpAudioPacket, tap_receiver
from softphone.media.constants import BLOCK, SAMPLE_RATE
from softphone.media.jitter import JitterBuffer, JitterConfig, JitterStats, Pcm
from softphone.media.opus import OpusDecoder, packet_samples

_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


@dataclasses.dataclass
class ReceiveStats(JitterStats):
    decoder_errors: int = 0
    first_packet_at: float | None = None  # time.monotonic() of the first packet
    first_audio_at: float | None = None  # when a pull first returned decoded audio


class AudioReceiveStream:
    """Packets from one audio receiver in, PCM (48 kHz mono int16) out on demand."""

    def __init__(
        self,
        config: JitterConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._decoder = OpusDecoder()
        self._buffer = JitterBuffer(self._decoder, config)
        self._clock = clock
        self._lock = threading.Lock()
        self._detach: Callable[[], None] | None = None
        self._first_packet_at: float | None = None
        self._first_audio_at: float | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def attach(self, receiver: RTCRtpReceiver) -> None:
        """Take this audio receiver's Opus packets (once; `detach` first to move it)."""
        if self._detach is not None:
            raise RuntimeError("this stream is already attached to a receiver")
        self._detach = tap_receiver(receiver, self.put)

    def detach(self) -> None:
        if self._detach is not None:
            self._detach()
            self._detach = None

    def put(self, packet: RtpAudioPacket) -> None:
        """One received packet (the receiver tap calls this; tests may too)."""
        with self._lock:
            if self._first_packet_at is None:
                self._first_packet_at = packet.arrival
                self._wake_waiters()
            self._buffer.put(
                packet.seq,
                packet.timestamp,
                packet.payload,
                packet.arrival,
                packet.ssrc,
                packet_samples(packet.payload),
            )

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            # RuntimeError: that loop is closed, its waiter gone with it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    async def wait_first_packet(self, timeout: float) -> bool:
        """Whether a packet has come, waiting up to `timeout` seconds for the first one."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._first_packet_at is not None:
                return True
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, future))

    def pull(self, samples: int, now: float | None = None) -> Pcm:
        """The next `samples` of audio to play, played from `now` (default: the clock)."""
        when = self._clock() if now is None else now
        with self._lock:
            pcm = self._buffer.pull(samples, when)
            if self._first_audio_at is None and self._buffer.stats.played > 0:
                self._first_audio_at = when
        return pcm

    @property
    def has_packet(self) -> bool:
        """Whether any packet has come yet."""
        return self._first_packet_at is not None

    def stats(self) -> ReceiveStats:
        with self._lock:
            fields = dataclasses.asdict(self._buffer.stats)
            return ReceiveStats(
                **fields,
                decoder_errors=self._decoder.errors,
                first_packet_at=self._first_packet_at,
                first_audio_at=self._first_audio_at,
            )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class PulledTrack(MediaStreamTrack):
    """An audio track that pulls 20 ms from a stream on its own monotonic clock.

    For sinks that have no clock of their own. It never runs ahead of real time; a consumer
    that falls behind gets the blocks it missed at once (as a device would have played them).
    Until the stream's first packet the clock has no phase worth keeping: the first packet
    moves the next pull to its arrival, so the call's first audio does not wait up to a block
    for the next tick (a device's clock cannot do this; its blocks are 10 ms).
    """

    kind = "audio"

    def __init__(self, stream: AudioReceiveStream, block: int = BLOCK) -> None:
        super().__init__()
        self._stream = stream
        self._block = block
        self._start: float | None = None
        self._sent = 0

    async def recv(self) -> av.AudioFrame:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._sent / SAMPLE_RATE
        if due > now:
            if self._stream.has_packet:
                await asyncio.sleep(due - now)
            elif await self._stream.wait_first_packet(due - now):
                now = time.monotonic()
                due = min(due, now)
                self._start = due - self._sent / SAMPLE_RATE
        pcm = self._stream.pull(self._block, max(due, now))
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._sent
        frame.time_base = _TIME_BASE
        self._sent += self._block
        return frame
