"""Throughput phase of `benchmarks.signaling`: every pair runs setups back to back (closed
loop) for a fixed window after a warm-up; setups/s, server CPU per setup, client and machine
CPU, and the hop latencies at that maximum rate. Report section `throughput`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks._signaling_bench import Bench, Phase, latency_report
from benchmarks._signaling_common import progress, sleep_until
from benchmarks._signaling_devices import Pair
from benchmarks._signaling_workers import PhaseResult, Worker


async def closed_loop(worker: Worker, start: float, warmup: float, duration: float) -> PhaseResult:
    """In a worker: every pair runs setups back to back; count the ones completed in the
    window. (Also the load of `_signaling_phase_idle`.)"""
    result = PhaseResult()
    w0, w1 = start + warmup, start + warmup + duration

    def in_window(done: float) -> bool:
        return w0 <= done < w1

    async def run(pair: Pair) -> None:
        while time.monotonic() < w1:
            await worker.one_setup(pair, result, in_window)

    await sleep_until(start)
    await asyncio.gather(worker.cpu_window(w0, w1, result), *(run(p) for p in worker.pairs))
    result.unmatched = worker.unmatched()
    return result


async def run(bench: Bench) -> dict[str, Any]:
    plan = bench.plan
    progress(f"throughput: closed loop, {plan.pairs} pairs, {plan.throughput_s:.0f} s")
    result, window = await bench.measure(closed_loop, plan.throughput_s)
    rate = result.setups / plan.throughput_s
    throughput = {
        "setups_per_s": round(rate, 1),
        "pairs": plan.pairs,
        "duration_s": plan.throughput_s,
        "warmup_s": plan.warmup_s,
        "setups": result.setups,
        "errors": result.errors,
        "unmatched_notifications": result.unmatched,
        # Steadier than setups/s when the host is noisy: the server's cost of one setup.
        "server_cpu_ms_per_setup": round(1000 * window.server_cpu_s / max(1, result.setups), 3),
        **window.report(),
        "latency_at_max": latency_report(result),
    }
    progress(
        f"throughput: {throughput['setups_per_s']} setups/s, server "
        f"{throughput['server_cpu_percent']}% cpu, clients "
        f"{throughput['client_cpu_percent_per_process']}"
    )
    return {"throughput": throughput}


PHASE = Phase(run)
