"""The real `softphone` command in subprocesses: users, tokens, serve, help."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from softphone.server.passwords import verify_password
from softphone.server.store import Store
from softphone.server.tokens import parse_key, verify_token


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "softphone", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        timeout=60,
    )


def test_user_lifecycle(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    env = {"SOFTPHONE_PASSWORD": "first password"}
    assert run("user", *data, "add", "alice", env=env).returncode == 0
    assert run("user", *data, "add", "desk", "--allow-anonymous", env=env).returncode == 0
    again = run("user", *data, "add", "alice", env=env)
    assert again.returncode == 1 and "exists already" in again.stderr
    listing = run("user", *data, "list").stdout
    assert "alice" in listing and "desk" in listing and "accepts anonymous" in listing
    assert (
        run(
            "user", *data, "passwd", "alice", env={"SOFTPHONE_PASSWORD": "second password"}
        ).returncode
        == 0
    )
    store = Store(tmp_path / "server.sqlite3")
    user = store.get_user("alice")
    assert user is not None and verify_password("second password", user.password_hash)
    assert "first password" not in (tmp_path / "server.sqlite3").read_bytes().decode("latin-1")
    store.close()
    assert (
        run("user", *data, "passwd", "alice", "--keep-password", "--allow-anonymous").returncode
        == 0
    )
    assert "alice  (since" in run("user", *data, "list").stdout
    assert run("user", *data, "remove", "alice").returncode == 0
    missing = run("user", *data, "remove", "alice")
    assert missing.returncode == 1 and "no user named" in missing.stderr


def test_password_never_taken_from_arguments_or_a_missing_terminal(tmp_path: Path) -> None:
    result = run("user", "--data-dir", str(tmp_path), "add", "bob", stdin="")
    assert result.returncode == 2 and "SOFTPHONE_PASSWORD" in result.stderr
    short = run(
        "user", "--data-dir", str(tmp_path), "add", "bob", env={"SOFTPHONE_PASSWORD": "short"}
    )
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert run("user", "--data-dir", str(tmp_path), "list").stdout.startswith("no users yet")


@pytest.mark.parametrize("fmt", ["ecb", "cbc", "v2"])
def test_token_command(tmp_path: Path, fmt: str) -> None:
    key_file = tmp_path / "realm.key"
    generated = run("token", "--generate-key", "--format", fmt)
    assert generated.returncode == 0
    key_file.write_text(generated.stdout)
    result = run(
        "token",
        "--realm",
        "demo",
        "--account",
        "desk",
        "--from",
        "guest",
        "--to",
        "desk",
        "--format",
        fmt,
        "--key-file",
        str(key_file),
    )
    assert result.returncode == 0, result.stderr
    tokens = json.loads(result.stdout)
    assert set(tokens) == {"realm", "accountToken", "fromToken", "toToken", "caller", "callee"}
    key = parse_key(fmt, key_file.read_text())  # type: ignore[arg-type]
    assert verify_token(fmt, key, "demo", "to", tokens["toToken"]).identity == "desk"  # type: ignore[arg-type]
    via_env = run(
        "token",
        "--realm",
        "demo",
        "--account",
        "desk",
        "--from",
        "guest",
        "--to",
        "desk",
        "--format",
        fmt,
        env={"SOFTPHONE_TOKEN_KEY": key_file.read_text()},
    )
    assert via_env.returncode == 0


def test_token_command_errors(tmp_path: Path) -> None:
    no_key = run("token", "--realm", "r", "--account", "a", "--from", "f", "--to", "t")
    assert no_key.returncode == 2 and "--key-file" in no_key.stderr
    (tmp_path / "bad.key").write_text("tooshort")
    bad = run(
        "token",
        "--realm",
        "r",
        "--account",
        "a",
        "--from",
        "f",
        "--to",
        "t",
        "--format",
        "ecb",
        "--key-file",
        str(tmp_path / "bad.key"),
    )
    assert bad.returncode == 2 and "tooshort" not in bad.stderr
    missing = run("token", "--realm", "r")
    assert missing.returncode == 2 and "--account" in missing.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "softphone",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/v1/health", timeout=2
                ) as response:
                    assert json.load(response)["status"] == "ok"
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert f"listening on http://127.0.0.1:{port}" in out and "stopping" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 1 and "softphone serve:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [[], ["serve"], ["user"], ["token"]])
def test_help_has_examples(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0 and "examples:" in result.stdout


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--to", "echo"], "", "--to, --from and --token-* need --anonymous"),
        (["--anonymous"], "", "--anonymous needs --to CALLEE"),
        (["--anonymous", "--token-file", "/nonexistent.json"], "", "no such file"),
        (["--server", "http://127.0.0.1:9"], "", "give --user NAME"),
        ([], '[client]\nvideo = "yes"\n', ":2: key 'client.video': Expected `bool`"),
        ([], "[client]\nnope = 1\n", ":2: key 'client.nope': unknown key"),
        (["--camera", "webcam"], "", "--camera webcam: must be \"pattern\""),
        ([], '[client]\ncamera = "webcam"\n', ":2: key 'client.camera': must be \"pattern\""),
    ],
)
def test_the_softphone_refuses_bad_arguments_and_config_before_the_tui(
    tmp_path: Path, args: list[str], config: str, message: str
) -> None:
    """Exit status 2 and one line naming what to fix; the TUI never starts (no escape codes)."""
    config_file = tmp_path / "softphone.toml"
    config_file.write_text(config)
    result = run("--config", str(config_file), *args, stdin="")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "\x1b[" not in result.stdout


def test_the_softphone_never_takes_a_password_argument(tmp_path: Path) -> None:
    result = run("--server", "http://127.0.0.1:9", "--user", "alice", "--password=x")
    assert result.returncode == 2 and "unrecognized arguments: --password=x" in result.stderr


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["serve", "--bogus"], "usage: softphone serve "),
        (["user", "list", "--bogus"], "usage: softphone user list "),
        (["token", "--bogus"], "usage: softphone token "),
        (["--bogus"], "usage: softphone [-h]"),
    ],
)
def test_a_bad_argument_shows_the_usage_of_its_subcommand(args: list[str], usage: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(usage), result.stderr
    assert "unrecognized arguments: --bogus" in result.stderr


def test_an_empty_user_list_says_so(tmp_path: Path) -> None:
    result = run("user", "--data-dir", str(tmp_path), "list")
    assert result.returncode == 0
    assert result.stdout == "no users yet (add one with: softphone user add NAME)\n"


def test_a_busy_port_is_explained_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "--port N" in result.stderr and "Errno" not in result.stderr


def test_token_warns_when_its_ttl_outlives_what_the_server_accepts(tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    assert run("token", "--generate-key", "--format", "v2").returncode == 0
    key.write_text(run("token", "--generate-key", "--format", "v2").stdout)
    config = tmp_path / "softphone.toml"
    config.write_text("[anonymous]\ntoken_max_age = 60\nclock_skew = 5\n")
    common = ["--config", str(config), "token", "--realm", "r", "--account", "desk"]
    common += ["--from", "guest", "--to", "desk", "--key-file", str(key)]
    long = run(*common, "--ttl", "600")
    assert long.returncode == 0 and json.loads(long.stdout)["realm"] == "r"
    assert "--ttl 600 is longer than the server accepts" in long.stderr
    assert "older than 65 s" in long.stderr
    short = run(*common, "--ttl", "60")
    assert short.returncode == 0 and short.stderr == ""
