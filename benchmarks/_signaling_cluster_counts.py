"""Round trips of one call setup in the cluster (`--cluster N`): the PostgreSQL statements (the
database's own statement log) and Redis commands (INFO commandstats) of serial setups by one
pair whose caller and callee sit on two different processes. Counts, not times, so they hold
on a busy machine where CPU per setup moves by tens of percent from run to run. The processes'
background work in those moments (sweeps, timer polls) is in the counts too; it is a few
statements a second against about a hundred setups a second."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import redis

from benchmarks._signaling_devices import Device, Pair

SETUPS = 20
_STATEMENT = re.compile(r"LOG:\s+(?:statement|execute [^:]*):\s*(.*)")


def _statements(text: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for line in text.splitlines():
        match = _STATEMENT.search(line)
        if match and "log_statement" not in match.group(1) and "pg_reload" not in match.group(1):
            found[" ".join(match.group(1).split())[:60]] += 1
    return found


async def round_trips(
    admin: Any, log: Path, redis_url: str, urls: tuple[str, str], users: tuple[str, str]
) -> dict[str, Any]:
    """`admin(sql)` runs SQL as the database owner (tests.cluster.instances.Postgres.admin)."""
    async with aiohttp.ClientSession() as http:
        caller = await Device(http, urls[0], users[0]).online()
        callee = await Device(http, urls[1], users[1]).online()
        pair = Pair(caller, callee)
        await pair.setup()  # statements prepared, scripts loaded: the steady state
        client = redis.Redis.from_url(redis_url)
        try:
            client.config_resetstat()
            admin("ALTER SYSTEM SET log_statement = 'all'")
            admin("SELECT pg_reload_conf()")
            await asyncio.sleep(0.3)
            start = log.stat().st_size
            for _ in range(SETUPS):
                await pair.setup()
            admin("ALTER SYSTEM SET log_statement = 'none'")
            admin("SELECT pg_reload_conf()")
            commands = client.info("commandstats")
        finally:
            client.close()
        await caller.leave()
        await callee.leave()
    statements = _statements(log.read_bytes()[start:].decode(errors="replace"))
    redis_calls = {
        name.removeprefix("cmdstat_"): round(value["calls"] / SETUPS, 2)
        for name, value in commands.items()
        if name not in ("cmdstat_config|resetstat", "cmdstat_info")
    }
    return {
        "setups": SETUPS,
        "postgres_statements_per_setup": round(sum(statements.values()) / SETUPS, 2),
        "postgres_statements": {
            text: round(n / SETUPS, 2) for text, n in statements.most_common(12)
        },
        "redis_commands_per_setup": round(sum(redis_calls.values()), 2),
        "redis_commands": dict(sorted(redis_calls.items(), key=lambda kv: -kv[1])),
    }
