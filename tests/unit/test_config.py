"""config.example.toml stays complete and true, and bad config files are reported usefully."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path

import msgspec
import pytest

from softphone.config import Config, ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def _struct_type(annotation: object) -> tuple[type[msgspec.Struct], bool] | None:
    """The Struct a field holds, and whether it is a list of them ([[table]])."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation, False
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, msgspec.Struct):
            return item, True
    return None


def _sections() -> list[tuple[str, type[msgspec.Struct], bool]]:
    sections = []
    for field in msgspec.structs.fields(Config):
        found = _struct_type(field.type)
        assert found is not None, f"Config.{field.name} is not a section"
        sections.append((field.name, *found))
    return sections


def _section_text(text: str, name: str, array: bool) -> str:
    """The lines of one [name] (or commented [[name]]) table, up to the next table."""
    header = rf"^#?[ \t]*\[\[{name}\]\][ \t]*$" if array else rf"^\[{name}\][ \t]*$"
    match = re.search(header, text, re.MULTILINE)
    assert match, f"config.example.toml has no {'[[' if array else '['}{name}] table"
    rest = text[match.end() :]
    nxt = re.search(r"^(?:\[|#[ \t]*\[\[)", rest, re.MULTILINE)
    return rest[: nxt.start()] if nxt else rest


def test_example_parses_to_the_defaults() -> None:
    config = parse_config(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    assert config == Config()
    assert load_config(EXAMPLE) == Config()


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    sections = _sections()
    assert {name for name, _, _ in sections} == {
        "server",
        "store",
        "bus",
        "rate_limits",
        "ice",
        "turn",
        "anonymous",
        "realms",
        "demo",
        "client",
    }
    for name, struct, array in sections:
        body = _section_text(text, name, array)
        for field in msgspec.structs.fields(struct):
            # Realms are a commented-out example, so their keys may be commented too.
            prefix = r"#[ \t]*" if array else ""
            pattern = rf"^{prefix}{re.escape(field.name)}\s*="
            assert re.search(pattern, body, re.MULTILINE), f"{name}.{field.name} is missing"
            # Every key carries a comment on the line above it.
            line = re.search(pattern, body, re.MULTILINE)
            assert line is not None
            before = body[: line.start()].rstrip("\n").splitlines()
            assert before and before[-1].lstrip().startswith("#"), (
                f"{name}.{field.name} has no comment"
            )


def test_example_shows_the_default_of_every_plain_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    defaults = msgspec.to_builtins(Config())
    for name, struct, array in _sections():
        if array:
            continue
        body = _section_text(text, name, array)
        for field in msgspec.structs.fields(struct):
            shown = re.search(rf"^{re.escape(field.name)}\s*=\s*(.+)$", body, re.MULTILINE)
            assert shown is not None
            value = parse_config(f"[{name}]\n{field.name} = {shown.group(1)}\n")
            assert (
                msgspec.to_builtins(getattr(value, name))[field.name] == defaults[name][field.name]
            )


def _error(text: str, source: str = "site.toml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source)
    return str(info.value)


def test_wrong_type_names_file_line_and_key() -> None:
    message = _error('[server]\nhost = "0.0.0.0"\nport = "8480"\n')
    assert message.startswith("site.toml:3: key 'server.port': ")
    assert "int" in message and "str" in message


def test_wrong_type_in_an_array_table() -> None:
    message = _error('[[realms]]\nname = "demo"\nkey_file = "k"\nformat = "rot13"\n')
    assert message.startswith("site.toml:4: key 'realms[0].format': ")


def test_error_in_the_second_array_table_points_at_its_line() -> None:
    text = (
        '[[realms]]\nname = "a"\nkey_file = "k"\nformat = "v2"\n\n'
        '[[realms]]\nname = "b"\nkey_file = "k"\nformat = "rot13"\n'
    )
    assert _error(text).startswith("site.toml:9: key 'realms[1].format': ")


def test_unknown_key_is_named_unknown_with_its_line() -> None:
    message = _error('[server]\nport = 9000\n\n[turn]\nttl = 60\nurl = ["turn:x"]\n')
    assert message.startswith("site.toml:6: key 'turn.url': unknown key")
    assert "config.example.toml" in message


def test_unknown_section_is_reported() -> None:
    message = _error("[servers]\nport = 9000\n")
    assert message.startswith("site.toml:1: key 'servers': unknown key")


def test_out_of_range_value() -> None:
    assert _error("[server]\nring_timeout = 0\n").startswith(
        "site.toml:2: key 'server.ring_timeout': must be greater than 0"
    )
    assert _error("[server]\nport = 70000\n").startswith("site.toml:2: key 'server.port'")


def test_syntax_error_names_the_file() -> None:
    message = _error("[server\nport = 1\n")
    assert message.startswith("site.toml: ")
    assert "line 1" in message


def test_turn_urls_need_a_secret_file() -> None:
    message = _error('[turn]\nurls = ["turn:turn.example.org:3478"]\n')
    assert message.startswith("site.toml:1: key 'turn.secret_file': ")
    assert "secret" in message


def test_duplicate_realm_names() -> None:
    text = '[[realms]]\nname = "a"\nkey_file = "k"\n[[realms]]\nname = "a"\nkey_file = "k"\n'
    assert _error(text).startswith(
        "site.toml:5: key 'realms[1].name': realm name 'a' is used twice"
    )


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load_config(missing)


def test_no_file_means_defaults() -> None:
    assert load_config(None) == Config()


def test_cli_reports_a_bad_file_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nhost = "127.0.0.1"\nport = "eighty"\n', encoding="utf-8")
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "softphone",
            "--config",
            str(bad),
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result
    assert f"{bad}:3: key 'server.port'" in result.stderr
    # Nothing happened before the check: no server started, no database created.
    assert result.stdout == ""
    assert not data_dir.exists()
