"""Latency phase of `benchmarks.signaling`: open-loop Poisson arrivals at half the rate the
throughput phase measured; hop latency percentiles, overall and per hop. Report section
`latency_at_half_rate`. Runs after `_signaling_phase_throughput` (it reads its section).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from benchmarks._signaling_bench import Bench, Phase, latency_report
from benchmarks._signaling_common import progress, sleep_until
from benchmarks._signaling_devices import Pair
from benchmarks._signaling_workers import PhaseResult, Worker


async def open_loop(
    worker: Worker, start: float, warmup: float, duration: float, rate: float, seed: int
) -> PhaseResult:
    """In a worker: Poisson arrivals at `rate`, never waiting for earlier setups (pairs taken
    in turn, several calls per pair if need be); the setups that start in the window count."""
    result = PhaseResult()
    w0, w1 = start + warmup, start + warmup + duration
    rng = random.Random(seed)
    tasks: set[asyncio.Task[None]] = set()

    async def run(pair: Pair, counted: bool) -> None:
        await worker.one_setup(pair, result, lambda _: counted)

    cpu = asyncio.create_task(worker.cpu_window(w0, w1, result))
    arrival, turn = start, 0
    while True:
        arrival += rng.expovariate(rate)
        if arrival >= w1:
            break
        await sleep_until(arrival)
        task = asyncio.create_task(run(worker.pairs[turn % len(worker.pairs)], arrival >= w0))
        turn += 1
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        result.max_in_flight = max(result.max_in_flight, len(tasks))
    await asyncio.gather(cpu, *tasks)
    result.unmatched = worker.unmatched()
    return result


async def run(bench: Bench) -> dict[str, Any]:
    plan = bench.plan
    throughput = bench.sections["throughput"]
    half = max(1.0, throughput["setups"] / throughput["duration_s"] / 2)
    progress(f"latency: open loop at {half:.0f} setups/s for {plan.latency_s:.0f} s")
    per_worker = half / len(bench.workers)
    seeds = [(per_worker, 1000 + index) for index in range(len(bench.workers))]
    result, window = await bench.measure(open_loop, plan.latency_s, seeds)
    latency = {
        "rate_per_s": round(half, 1),
        "achieved_per_s": round(result.setups / plan.latency_s, 1),
        "duration_s": plan.latency_s,
        "arrivals": "poisson",
        "setups": result.setups,
        "errors": result.errors,
        "unmatched_notifications": result.unmatched,
        "max_setups_in_flight_per_process": result.max_in_flight,
        **latency_report(result),
        **window.report(),
    }
    progress(f"latency: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms")
    return {"latency_at_half_rate": latency}


PHASE = Phase(run)
