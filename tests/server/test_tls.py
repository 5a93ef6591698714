"""TLS: `softphone serve` with a certificate from a CA made in the test, clients that trust it
(or do not), the loud development switch, and forwarded headers believed only from proxies."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from softphone.client import CertificateError, SignalingClient, events
from softphone.client.tls import INSECURE_WARNING
from softphone.config import Config, ConfigError, parse_config
from softphone.protocol.frames import CallIncoming
from softphone.server.runner import RunningServer
from softphone.server.services import SERVICES
from softphone.server.tls import TlsConfigError
from tests.client.conftest import Clients, Servers
from tests.server.harness import PASSWORD, SDP
from tests.server.test_ca import TestCA


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


def tls_config(data: Path, ca: TestCA, extra: str = "") -> Config:
    files = ca.issue("127.0.0.1")
    return parse_config(f"""
[server]
data_dir = "{data}"
tls_cert_file = "{files.cert}"
tls_key_file = "{files.key}"
{extra}
[rate_limits]
login_per_minute = 1000
""")


@pytest.fixture
async def tls_server(tmp_path: Path, ca: TestCA) -> AsyncIterator[RunningServer]:
    servers = Servers(tls_config(tmp_path / "data", ca))
    yield await servers.start()
    await servers.close()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close()


async def test_a_call_over_https_and_wss_with_the_private_ca(
    tls_server: RunningServer, ca: TestCA, clients: Clients
) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    _, bob_events = await clients.online(tls_server.url, "bob", ca_file=str(ca.ca_file))
    alice, _ = await clients.online(tls_server.url, "alice", ca_file=str(ca.ca_file))
    call = await alice.rest.make_call("bob", SDP)
    incoming = await bob_events.wait_for(
        events.Notification, lambda e: isinstance(e.frame, CallIncoming)
    )
    assert isinstance(incoming.frame, CallIncoming) and incoming.frame.call.id == call.id
    # The notification came over the websocket, which is TLS too: the server holds it.
    assert tls_server.app[SERVICES].hub.connection_count == 2


async def test_plain_http_to_a_tls_port_gets_no_answer(tls_server: RunningServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get(f"http://127.0.0.1:{tls_server.port}/v1/health")


@pytest.mark.parametrize("trust", ["another CA", "system bundle"])
async def test_a_certificate_not_signed_by_the_trusted_ca_is_refused_clearly(
    tls_server: RunningServer, tmp_path: Path, clients: Clients, trust: str
) -> None:
    other = TestCA(tmp_path / "other", "someone else's CA")
    options = {"ca_file": str(other.ca_file)} if trust == "another CA" else {}
    client, _ = clients.user(tls_server.url, "alice", **options)
    await client.start()
    with pytest.raises(CertificateError) as refused:
        await client.wait_connected(5)
    message = str(refused.value)
    assert "not trusted" in message and "certificate verify failed" in message
    assert ("other/ca.pem" in message) == (trust == "another CA")
    assert "ca_file" in message  # says what to change
    assert not client.running  # a refused certificate is not retried
    assert list(tls_server.app[SERVICES].store.sessions(0)) == []  # no password was sent


async def test_skipping_verification_works_only_by_the_development_switch_and_says_so(
    tls_server: RunningServer, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError, match="not both"):
        SignalingClient(
            tls_server.url,
            "alice",
            lambda: PASSWORD,
            ca_file="x.pem",
            insecure_skip_tls_verify_for_development=True,
        )
    with caplog.at_level(logging.WARNING, "softphone.client"):
        client, _ = await clients.online(
            tls_server.url, "alice", insecure_skip_tls_verify_for_development=True
        )
    assert client.connected
    assert INSECURE_WARNING in [r.getMessage() for r in caplog.records]


def test_tls_config_needs_both_files_and_usable_ones(tmp_path: Path, ca: TestCA) -> None:
    with pytest.raises(ConfigError, match="tls_key_file"):
        parse_config('[server]\ntls_cert_file = "/x.pem"\n')
    with pytest.raises(ConfigError, match="trusted_proxies"):
        parse_config('[server]\ntrusted_proxies = ["10.0.0.0/8", "proxy.example"]\n')
    from softphone.server.tls import server_ssl_context

    files = ca.issue()
    with pytest.raises(TlsConfigError, match="does not exist"):
        server_ssl_context(str(tmp_path / "missing.pem"), str(files.key))
    other = ca.issue(stem="other")
    with pytest.raises(TlsConfigError, match="cannot use TLS certificate"):
        server_ssl_context(str(files.cert), str(other.key))  # key of another certificate


async def _login_from(
    session: aiohttp.ClientSession, url: str, forwarded_for: str, user: str
) -> int:
    async with session.post(
        f"{url}/v1/sessions",
        data=json.dumps({"username": user, "password": "wrong password"}),
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    ) as response:
        return response.status


@pytest.mark.parametrize("trusted", [True, False])
async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: bool
) -> None:
    # Per-address login limit: 5 x login_per_minute = 5 attempts a minute from one address.
    proxies = 'trusted_proxies = ["127.0.0.0/8"]' if trusted else ""
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
{proxies}
[rate_limits]
login_per_minute = 1
""")
    servers = Servers(config)
    server = await servers.start()
    try:
        async with aiohttp.ClientSession() as session:
            statuses = [
                await _login_from(session, server.url, "10.1.1.1, 127.0.0.1", f"user{n}")
                for n in range(6)
            ]
            assert statuses == [401] * 5 + [429]
            # Another client behind the proxy has its own allowance only if the proxy is
            # trusted; otherwise the header is noise and everyone is the proxy's address.
            other = await _login_from(session, server.url, "10.2.2.2", "user9")
            assert other == (401 if trusted else 429)
            # A client that writes its own X-Forwarded-For cannot pick a fresh address: the
            # proxy appends the real one, and that right-most untrusted entry is what counts.
            spoofed = await _login_from(session, server.url, "10.9.9.9, 10.1.1.1", "user10")
            assert spoofed == 429
    finally:
        await servers.close()
