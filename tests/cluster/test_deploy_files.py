"""The deployment files under deploy/ are what the code and HAProxy accept."""

from __future__ import annotations

import subprocess
from pathlib import Path

from softphone.config import load_config
from tests.cluster.instances import require

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_config_parses_and_names_a_shared_store_and_bus() -> None:
    config = load_config(DEPLOY / "config.toml")
    assert config.store.url.startswith("postgresql://") and "@" in config.store.url
    assert ":" not in config.store.url.split("//")[1].split("@")[0]  # no password in the URL
    assert config.bus.url.startswith("redis://")
    assert config.server.trusted_proxies == ["127.0.0.1"]


def test_haproxy_accepts_its_config() -> None:
    haproxy = require("HAProxy", "/usr/sbin/haproxy")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert "option httpchk GET /v1/health" in text and "timeout tunnel" in text


def test_every_server_unit_runs_softphone_serve_with_the_shared_config() -> None:
    unit = (DEPLOY / "systemd" / "softphone@.service").read_text()
    assert "softphone serve --port %i" in unit
    assert "SOFTPHONE_CONFIG=/etc/softphone/config.toml" in unit
    target = (DEPLOY / "systemd" / "softphone.target").read_text()
    assert target.count(".service") == 3 and "softphone@8483.service" in target
    redis = (DEPLOY / "redis" / "softphone.conf").read_text()
    assert "appendonly yes" in redis  # the seqs must survive a Redis restart
