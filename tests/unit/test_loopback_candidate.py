"""A machine whose only interface is loopback still gets a host candidate (127.0.0.1), so calls
on it (the embedded echo contact) can connect; with any other address, loopback stays out."""

from __future__ import annotations

import aioice.ice
import ifaddr
import pytest

import softphone.engine.peer  # noqa: F401  (installs the fallback)


def adapters(*ips: str) -> list[ifaddr.Adapter]:
    return [
        ifaddr.Adapter(name=f"if{i}", nice_name=f"if{i}", ips=[ifaddr.IP(ip, 8, f"if{i}")])
        for i, ip in enumerate(ips)
    ]


def test_only_loopback_offers_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: adapters("127.0.0.1"))
    assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]


def test_another_address_keeps_loopback_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: adapters("127.0.0.1", "192.0.2.7"))
    assert aioice.ice.get_host_addresses(True, False) == ["192.0.2.7"]


def test_ipv6_only_gathering_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: adapters("127.0.0.1"))
    assert aioice.ice.get_host_addresses(False, True) == []
