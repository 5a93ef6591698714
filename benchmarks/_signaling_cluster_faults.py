"""What `--cluster N` measures beyond throughput: notifications across a kill -9 of one server
process under load (lost / duplicated), how long its clients take to be resumed elsewhere, and
memory per idle websocket per process. Devices here are raw protocol clients through HAProxy
that resume with their last seq, as the real client does.

Load: each pair is in a call; the caller sends DTMF carrying a counter every `gap` seconds (a
request answered 200 was kept, so its notification is owed to the callee). One process, the one
holding the most websockets, gets SIGKILL mid-load. A counter the callee gets twice is a
duplicate; one answered 200 and never received is lost. A request cut by the kill has no answer:
whether it was kept is unknown, so it is counted apart (`unanswered`), not as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import statistics
import time
from collections import Counter
from typing import Any

import aiohttp

from benchmarks._signaling_common import PASSWORD, SDP_ANSWER, SDP_OFFER, progress, rss_mb


class Device:
    def __init__(self, base: str, user: str) -> None:
        self.base = base
        self.user = user
        self.http = aiohttp.ClientSession(base)
        self.headers: dict[str, str] = {}
        self.sub = ""
        self.last_seq = 0
        self.frames: list[dict[str, Any]] = []
        self.seq_errors = 0
        self.dropped_at: float | None = None
        self.resumed_after: list[float] = []
        self.resume_failed = 0
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    async def online(self) -> None:
        async with self.http.post(
            "/v1/sessions", json={"username": self.user, "password": PASSWORD}
        ) as response:
            assert response.status == 201, await response.text()
            self.headers = {"Authorization": f"Bearer {(await response.json())['token']}"}
        async with self.http.post(
            "/v1/subscriptions", json={"services": ["call"]}, headers=self.headers
        ) as response:
            assert response.status == 201, await response.text()
            self.sub = (await response.json())["subscription_id"]
        ws = await self._connect(resume=False)
        self._reader = asyncio.create_task(self._read(ws))

    async def _connect(self, resume: bool) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect("/v1/notifications", headers=self.headers)
        hello: dict[str, Any] = {"type": "hello", "subscription_id": self.sub}
        if resume:
            hello["last_seq"] = self.last_seq
        await ws.send_json(hello)
        welcome = json.loads((await ws.receive(timeout=10)).data)
        assert welcome["type"] == "welcome", welcome
        if not welcome["resumed"]:
            if resume:
                self.resume_failed += 1
            self.last_seq = welcome["seq"]
        return ws

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not self._closing:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(message.data)
                if frame["type"].startswith("call."):
                    if frame["seq"] != self.last_seq + 1:
                        self.seq_errors += 1
                    self.last_seq = max(self.last_seq, frame["seq"])
                    self.frames.append(frame)
                continue
            if self._closing:
                return
            dropped = time.monotonic()
            while not self._closing:  # back through the proxy, to whichever process answers
                try:
                    ws = await self._connect(resume=True)
                    self.resumed_after.append(time.monotonic() - dropped)
                    break
                except (aiohttp.ClientError, AssertionError, TimeoutError):
                    await asyncio.sleep(0.05)

    async def request(self, method: str, path: str, body: Any = None) -> int:
        try:
            async with self.http.request(method, path, json=body, headers=self.headers) as response:
                await response.read()
                return response.status
        except aiohttp.ClientError:
            return 0  # cut by the kill: no answer

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.http.close()


async def _connected_call(caller: Device, callee: Device) -> str:
    async with caller.http.post(
        "/v1/calls", json={"to": callee.user, "sdp": SDP_OFFER}, headers=caller.headers
    ) as response:
        assert response.status == 201, await response.text()
        call_id = str((await response.json())["id"])
    for _ in range(200):
        status = await callee.request("POST", f"/v1/calls/{call_id}/answer", {"sdp": SDP_ANSWER})
        if status == 200:
            return call_id
        await asyncio.sleep(0.02)  # the incoming call is still on its way
    raise RuntimeError("the callee could not answer")


async def websockets_per_process(urls: list[str]) -> list[int]:
    counts = []
    async with aiohttp.ClientSession() as http:
        for url in urls:
            try:
                async with http.get(f"{url}/v1/metrics") as response:
                    text = await response.text()
                found = re.search(r"^softphone_websocket_connections (\d+)", text, re.M)
                counts.append(int(found.group(1)) if found else 0)
            except aiohttp.ClientError:
                counts.append(-1)
    return counts


async def kill_under_load(
    proxy_url: str, servers: list[Any], pairs: list[tuple[str, str]], seconds: float
) -> dict[str, Any]:
    devices = [(Device(proxy_url, a), Device(proxy_url, b)) for a, b in pairs]
    try:
        for caller, callee in devices:
            await caller.online()
            await callee.online()
        calls = [await _connected_call(caller, callee) for caller, callee in devices]
        sent: list[set[int]] = [set() for _ in devices]
        unanswered: list[set[int]] = [set() for _ in devices]
        stop = time.monotonic() + seconds

        async def talk(index: int) -> None:
            caller, _ = devices[index]
            counter = 0
            while time.monotonic() < stop:
                counter += 1
                body = {"digits": str(counter), "duration_ms": 40}
                status = await caller.request("POST", f"/v1/calls/{calls[index]}/dtmf", body)
                if status == 200:
                    sent[index].add(counter)
                elif status == 0:
                    unanswered[index].add(counter)
                await asyncio.sleep(0.02)

        async def killer() -> int:
            await asyncio.sleep(seconds / 3)
            counts = await websockets_per_process([s.url for s in servers])
            victim = counts.index(max(counts))
            servers[victim].kill()
            progress(f"cluster: SIGKILL of process {victim + 1} holding {counts[victim]} sockets")
            return counts[victim]

        kill = asyncio.create_task(killer())
        await asyncio.gather(*(talk(i) for i in range(len(devices))))
        sockets_killed = await kill
        await asyncio.sleep(2.0)  # what is in flight arrives
        lost = duplicated = extra = 0
        for index, (_, callee) in enumerate(devices):
            got = Counter(
                int(f["digits"])
                for f in callee.frames
                if f["type"] == "call.dtmf" and f["call_id"] == calls[index]
            )
            duplicated += sum(n - 1 for n in got.values() if n > 1)
            lost += len(sent[index] - set(got))
            extra += len(set(got) - sent[index])
        resumes = [t for d in (x for pair in devices for x in pair) for t in d.resumed_after]
        return {
            "pairs": len(devices),
            "load_s": seconds,
            "notifications_owed": sum(len(s) for s in sent),
            "lost": lost,
            "duplicated": duplicated,
            "unanswered_requests": sum(len(u) for u in unanswered),
            "unanswered_but_delivered": extra,
            "seq_gaps_or_repeats": sum(d.seq_errors for pair in devices for d in pair),
            "clients_resumed": len(resumes),
            "resume_failed": sum(d.resume_failed for pair in devices for d in pair),
            "resume_s_p50": round(statistics.median(resumes), 3) if resumes else None,
            "resume_s_max": round(max(resumes), 3) if resumes else None,
            "sockets_on_the_killed_process": sockets_killed,
            "killed_after_s": round(seconds / 3, 1),
        }
    finally:
        for pair in devices:
            for device in pair:
                await device.close()


async def idle_memory(proxy_url: str, servers: list[Any], users: list[str]) -> dict[str, Any]:
    """RSS per process before and after one idle websocket per user (spread by HAProxy)."""
    pids = [s.proc.pid for s in servers if s.proc is not None]
    before = [rss_mb(pid) for pid in pids]
    devices = [Device(proxy_url, user) for user in users]
    try:
        for start in range(0, len(devices), 20):
            await asyncio.gather(*(d.online() for d in devices[start : start + 20]))
        await asyncio.sleep(1.0)
        after = [rss_mb(pid) for pid in pids]
        counts = await websockets_per_process([s.url for s in servers if s.proc is not None])
        per_1000 = [
            round(1000 * (a - b) / c, 1) if c > 0 else None
            for a, b, c in zip(after, before, counts, strict=True)
        ]
        return {"websockets": len(devices), "per_process": counts, "mb_per_1000": per_1000}
    finally:
        for device in devices:
            await device.close()
