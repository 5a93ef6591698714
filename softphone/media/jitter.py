"""Adaptive audio jitter buffer in the spirit of libwebrtc's NetEQ (pure Python and numpy).

Encoded packets go in with their arrival time (`put`); the output clock pulls decoded PCM
(`pull`), in whatever block size it runs at (10 or 20 ms, or a device's own). Playout never
waits for a packet: a missing one is concealed, and nothing that arrives (late, duplicated,
reordered, from another SSRC) can stall it. Everything is a function of the arrival and pull
times passed in, so scripted arrival patterns give the same result on every run.

How the delay is chosen:

- Each packet's *relative delay* is its arrival offset (arrival - RTP time) minus the smallest
  offset in a sliding window (`window_s`): how much later than the fastest recent packet it came.
- Relative delays go into a histogram whose old weight fades (`forget` per packet); the target
  jitter allowance is its `quantile` (0.95), clamped to [0, ceiling - one packet]. The *target
  delay* reported is one packet plus that allowance, so a clean network gets the floor of one
  packet.
- The *playout excess* E of each packet played is its playout time minus the time the fastest
  recent packet would have brought it. E is what the controller steers: above the allowance by a
  whole packet, a frame is dropped (preferably a quiet one, see below); below it, one frame of
  concealment is inserted. At most one such step every `adjust_every` frames (100 ms/s).
- A quiet frame (RMS under `quiet` times the running level) is dropped at once; once the buffer
  has been too long for `force_after_s`, frames go whatever they hold, crossfaded (a pure tone
  has no quiet frames, and clock drift must not grow the delay forever).

What happens when the packet due is missing:

- Later packets are buffered (a gap): the frame is lost. It is recovered from the next packet's
  in-band FEC when that one is buffered and the decoder can (`FrameDecoder.recover`), else
  concealed; playout moves on.
- Nothing later is buffered (an underrun: late or lost, not yet known): one frame is concealed
  (the decoder fades long concealment to silence) and playout *holds* (the "debt" grows), so a
  late packet is still played when it comes. If instead a later packet turns up, the frames
  already concealed stand in for the missing ones (the debt is paid by skipping them), so a
  loss does not add delay. Playout holds for as long as nothing arrives: a sender that pauses
  with its clock (a stalled capture device, a peer that stopped sending while held: the next
  timestamps come as if no time had passed) and a path whose delay steps up are played on
  from where they resume, never judged late for good; the controller then works any added
  delay off at the bounded rate.
- A new SSRC resets the stream (the decoder too), and so does a timestamp that is `jump_s` away
  from where its sequence number puts it, once a second packet agrees (a lone bad packet is
  discarded). A buffer beyond the ceiling is flushed down to the target; packets delayed beyond
  the ceiling count as late and stay out of the histogram (an outage, not jitter).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

_U32 = 1 << 32
_FULL_SCALE = 32768.0


class FrameDecoder(Protocol):
    """What the buffer needs from a codec: mono int16 PCM at the buffer's clock rate."""

    def decode(self, payload: bytes) -> Pcm:
        """Decode one packet."""
        ...

    def conceal(self, samples: int) -> Pcm:
        """Make up `samples` of audio for a missing packet (PLC)."""
        ...

    def recover(self, following: bytes, samples: int) -> Pcm | None:
        """The missing frame from the in-band FEC of the packet after it; None if impossible."""
        ...

    def reset(self) -> None:
        """Forget the stream (a new SSRC or timestamp base)."""
        ...


@dataclass(frozen=True)
class JitterConfig:
    clock_rate: int = 48000
    frame_samples: int = 960  # packet duration assumed until packets say otherwise
    ceiling_ms: float = 400.0
    window_s: float = 2.0
    bucket_ms: float = 2.0
    forget: float = 0.993  # per packet: old delays weigh half after ~100 packets (2 s)
    quantile: float = 0.95
    adjust_every: int = 10  # frames between two stretch steps: at most 100 ms/s at 20 ms
    force_after_s: float = 1.0
    quiet: float = 0.3  # a frame under this fraction of the running RMS may be dropped
    jump_s: float = 2.0
    crossfade_samples: int = 120  # 2.5 ms at 48 kHz


@dataclass
class JitterStats:
    received: int = 0
    played: int = 0  # frames decoded from their own packet
    fec: int = 0  # frames recovered from the next packet's FEC
    concealed: int = 0  # frames of PLC (losses, underruns, and inserted on purpose)
    expanded: int = 0  # of those, inserted to grow the delay
    dropped: int = 0  # frames dropped to shrink the delay
    skipped: int = 0  # missing frames already covered by concealment while holding
    late: int = 0  # packets that came after their playout time
    duplicates: int = 0
    flushed: int = 0  # packets dropped because the buffer passed its ceiling
    resets: int = 0  # new SSRC or timestamp jump
    discarded: int = 0  # timestamp at odds with the sequence number (bad, or a new base)
    target_delay_ms: float = 0.0
    current_delay_ms: float = 0.0  # one packet plus the median playout excess
    buffered_ms: float = 0.0


@dataclass
class _Packet:
    seq: int
    ts: int  # unwrapped
    payload: bytes
    arrival: float
    samples: int


@dataclass
class _Histogram:
    """Relative delays in buckets, with exponential forgetting."""

    buckets: int
    width_ms: float
    forget: float
    weights: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.weights = np.zeros(self.buckets)

    def add(self, delay_ms: float) -> None:
        i = min(int(delay_ms / self.width_ms), self.buckets - 1)
        self.weights *= self.forget
        self.weights[i] += 1.0 - self.forget

    def quantile_ms(self, q: float) -> float:
        total = float(self.weights.sum())
        if total <= 0:
            return 0.0
        i = int(np.searchsorted(np.cumsum(self.weights), q * total))
        # the bucket's upper edge: the delay that `q` of the packets stay under
        return float(min(i + 1, self.buckets) * self.width_ms)


class _FastestWindow:
    """Smallest arrival offset over the last `span` seconds (monotonic deque)."""

    def __init__(self, span: float) -> None:
        self.span = span
        self._items: deque[tuple[float, float]] = deque()

    def add(self, arrival: float, offset: float) -> float:
        while self._items and self._items[-1][1] >= offset:
            self._items.pop()
        self._items.append((arrival, offset))
        while self._items[0][0] < arrival - self.span:
            self._items.popleft()
        return self._items[0][1]

    @property
    def base(self) -> float | None:
        return self._items[0][1] if self._items else None

    def clear(self) -> None:
        self._items.clear()


def _rms(pcm: Pcm) -> float:
    if pcm.size == 0:
        return 0.0
    x = pcm.astype(np.float64) / _FULL_SCALE
    return float(np.sqrt(np.mean(x * x)))


class JitterBuffer:
    """One received audio stream: `put` packets, `pull` PCM. Not thread-safe."""

    def __init__(self, decoder: FrameDecoder, config: JitterConfig | None = None) -> None:
        self.config = cfg = config or JitterConfig()
        self.decoder = decoder
        self.stats = JitterStats()
        self._rate = cfg.clock_rate
        self._frame_s = cfg.frame_samples / cfg.clock_rate
        self._hist = _Histogram(int(cfg.ceiling_ms / cfg.bucket_ms), cfg.bucket_ms, cfg.forget)
        self._fastest = _FastestWindow(cfg.window_s)
        self._fade = np.linspace(1.0, 0.0, cfg.crossfade_samples, endpoint=False)
        # per stream (see _new_stream); timestamps are unwrapped, in samples
        self._ssrc: int | None = None
        self._ts_ref: int | None = None
        self._top_seq: int | None = None
        self._top_ts = 0
        self._pending_jump: tuple[int, int] | None = None
        self._play_ts: int | None = None
        self._packets: dict[int, _Packet] = {}
        self._played_seqs: deque[int] = deque(maxlen=64)
        self._debt = 0
        self._last_samples = cfg.frame_samples
        self._last: Pcm = np.zeros(cfg.frame_samples, np.int16)
        self._out: Pcm = np.zeros(0, np.int16)
        self._excess: deque[float] = deque(maxlen=cfg.adjust_every)
        self._since_adjust = 0
        self._too_long_since: float | None = None
        self._level = 0.0  # running RMS of played frames

    # ------------------------------------------------------------------ input

    def put(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        arrival: float,
        ssrc: int = 0,
        samples: int | None = None,
    ) -> None:
        """One packet (RTP sequence number and timestamp as on the wire, 16 and 32 bits)."""
        self.stats.received += 1
        if self._ssrc is not None and ssrc != self._ssrc:
            self._reset()
        self._ssrc = ssrc
        ts = self._unwrap(timestamp)
        if self._is_jump(seq, ts):
            # one packet could just be wrong; a second one that agrees is a new timestamp base
            pending, self._pending_jump = self._pending_jump, (seq, timestamp)
            if pending is None or not self._agree(pending, seq, timestamp):
                self.stats.discarded += 1
                return
            self._reset()
            self._ssrc = ssrc
            self._unwrap(pending[1])
            ts = self._unwrap(timestamp)
        self._pending_jump = None
        if self._top_seq is None or 0 < (seq - self._top_seq) % 65536 < 32768:
            self._top_seq, self._top_ts = seq, ts
        late = self._play_ts is not None and ts < self._play_ts
        if ts in self._packets or (late and seq in self._played_seqs):
            self.stats.duplicates += 1  # a copy says nothing about the network's delay
            return
        self._record_arrival(ts, arrival)
        if late:
            self.stats.late += 1  # too late to play, but its delay raises the target
            return
        duration = samples if samples and samples > 0 else self.config.frame_samples
        self._packets[ts] = _Packet(seq, ts, payload, arrival, duration)
        if self._play_ts is None:
            self._play_ts = ts
        self._limit_to_ceiling()

    def _unwrap(self, timestamp: int) -> int:
        if self._ts_ref is None:
            self._ts_ref = timestamp
            return timestamp
        delta = (timestamp - self._ts_ref) % _U32
        if delta >= _U32 // 2:
            delta -= _U32
        ts = self._ts_ref + delta
        self._ts_ref = max(self._ts_ref, ts)
        return ts

    def _is_jump(self, seq: int, ts: int) -> bool:
        """A new timestamp base: the timestamp is far from where the sequence number says it
        should be. (A packet that is merely very late keeps the two in step.)"""
        if self._top_seq is None:
            return False
        gap = (seq - self._top_seq) % 65536
        if gap >= 32768:
            gap -= 65536
        expected = self._top_ts + gap * self.config.frame_samples
        return abs(ts - expected) > self.config.jump_s * self._rate

    def _agree(self, first: tuple[int, int], seq: int, timestamp: int) -> bool:
        gap = (seq - first[0]) % 65536
        drift = (timestamp - first[1] - gap * self.config.frame_samples) % _U32
        return 0 < gap < 100 and min(drift, _U32 - drift) <= self.config.jump_s * self._rate

    def _record_arrival(self, ts: int, arrival: float) -> None:
        offset = arrival - ts / self._rate
        base = self._fastest.add(arrival, offset)
        delay_ms = (offset - base) * 1000.0
        # beyond the ceiling it is an outage, not jitter the buffer could ever absorb
        if delay_ms <= self.config.ceiling_ms:
            self._hist.add(delay_ms)

    def _limit_to_ceiling(self) -> None:
        assert self._play_ts is not None
        newest = max(self._packets)
        span = newest + self._packets[newest].samples - self._play_ts
        if span <= self.config.ceiling_ms / 1000.0 * self._rate:
            return
        keep_from = newest - int(self._allowance_s() * self._rate)
        for ts in [t for t in self._packets if t < keep_from]:
            del self._packets[ts]
            self.stats.flushed += 1
        self._play_ts = min(self._packets)
        self._debt = 0
        self._excess.clear()

    # ------------------------------------------------------------------ output

    def pull(self, samples: int, now: float) -> Pcm:
        """The next `samples` of audio; `now` is when the first of them is played."""
        while self._out.size < samples:
            when = now + self._out.size / self._rate
            self._out = np.concatenate([self._out, self._next_frame(when)])
        block, self._out = self._out[:samples], self._out[samples:]
        self._update_gauges()
        return block

    def _next_frame(self, now: float) -> Pcm:
        if self._play_ts is None:
            return np.zeros(self.config.frame_samples, np.int16)
        while True:
            packet = self._packets.get(self._play_ts)
            if packet is not None:
                return self._play(packet, now)
            later = min((t for t in self._packets if t > self._play_ts), default=None)
            if later is None:
                return self._underrun()
            if self._debt > 0:
                # the concealment already played while holding stands in for this frame
                step = min(self._debt, later - self._play_ts, self._last_samples)
                self._play_ts += step
                self._debt -= step
                self.stats.skipped += 1
                continue
            return self._lost(self._packets[later])

    def _play(self, packet: _Packet, now: float) -> Pcm:
        self._debt = 0
        excess = now - (packet.ts / self._rate + self._base())
        self._excess.append(excess)
        self._since_adjust += 1
        allowance = self._allowance_s()
        median = statistics.median(self._excess)
        settled = self._since_adjust >= self.config.adjust_every
        too_long = median - packet.samples / self._rate >= allowance
        if too_long:
            if self._too_long_since is None:
                self._too_long_since = now
        else:
            self._too_long_since = None
        forced = (
            self._too_long_since is not None
            and now - self._too_long_since >= self.config.force_after_s
        )
        if settled and median < allowance - 0.25 * self._frame_s and self._is_quiet(self._last):
            self._adjusted()
            self.stats.expanded += 1
            return self._conceal(self._last_samples)
        pcm = self._decode(packet)
        following = self._packets.get(packet.ts + packet.samples)
        if settled and too_long and following is not None and (self._is_quiet(pcm) or forced):
            self._adjusted()
            self.stats.dropped += 1
            nxt = self._decode(following)
            return self._crossfade(pcm, nxt)
        self._update_level(pcm)
        return pcm

    def _decode(self, packet: _Packet) -> Pcm:
        del self._packets[packet.ts]
        self._play_ts = packet.ts + packet.samples
        self._last_samples = packet.samples
        self._played_seqs.append(packet.seq)
        self.stats.played += 1
        pcm = self.decoder.decode(packet.payload)
        self._last = pcm
        return pcm

    def _underrun(self) -> Pcm:
        samples = self._last_samples
        self._debt += samples  # hold: a late packet is still played when it comes
        return self._conceal(samples)

    def _lost(self, following: _Packet) -> Pcm:
        assert self._play_ts is not None
        samples = min(self._last_samples, following.ts - self._play_ts)
        recovered = None
        if following.ts == self._play_ts + samples:
            recovered = self.decoder.recover(following.payload, samples)
        self._play_ts += samples
        if recovered is not None:
            self.stats.fec += 1
            self._last = recovered
            return recovered
        return self._conceal(samples)

    def _conceal(self, samples: int) -> Pcm:
        self.stats.concealed += 1
        pcm = self.decoder.conceal(samples)
        self._last = pcm
        return pcm

    def _crossfade(self, dropped: Pcm, following: Pcm) -> Pcm:
        """Continue from `dropped`'s start into `following`, which replaces it."""
        n = min(self._fade.size, dropped.size, following.size)
        out = following.astype(np.float64)
        out[:n] = dropped[:n] * self._fade[:n] + following[:n] * (1.0 - self._fade[:n])
        self._last = following
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)

    # ------------------------------------------------------------------ control

    def _base(self) -> float:
        base = self._fastest.base
        return 0.0 if base is None else base

    def _allowance_s(self) -> float:
        """Jitter allowance above the fastest packet (target delay minus one packet)."""
        cfg = self.config
        ceiling = cfg.ceiling_ms / 1000.0 - self._frame_s
        return min(max(self._hist.quantile_ms(cfg.quantile) / 1000.0, 0.0), ceiling)

    def _adjusted(self) -> None:
        # `_too_long_since` stays: once forced, steps go on at the bounded rate until done
        self._since_adjust = 0
        self._excess.clear()

    def _is_quiet(self, pcm: Pcm) -> bool:
        return _rms(pcm) <= self.config.quiet * self._level + 1e-4

    def _update_level(self, pcm: Pcm) -> None:
        self._level = 0.95 * self._level + 0.05 * _rms(pcm)

    def _update_gauges(self) -> None:
        s = self.stats
        s.target_delay_ms = (self._frame_s + self._allowance_s()) * 1000.0
        if self._excess:
            s.current_delay_ms = (self._frame_s + statistics.median(self._excess)) * 1000.0
        ahead = 0
        if self._packets and self._play_ts is not None:
            newest = max(self._packets)
            ahead = newest + self._packets[newest].samples - self._play_ts
        s.buffered_ms = (max(ahead, 0) + self._out.size) / self._rate * 1000.0

    # ------------------------------------------------------------------ streams

    def _new_stream(self, ssrc: int | None) -> None:
        self._ssrc = ssrc
        self._ts_ref = None
        self._top_seq = None
        self._top_ts = 0
        self._pending_jump = None
        self._play_ts = None
        self._packets = {}
        self._played_seqs = deque(maxlen=64)
        self._debt = 0  # samples concealed while holding, not yet matched by playout
        self._last_samples = self.config.frame_samples
        self._last = np.zeros(self.config.frame_samples, np.int16)

    def _reset(self) -> None:
        self.stats.resets += 1
        self._new_stream(None)
        self._fastest.clear()
        self._excess.clear()
        self._since_adjust = 0
        self._too_long_since = None
        self.decoder.reset()
