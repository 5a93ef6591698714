"""Configuration: TOML files validated into typed structs, with platformdirs locations.

A bad file is reported with its path, the line of the offending key and what to fix, so the
command can exit with status 2 before doing anything else.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Literal

import msgspec
import platformdirs

APP_NAME = "softphone"
CONFIG_ENV = "SOFTPHONE_CONFIG"


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for config sections: unknown keys are errors, not silently ignored."""


class ServerSection(Section):
    host: str = "127.0.0.1"
    port: int = 8480
    data_dir: str = ""
    domain: str = "localhost"
    session_ttl: int = 86400
    subscription_max_expires: int = 86400
    ring_timeout: float = 60.0
    resume_window: float = 30.0
    resume_buffer: int = 1000
    ping_interval: float = 20.0
    max_live_calls_per_account: int = 8
    max_devices_per_user: int = 5
    max_body_bytes: int = 65536
    max_frame_bytes: int = 65536
    # Below HTTP: open connections per client address (trusted proxies exempt; loopback too
    # unless limit_loopback_connections), and what may wait to be sent on one websocket.
    max_connections_per_address: int = 64
    limit_loopback_connections: bool = False
    max_websocket_queue_bytes: int = 1 << 20
    tls_cert_file: str = ""
    tls_key_file: str = ""
    trusted_proxies: list[str] = msgspec.field(default_factory=list)


class StoreSection(Section):
    url: str = ""
    password_file: str = ""
    connect_timeout: float = 5.0
    statement_timeout: float = 5.0


class BusSection(Section):
    url: str = ""
    password_file: str = ""


class RateLimitSection(Section):
    login_per_minute: int = 10
    anonymous_per_minute: int = 30


class IceSection(Section):
    stun_urls: list[str] = msgspec.field(default_factory=list)


class TurnSection(Section):
    urls: list[str] = msgspec.field(default_factory=list)
    secret_file: str = ""
    ttl: int = 86400


class AnonymousSection(Section):
    token_max_age: float = 60.0
    clock_skew: float = 5.0


class RealmSection(Section, kw_only=True):
    name: str
    format: Literal["ecb", "cbc", "v2"] = "v2"
    key_file: str
    accounts: list[str] = msgspec.field(default_factory=list)


class DemoSection(Section):
    enabled: bool = False
    realm: str = ""
    caller: str = "guest"
    callee: str = ""
    account: str = ""


class ClientSection(Section):
    server_url: str = ""
    user: str = ""
    password_file: str = ""
    audio_in: str = "default"
    audio_out: str = "default"
    video: bool = False
    camera: str = "pattern"
    ring_device: str = ""  # where incoming calls ring; "": the speaker's device
    ring_sound: str = "tone"  # what rings: the built-in cadence, or wav:PATH
    echo_cancellation: str = "auto"
    noise_suppression: bool = True
    auto_gain: bool = True
    auto_answer: bool = False
    do_not_disturb: bool = False
    log_file: str = ""
    ca_file: str = ""
    insecure_skip_tls_verify_for_development: bool = False


class Config(Section):
    client: ClientSection = msgspec.field(default_factory=ClientSection)
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    store: StoreSection = msgspec.field(default_factory=StoreSection)
    bus: BusSection = msgspec.field(default_factory=BusSection)
    rate_limits: RateLimitSection = msgspec.field(default_factory=RateLimitSection)
    ice: IceSection = msgspec.field(default_factory=IceSection)
    turn: TurnSection = msgspec.field(default_factory=TurnSection)
    anonymous: AnonymousSection = msgspec.field(default_factory=AnonymousSection)
    realms: list[RealmSection] = msgspec.field(default_factory=list)
    demo: DemoSection = msgspec.field(default_factory=DemoSection)


# [client] echo_cancellation: "auto" cancels echo on microphones (device input) only.
ECHO_CANCELLATION = ("auto", "on", "off")

CAMERA_SPECS = (
    '"pattern" (the moving test pattern), "default" (the first camera), '
    'a V4L2 device such as "/dev/video0", or its number ("0")'
)


def valid_camera(spec: str) -> bool:
    """Whether `spec` names a camera the way the engine's `camera=` option takes it (whether
    that camera exists is found out when a call opens it)."""
    return spec in ("pattern", "default") or spec.isdigit() or spec.startswith("/")


RING_DEVICE_SPECS = (
    '"" (the speaker\'s device), "none" (no ring tone), "default", "null", a sound device '
    'name or index, "pulse:DESCRIPTION" (see softphone devices) or wav:PATH'
)


def valid_ring_device(spec: str) -> bool:
    """Whether `spec` can name a ring device (whether that device exists is checked when the
    softphone starts): an output spec, not a sound source such as "tone"."""
    head = spec.strip().partition(":")[0]
    if spec != spec.strip() or head == "tone" or spec == "wav:":
        return False
    return not (spec.startswith("pulse:") and not spec.removeprefix("pulse:").strip())


class ConfigError(Exception):
    """A config problem, already phrased for the user (file, line, key, what to fix)."""


def default_config_path() -> Path:
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


def default_data_dir() -> Path:
    return platformdirs.user_data_path(APP_NAME)


def resolve_config_path(explicit: str | None) -> Path | None:
    """The file to read: --config, then $SOFTPHONE_CONFIG, then the user config path if present."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    path = default_config_path()
    return path if path.exists() else None


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    try:
        config = msgspec.convert(raw, type=Config, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc, text, source)) from exc
    _check_values(config, text, source)
    return config


_PATH = re.compile(r"`\$((?:\.[A-Za-z_][\w-]*|\[\d+\])*)`")


def _dotted(path: list[str | int]) -> str:
    return ".".join(p if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def _describe(exc: msgspec.ValidationError, text: str, source: str) -> str:
    message = str(exc)
    match = _PATH.search(message)
    # Path parts: names, and ints for the N-th table of an array such as [[realms]].
    path: list[str | int] = []
    for name, index in re.findall(
        r"\.([A-Za-z_][\w-]*)|\[(\d+)\]", match.group(1) if match else ""
    ):
        path.append(name if name else int(index))
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        path.append(unknown.group(1))
        hint = "unknown key; see config.example.toml for the keys that exist"
    else:
        hint = _PATH.sub("", message).replace(" - at", "").strip(" -")
    line = _find_line(text, path)
    where = f"{source}:{line}" if line else source
    return f"{where}: key '{_dotted(path) or '(top level)'}': {hint}"


def key_location(path: Path, keys: list[str | int]) -> str:
    """Where a key of a config file is, for a message about its value found later (a device
    that is not there): "PATH:LINE", or just the path."""
    try:
        line = _find_line(path.read_text(encoding="utf-8"), keys)
    except OSError:
        line = None
    return f"{path}:{line}" if line else str(path)


def _find_line(text: str, path: list[str | int]) -> int | None:
    """Best-effort line of a key: the key inside its table, else the table's header line."""
    if not path:
        return None
    *table, leaf = path
    if isinstance(leaf, int):
        table, leaf = path, ""
    current: list[str | int] = []
    seen: dict[str, int] = {}
    table_line: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^(\[\[?)\s*([^\]]+?)\s*\]", line)
        if header:
            names: list[str | int] = [part.strip() for part in header.group(2).split(".")]
            if header.group(1) == "[[":
                name = ".".join(str(n) for n in names)
                seen[name] = seen.get(name, -1) + 1
                names.append(seen[name])
            current = names
            if current == path:
                return number  # the key is itself a table, e.g. an unknown [section]
            if current == table and table_line is None:
                table_line = number
            continue
        if leaf and current == table and re.match(rf"^{re.escape(leaf)}\s*=", line):
            return number
    return table_line


def _check_values(config: Config, text: str, source: str) -> None:
    def fail(keys: list[str | int], hint: str) -> None:
        line = _find_line(text, keys)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: key '{_dotted(keys)}': {hint}")

    server = config.server
    if not 0 <= server.port <= 65535:
        fail(["server", "port"], "must be between 0 and 65535")
    for name in (
        "session_ttl",
        "ring_timeout",
        "resume_window",
        "ping_interval",
        "max_live_calls_per_account",
        "max_devices_per_user",
        "max_body_bytes",
        "max_frame_bytes",
        "max_connections_per_address",
        "max_websocket_queue_bytes",
        "resume_buffer",
        "subscription_max_expires",
    ):
        if getattr(server, name) <= 0:
            fail(["server", name], "must be greater than 0")
    if bool(server.tls_cert_file) != bool(server.tls_key_file):
        missing = "tls_key_file" if server.tls_cert_file else "tls_cert_file"
        fail(["server", missing], "TLS needs both tls_cert_file and tls_key_file")
    for index, entry in enumerate(server.trusted_proxies):
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            fail(["server", "trusted_proxies"], f"entry {index}: {entry!r} is not an address")
    if config.client.ca_file and config.client.insecure_skip_tls_verify_for_development:
        fail(["client", "ca_file"], "set ca_file or skip verification, not both")
    if config.store.url and not config.store.url.startswith(("postgresql://", "postgres://")):
        fail(["store", "url"], 'must be "" (SQLite) or a postgresql:// URL')
    if config.store.url and re.match(r"^[a-z]+://[^/@]*:[^/@]*@", config.store.url):
        fail(["store", "url"], "must not contain a password; use [store] password_file")
    if config.bus.url and not config.bus.url.startswith(("redis://", "rediss://", "unix://")):
        fail(["bus", "url"], 'must be "" (in-process) or a redis:// URL')
    if config.bus.url and re.match(r"^[a-z]+://[^/@]*:[^/@]*@", config.bus.url):
        fail(["bus", "url"], "must not contain a password; use [bus] password_file")
    if config.bus.url and not config.store.url and not os.environ.get("SOFTPHONE_STORE_URL"):
        fail(["bus", "url"], "several processes need a shared store: set [store] url too")
    for name in ("connect_timeout", "statement_timeout"):
        if getattr(config.store, name) <= 0:
            fail(["store", name], "must be greater than 0")
    if not valid_camera(config.client.camera):
        fail(["client", "camera"], f"must be {CAMERA_SPECS}")
    if not valid_ring_device(config.client.ring_device):
        fail(["client", "ring_device"], f"must be {RING_DEVICE_SPECS}")
    sound = config.client.ring_sound
    if sound != "tone" and not (sound.startswith("wav:") and sound != "wav:"):
        fail(["client", "ring_sound"], 'must be "tone" (440+480 Hz, 2 s on, 4 s off) or wav:PATH')
    if config.client.echo_cancellation not in ECHO_CANCELLATION:
        fail(["client", "echo_cancellation"], 'must be "auto", "on" or "off"')
    if config.turn.urls and not config.turn.secret_file:
        fail(["turn", "secret_file"], "TURN urls are set, so a shared secret file is required")
    names: set[str] = set()
    for index, realm in enumerate(config.realms):
        if realm.name in names:
            fail(["realms", index, "name"], f"realm name {realm.name!r} is used twice")
        names.add(realm.name)
    demo = config.demo
    if demo.enabled:
        if demo.realm not in names:
            fail(["demo", "realm"], "must name a realm of a [[realms]] table when demo is enabled")
        for key in ("callee", "account", "caller"):
            if not getattr(demo, key):
                fail(["demo", key], "must be set when demo is enabled")
