"""The Redis bus on a real Redis: seqs and streams, the doorbell, leased timers, lost devices,
shared token buckets; each claim goes to exactly one caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from softphone.server.bus import RedisBus, with_seq
from softphone.server.doorbells import Doorbells
from tests.cluster.instances import Redis


@pytest.fixture
def bus() -> Iterator[RedisBus]:
    redis = Redis().start()
    made = RedisBus(redis.url, password=None, resume_buffer=3)
    yield made
    made.sync.close()
    redis.remove()


def test_publish_numbers_and_trims_each_subscription_stream(bus: RedisBus) -> None:
    frame = b'{"type":"call.ringing","call_id":"c","seq":0}'
    assert bus.publish([("a", frame), ("b", frame)]) == [1, 1]
    for _ in range(4):
        bus.publish([("a", frame)])
    assert bus.current_seq("a") == 5 and bus.current_seq("b") == 1
    frames = asyncio.run(bus.frames_after("a", 0))
    assert [seq for seq, _ in frames] == [3, 4, 5]  # resume_buffer = 3
    assert with_seq(frames[0][1], 3).endswith(b'"seq":3}')


def test_a_lost_device_gets_nothing_and_is_claimed_once(bus: RedisBus) -> None:
    bus.seen(["a"])
    time.sleep(0.05)
    assert bus.claim_lost(0.01) == ["a"]
    assert bus.claim_lost(0.01) == []  # already claimed
    assert bus.lost(["a"]) == [True]
    assert bus.publish([("a", b'{"type":"x","seq":0}')]) == [0]  # dropped, not numbered
    names, _ = bus.claim_due()
    assert names == ["lost:a"]  # ending its calls is a timer, leased like the others


def test_a_timer_whose_claimer_died_falls_due_again(bus: RedisBus) -> None:
    bus.arm("ring:c1", 0)
    time.sleep(0.01)
    names, _ = bus.claim_due(lease=0.2)  # claimed, then "the process dies": no done()
    assert names == ["ring:c1"]
    assert bus.claim_due(lease=0.2)[0] == []  # leased: nobody else takes it meanwhile
    time.sleep(0.3)
    names, lease = bus.claim_due(lease=5)
    assert names == ["ring:c1"]  # the lease ran out: another process takes it
    bus.done("ring:c1", lease)
    time.sleep(0.01)
    assert bus.claim_due()[0] == []


def test_done_keeps_a_timer_armed_again_meanwhile(bus: RedisBus) -> None:
    bus.arm("ring:c2", 0)
    time.sleep(0.01)
    _, lease = bus.claim_due()
    bus.arm("ring:c2", 0.05)  # e.g. a forward re-arms the ring timer while it was firing
    bus.done("ring:c2", lease)
    time.sleep(0.1)
    assert bus.claim_due()[0] == ["ring:c2"]


def test_token_bucket_is_shared(bus: RedisBus) -> None:
    assert [bus.take("login:x", 2) for _ in range(2)] == [None, None]
    wait = bus.take("login:x", 2)
    assert wait is not None and 0 < wait <= 30


async def test_doorbells_ring_the_holder_and_refill_after_redis_restarts() -> None:
    redis = Redis().start()
    bus = RedisBus(redis.url, password=None, resume_buffer=10)
    bells = Doorbells(bus)
    bells.start()
    got: list[bytes] = []
    refills = 0

    async def refill() -> None:
        nonlocal refills
        refills += 1

    try:
        await bells.add("s", got.append, refill)
        bus.publish([("s", b'{"type":"x","seq":0}')])
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == [b'N1 {"type":"x","seq":0}']
        redis.kill()
        redis.start()  # append-only file: seq 1 is still there
        for _ in range(100):
            if refills:
                break
            await asyncio.sleep(0.05)
        assert refills == 1  # the listener knew it had been away
        assert bus.publish([("s", b'{"type":"y","seq":0}')]) == [2]
    finally:
        await bells.stop()
        await bus.close()
        redis.remove()


def test_a_batch_sends_its_writes_together_at_its_end_and_none_when_it_fails(
    bus: RedisBus,
) -> None:
    frame = b'{"type":"call.ringing","call_id":"c","seq":0}'
    with bus.batch():
        assert bus.publish([("a", frame)]) is None  # queued: no seq yet
        bus.arm("ring:c1", 0)
        with bus.batch():  # an action inside another (reject inside end): one batch
            bus.publish([("a", frame)])
        bus.control("a", b"C4000")
        assert bus.current_seq("a") == 0  # reads go at once; the writes wait
        assert bus.claim_due()[0] == []
    assert bus.current_seq("a") == 2
    time.sleep(0.01)
    names, lease = bus.claim_due()
    assert names == ["ring:c1"]
    bus.done("ring:c1", lease)
    bus.arm("ring:c2", 0)
    with pytest.raises(RuntimeError), bus.batch():
        bus.publish([("a", frame)])
        bus.disarm("ring:c2")
        raise RuntimeError("the action failed: its transaction rolls back")
    assert bus.current_seq("a") == 2  # nothing of it was sent
    time.sleep(0.01)
    assert bus.claim_due()[0] == ["ring:c2"]
    bus.publish([("a", frame)])  # after a failed batch, writes go at once again
    assert bus.current_seq("a") == 3
