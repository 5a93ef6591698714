"""Seeded network impairment at a receiver: random loss, uniform jitter and delay spikes.

For tests, benchmarks and diagnostics: `impair(receiver, Impairment(loss=0.05, jitter_s=0.04,
seed=1))` makes every RTP packet for that receiver go through it (in this process, after the
UDP socket and SRTP, before aiortc's receive handling), so the far end's media path sees what a
lossy, jittery network would deliver. Delays reorder packets just as a network does.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from softphone.media._aiortc_audio import RtpHandler, intercept_rtp


@dataclass
class Impairment:
    loss: float = 0.0  # probability that a packet is dropped
    jitter_s: float = 0.0  # each packet is delayed by uniform(0, jitter_s)
    seed: int = 0
    spike_s: float = 0.0  # extra delay for every packet while set (change it at run time)
    dropped: int = 0
    delivered: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _pending: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def __call__(self, packet: RtpPacket, arrival_ms: int, deliver: RtpHandler) -> None:
        if self._rng.random() < self.loss:
            self.dropped += 1
            return
        delay = self._rng.uniform(0.0, self.jitter_s) + self.spike_s
        self.delivered += 1
        if delay <= 0:
            await deliver(packet, arrival_ms)
            return
        task = asyncio.get_running_loop().create_task(
            self._later(delay, packet, arrival_ms, deliver)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _later(delay: float, packet: RtpPacket, arrival_ms: int, deliver: RtpHandler) -> None:
        await asyncio.sleep(delay)
        await deliver(packet, arrival_ms)


def impair(receiver: RTCRtpReceiver, impairment: Impairment) -> Impairment:
    intercept_rtp(receiver, impairment)
    return impairment
