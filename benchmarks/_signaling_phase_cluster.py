"""Cluster phase of `benchmarks.signaling` (`--cluster N`): N `softphone serve` processes on
one PostgreSQL and one Redis behind HAProxy (round robin, so a pair's caller and callee sit on
different processes most of the time), the same closed loop as the throughput phase, through
the proxy. Reports setups/s, request-to-notification latency across processes, and CPU per
setup of the server processes and of PostgreSQL, Redis and HAProxy, beside the single-process
figures of the same run: the cross-process cost of a setup. Report section `cluster`.

Its PostgreSQL, Redis and HAProxy are the ones tests/cluster starts (Debian binaries, loopback,
temporary directories, stopped by PID). Then (`_signaling_cluster_faults`): memory per idle
websocket per process, and notifications across a SIGKILL of one process under load (lost,
duplicated, time for its clients to be resumed elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from benchmarks._signaling_bench import Bench, Phase, Window, latency_report
from benchmarks._signaling_cluster_counts import round_trips
from benchmarks._signaling_cluster_faults import idle_memory, kill_under_load
from benchmarks._signaling_common import (
    PASSWORD,
    cpu_seconds,
    machine_ticks,
    progress,
    rss_mb,
    sleep_until,
)
from benchmarks._signaling_phase_throughput import closed_loop
from benchmarks._signaling_workers import PhaseResult, start_workers, stop_workers


def _children(parent: int) -> list[int]:
    """PostgreSQL's backends are children of its postmaster: their CPU counts too."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        # A backend may exit between listing and reading.
        with contextlib.suppress(OSError, ValueError):
            total += cpu_seconds(pid)
    return total


async def run(bench: Bench) -> dict[str, Any]:
    plan = bench.plan
    if plan.cluster <= 0:
        return {}
    # The test harness's instances: PostgreSQL refuses root, Redis and HAProxy in the
    # foreground, all stopped by PID (imported here: only a --cluster run needs them).
    from softphone.server.passwords import hash_password
    from softphone.server.store_postgres import PostgresStore
    from tests.cluster.instances import HAProxy, Postgres, Redis
    from tests.cluster.serve import ServeProcess

    progress(f"cluster: {plan.cluster} processes on PostgreSQL + Redis behind HAProxy")
    postgres = Postgres().start()
    redis = Redis().start()
    servers: list[ServeProcess] = []
    proxy: HAProxy | None = None
    handles = []
    root = Path(postgres.dir).parent
    try:
        database = postgres.create_database()
        store = PostgresStore(postgres.url(database))
        names = [(f"ccaller{i:02d}", f"ccallee{i:02d}") for i in range(plan.pairs)]
        kill_pairs = [(f"kcaller{i:02d}", f"kcallee{i:02d}") for i in range(plan.pairs)]
        counted = ("rcaller", "rcallee")
        idle_users = [f"idle{i:04d}" for i in range(plan.idle // 2)]
        digest = hash_password(PASSWORD)
        for name in [u for p in [*names, *kill_pairs, counted] for u in p] + idle_users:
            store.add_user(name, digest, False)
        store.close()
        config = (
            "max_devices_per_user = 5000\nmax_live_calls_per_account = 1000\n"
            'ring_timeout = 60\ntrusted_proxies = ["127.0.0.1"]\n'
            f'[store]\nurl = "{postgres.url(database)}"\n[bus]\nurl = "{redis.url}"\n'
            "[rate_limits]\nlogin_per_minute = 1000000\n"
        )
        tag = f"softphone-bench-cluster-{time.monotonic_ns()}"
        servers = [ServeProcess(root / tag / f"sp{n}", config) for n in range(plan.cluster)]
        await asyncio.gather(*(server.start() for server in servers))
        proxy = HAProxy([server.port for server in servers]).start()
        handles = await start_workers(proxy.url, names, plan.procs)
        server_pids = [server.proc.pid for server in servers if server.proc is not None]
        assert postgres.pid is not None and redis.proc is not None and proxy.proc is not None
        backing = [postgres.pid, *_children(postgres.pid), redis.proc.pid, proxy.proc.pid]

        progress(f"cluster: closed loop, {plan.pairs} pairs, {plan.throughput_s:.0f} s")
        start = time.monotonic() + 0.2
        for handle in handles:
            handle.send(closed_loop, start, plan.warmup_s, plan.throughput_s)
        await sleep_until(start + plan.warmup_s)
        backing = [postgres.pid, *_children(postgres.pid), redis.proc.pid, proxy.proc.pid]
        s0, b0, (busy0, total0) = _cpu(server_pids), _cpu(backing), machine_ticks()
        await sleep_until(start + plan.warmup_s + plan.throughput_s)
        s1, b1, (busy1, total1) = _cpu(server_pids), _cpu(backing), machine_ticks()
        merged = PhaseResult()
        cpus = []
        for handle in handles:
            _, part = await handle.receive(timeout=plan.throughput_s + plan.warmup_s + 60)
            assert isinstance(part, PhaseResult)
            merged.setups += part.setups
            merged.errors += part.errors
            merged.unmatched += part.unmatched
            for into, samples in zip(merged.hops, part.hops, strict=True):
                into.extend(samples)
            cpus.append(part.cpu_s)
        window = Window(
            plan.throughput_s, s1 - s0, 0.0, (busy1 - busy0) / max(1, total1 - total0), cpus
        )
        setups = max(1, merged.setups)
        single = bench.sections.get("throughput", {})
        servers_ms = 1000 * (s1 - s0) / setups
        backing_ms = 1000 * (b1 - b0) / setups
        single_ms = single.get("server_cpu_ms_per_setup")
        section: dict[str, Any] = {
            "processes": plan.cluster,
            "setups_per_s": round(merged.setups / plan.throughput_s, 1),
            "setups": merged.setups,
            "errors": merged.errors,
            "unmatched_notifications": merged.unmatched,
            "server_processes_cpu_ms_per_setup": round(servers_ms, 3),
            "postgres_redis_haproxy_cpu_ms_per_setup": round(backing_ms, 3),
            "machine_busy_percent_of_all_cores": window.report()[
                "machine_busy_percent_of_all_cores"
            ],
            "client_cpu_percent": window.report()["client_cpu_percent"],
            "latency_at_max": latency_report(merged),
            "rss_mb_per_process": [round(rss_mb(pid), 1) for pid in server_pids],
            "single_process": {
                "setups_per_s": single.get("setups_per_s"),
                "server_cpu_ms_per_setup": single_ms,
                "latency_at_max": single.get("latency_at_max", {}).get("p50_ms"),
            },
        }
        if single_ms is not None:
            section["cross_process_cost_ms_per_setup"] = round(
                servers_ms + backing_ms - single_ms, 3
            )
        progress(
            f"cluster: {section['setups_per_s']} setups/s, servers {servers_ms:.2f} ms + "
            f"backing {backing_ms:.2f} ms CPU per setup (single process: {single_ms} ms)"
        )
        await stop_workers(handles)
        handles = []
        progress("cluster: round trips of serial setups across two processes")
        section["round_trips"] = await round_trips(
            postgres.admin,
            Path(postgres.dir) / "log",
            redis.url,
            (servers[0].url, servers[1 % len(servers)].url),
            counted,
        )
        progress(
            f"cluster: {section['round_trips']['postgres_statements_per_setup']} PostgreSQL "
            f"statements, {section['round_trips']['redis_commands_per_setup']} Redis commands "
            "per setup"
        )
        progress(f"cluster: {len(idle_users)} idle websockets through the proxy")
        section["idle_websockets"] = await idle_memory(proxy.url, servers, idle_users)
        progress(f"cluster: kill -9 of one process under load, {len(kill_pairs)} calls")
        section["kill_9_under_load"] = await kill_under_load(
            proxy.url, servers, kill_pairs, max(6.0, plan.throughput_s)
        )
        progress(f"cluster: across the kill {section['kill_9_under_load']}")
        return {"cluster": section}
    finally:
        if handles:
            await stop_workers(handles)
        if proxy is not None:
            proxy.remove()
        for server in servers:
            server.stop()
        redis.remove()
        postgres.remove()


PHASE = Phase(run)
