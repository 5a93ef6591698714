"""The demo page over https/wss: a server with a certificate from a CA made in the test,
Chromium trusting exactly that certificate's key (--ignore-certificate-errors-spki-list pins it;
any other certificate is still refused), two pages call each other. Browsers give a page the
camera and microphone only in a secure context, which is what TLS in the server is for."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from softphone.config import parse_config
from softphone.server.runner import RunningServer, start_server
from softphone.server.services import SERVICES
from tests.conftest import seed_users
from tests.server.test_ca import TestCA
from tests.web.conftest import CHROMIUM, FLAGS, require_chromium
from tests.web.test_pages import call_id, login, media_flows, row, wait_state


def spki_pin(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
async def tls_setup(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, str]]:
    ca = TestCA(tmp_path / "ca")
    files = ca.issue("127.0.0.1")
    config = parse_config(f"""
[server]
data_dir = "{tmp_path}"
tls_cert_file = "{files.cert}"
tls_key_file = "{files.key}"
[rate_limits]
login_per_minute = 1000
""")
    server = await start_server(config, host="127.0.0.1", port=0)
    seed_users(server.app[SERVICES].store)
    yield server, spki_pin(files.cert)
    await server.stop()


async def launch(pw: Any, pin: str) -> Any:
    return await pw.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*FLAGS, f"--ignore-certificate-errors-spki-list={pin}"],
        timeout=30_000,
    )


async def test_two_pages_call_over_https_and_wss(tls_setup: tuple[RunningServer, str]) -> None:
    require_chromium()
    from playwright.async_api import async_playwright

    server, pin = tls_setup
    assert server.url.startswith("https://")
    async with async_playwright() as pw:
        browser = await launch(pw, pin)
        try:
            alice, _ = await login(browser, server, "alice")
            bob, _ = await login(browser, server, "bob")
            assert await alice.evaluate("window.isSecureContext") is True
            assert await alice.evaluate("location.protocol") == "https:"
            await alice.fill("#callee", "bob")
            await alice.click("#make-call")
            await row(bob).locator("button.answer").click()
            await wait_state(bob, "Connected")
            await wait_state(alice, "Connected")
            await media_flows(alice, await call_id(alice), False)
            await row(alice).locator("button.end").click()
            await wait_state(bob, "Ended")
        finally:
            await browser.close()


async def test_a_certificate_the_browser_does_not_trust_is_refused(
    tls_setup: tuple[RunningServer, str], tmp_path: Path
) -> None:
    require_chromium()
    from playwright.async_api import Error, async_playwright

    server, _ = tls_setup
    other = TestCA(tmp_path / "other").issue("127.0.0.1", stem="unrelated")
    async with async_playwright() as pw:
        browser = await launch(pw, spki_pin(other.cert))  # pins some other key
        try:
            page = await (await browser.new_context()).new_page()
            with pytest.raises(Error, match="ERR_CERT"):
                await page.goto(f"{server.url}/web/")
        finally:
            await browser.close()
