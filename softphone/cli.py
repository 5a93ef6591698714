"""Command line: argument parsing and subcommands only."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from softphone import __version__
from softphone.config import (
    CAMERA_SPECS,
    RING_DEVICE_SPECS,
    Config,
    ConfigError,
    key_location,
    load_config,
    resolve_config_path,
    valid_camera,
    valid_ring_device,
)

PASSWORD_ENV = "SOFTPHONE_PASSWORD"
TOKEN_KEY_ENV = "SOFTPHONE_TOKEN_KEY"
EXIT_USAGE = 2

EPILOG = """examples:
  softphone                                    the terminal softphone (embedded server + echo)
  softphone --server http://pbx:8480 --user alice
  softphone --anonymous --to echo              an anonymous call (embedded server)
  softphone --anonymous --server URL --token-file tokens.json
  softphone serve                              run the server on 127.0.0.1:8480
  softphone serve --host 0.0.0.0 --port 8443   listen on every interface
  softphone user add alice                     add a user (password prompted)
  SOFTPHONE_PASSWORD=... softphone user add desk --allow-anonymous
  softphone token --realm demo --account desk --from guest --to desk --key-file key.txt
  softphone devices                            list audio and video devices
"""


class Fail(Exception):
    """A user-facing failure: print the message and exit with the code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softphone",
        description="A terminal softphone and its signaling server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"softphone {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $SOFTPHONE_CONFIG, then the user config directory)",
    )
    tui = parser.add_argument_group("the terminal softphone (no COMMAND)")
    tui.add_argument("--server", metavar="URL", help="server to log in to (default: embedded)")
    tui.add_argument("--user", metavar="NAME", help="who to log in as")
    tui.add_argument("--video", action="store_true", default=None, help="offer video on calls")
    tui.add_argument("--audio-in", metavar="SPEC", help="microphone (see softphone devices)")
    tui.add_argument("--audio-out", metavar="SPEC", help="speaker (see softphone devices)")
    tui.add_argument(
        "--ring-device",
        metavar="SPEC",
        help="where incoming calls ring: a speaker spec, or none (default: the speaker's device)",
    )
    tui.add_argument(
        "--camera",
        metavar="SPEC",
        help="what video calls send: pattern (default), default, /dev/videoN or N",
    )
    tui.add_argument("--log-file", metavar="PATH", help="log file (also native stderr noise)")
    anon = parser.add_argument_group("anonymous calls (no login)")
    anon.add_argument("--anonymous", action="store_true", help="place an anonymous call at start")
    anon.add_argument("--to", metavar="CALLEE", help="who the anonymous call goes to")
    anon.add_argument("--from", dest="from_", metavar="CALLER", help="who you say you are")
    tokens = anon.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-file", metavar="FILE", help="token mode: the JSON `softphone token` prints"
    )
    tokens.add_argument("--token-url", metavar="URL", help="token mode: fetch that JSON from URL")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the signaling server",
        description="Run the signaling server in the foreground until SIGINT or SIGTERM.",
        epilog="examples:\n  softphone serve\n  softphone serve --port 9000 --data-dir /srv/sp",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config: 8480)")
    serve.add_argument("--data-dir", help="where the database lives")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    db = commands.add_parser(
        "db",
        help="the server's database schema",
        description="Bring the configured store's schema ([store] url, or the SQLite file in the "
        "data dir) to this version's migrations, or show where it is. `softphone serve` "
        "migrates by itself; this is for doing it before a deploy.",
        epilog="examples:\n  softphone db migrate\n  softphone db status",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    db.add_argument("action", choices=["migrate", "status"])
    db.add_argument("--data-dir", help="where the SQLite database lives")

    user = commands.add_parser(
        "user",
        help="manage accounts",
        description=f"Manage accounts in the server's database. Passwords are prompted, or read "
        f"from ${PASSWORD_ENV}; never given as arguments.",
        epilog="examples:\n  softphone user add alice\n  softphone user add desk "
        "--allow-anonymous\n  softphone user list\n  softphone user passwd alice\n"
        "  softphone user remove alice",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    user.add_argument("--data-dir", help="where the database lives")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument(
        "--allow-anonymous", action="store_true", help="accept anonymous calls to this account"
    )
    actions.add_parser("list", help="list users")
    remove = actions.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    passwd = actions.add_parser("passwd", help="change a password or the anonymous setting")
    passwd.add_argument("name")
    group = passwd.add_mutually_exclusive_group()
    group.add_argument(
        "--allow-anonymous",
        dest="allow_anonymous",
        action="store_true",
        default=None,
        help="accept anonymous calls",
    )
    group.add_argument(
        "--deny-anonymous",
        dest="allow_anonymous",
        action="store_false",
        help="refuse anonymous calls",
    )
    passwd.add_argument(
        "--keep-password", action="store_true", help="change only the anonymous setting"
    )

    commands.add_parser(
        "devices",
        help="list audio and video devices",
        description="List the audio devices PortAudio sees (by readable name, with the index "
        "and channel counts) and the video devices. Names and indexes are what "
        "--audio-in / --audio-out accept; the video devices are what --camera accepts.",
        epilog="examples:\n  softphone devices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    token = commands.add_parser(
        "token",
        help="issue anonymous-call tokens",
        description=f"Print one JSON object with a fresh token set for an anonymous call. The "
        f"realm key is read from --key-file or ${TOKEN_KEY_ENV}.",
        epilog="examples:\n  softphone token --realm demo --account desk --from guest --to desk "
        "--key-file key.txt\n  softphone token --generate-key --format v2 > key.txt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token.add_argument("--realm")
    token.add_argument("--account", help="the account the tokens are issued for")
    token.add_argument("--from", dest="caller", help="the anonymous caller's identity")
    token.add_argument("--to", dest="callee", help="the account to call")
    token.add_argument("--format", choices=["ecb", "cbc", "v2"], default="v2")
    token.add_argument("--ttl", type=int, default=60, help="v2 lifetime in seconds")
    token.add_argument("--key-file", help="file holding the realm key")
    token.add_argument(
        "--generate-key", action="store_true", help="print a new random key for --format and exit"
    )
    return parser


def _config(args: argparse.Namespace) -> Config:
    try:
        return load_config(resolve_config_path(args.config))
    except ConfigError as exc:
        raise Fail(f"softphone: {exc}", EXIT_USAGE) from exc


def _with_data_dir(config: Config, data_dir: str | None) -> Config:
    if data_dir:
        config.server.data_dir = data_dir
    return config


def _read_password(name: str) -> str:
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise Fail(f"softphone: no terminal to prompt on; set ${PASSWORD_ENV}", EXIT_USAGE)
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise Fail("softphone: passwords differ; nothing changed")
    if len(password) < 8:
        raise Fail("softphone: passwords need at least 8 characters; nothing changed")
    return password


def cmd_db(args: argparse.Namespace) -> int:
    from softphone.server.store_open import run_db_command

    config = _with_data_dir(_config(args), args.data_dir)
    try:
        print(run_db_command(config, args.action))
    except (OSError, ValueError) as exc:
        raise Fail(f"softphone db {args.action}: {exc}") from exc
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from softphone.server.runner import serve_forever

    config = _with_data_dir(_config(args), args.data_dir)
    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve_forever(config))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            where = f"{config.server.host}:{config.server.port}"
            raise Fail(
                f"softphone serve: port {config.server.port} is already in use ({where}): "
                "another program listens there, perhaps another softphone serve. Stop it, or "
                "pick another port with --port N (or [server] port in the config)."
            ) from exc
        raise Fail(f"softphone serve: {exc}") from exc
    except ValueError as exc:
        raise Fail(f"softphone serve: {exc}") from exc
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from softphone.server.accounts import NAME_RULE, AccountError, Accounts, valid_name

    config = _with_data_dir(_config(args), args.data_dir)
    with Accounts(config) as accounts:
        try:
            if args.action == "list":
                users = accounts.list()
                if not users:
                    print("no users yet (add one with: softphone user add NAME)")
                for user in users:
                    anonymous = "  accepts anonymous calls" if user.allow_anonymous else ""
                    created = time.strftime("%Y-%m-%d", time.localtime(user.created_at))
                    print(f"{user.name}  (since {created}){anonymous}")
                return 0
            if args.action == "add":
                if not valid_name(args.name):  # before the password prompt
                    raise Fail(f"softphone: {NAME_RULE}", EXIT_USAGE)
                if accounts.get(args.name) is not None:
                    raise AccountError(f"user {args.name!r} exists already")
                accounts.add(
                    args.name, _read_password(args.name), allow_anonymous=args.allow_anonymous
                )
                print(f"added {args.name}")
                return 0
            if accounts.get(args.name) is None:
                raise AccountError(f"no user named {args.name!r}")
            if args.action == "remove":
                accounts.remove(args.name)
                print(f"removed {args.name}")
                return 0
            password = None if args.keep_password else _read_password(args.name)
            accounts.update(args.name, password=password, allow_anonymous=args.allow_anonymous)
            print(f"updated {args.name}")
            return 0
        except AccountError as exc:
            raise Fail(f"softphone: {exc}") from exc


def cmd_token(args: argparse.Namespace) -> int:
    from softphone.server.tokens import generate_key, issue_token_set, parse_key

    if args.generate_key:
        print(generate_key(args.format))
        return 0
    missing = [
        flag
        for flag, value in (
            ("--realm", args.realm),
            ("--account", args.account),
            ("--from", args.caller),
            ("--to", args.callee),
        )
        if not value
    ]
    if missing:
        raise Fail(f"softphone token: missing {', '.join(missing)}", EXIT_USAGE)
    if args.key_file:
        try:
            material = Path(args.key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise Fail(f"softphone token: cannot read {args.key_file}: {exc.strerror}") from exc
    elif TOKEN_KEY_ENV in os.environ:
        material = os.environ[TOKEN_KEY_ENV]
    else:
        raise Fail(f"softphone token: give --key-file or set ${TOKEN_KEY_ENV}", EXIT_USAGE)
    try:
        key = parse_key(args.format, material)
    except ValueError as exc:
        raise Fail(f"softphone token: {exc}", EXIT_USAGE) from exc
    accepted = _accepted_token_age(args)
    if args.ttl > accepted:
        print(
            f"softphone token: warning: --ttl {args.ttl} is longer than the server accepts: "
            f"tokens older than {accepted} s are refused ([anonymous] token_max_age + "
            "clock_skew in the config); these expire then, whatever --ttl says.",
            file=sys.stderr,
        )
    tokens = issue_token_set(
        args.format,
        key,
        args.realm,
        account=args.account,
        caller=args.caller,
        callee=args.callee,
        ttl=args.ttl,
    )
    print(json.dumps(tokens))
    return 0


def _accepted_token_age(args: argparse.Namespace) -> int:
    """How old a token the server of this config accepts, in seconds (the default config's
    when there is no config file)."""
    try:
        anonymous = _config(args).anonymous
    except Fail:
        from softphone.config import AnonymousSection

        anonymous = AnonymousSection()
    return int(anonymous.token_max_age + anonymous.clock_skew)


def cmd_devices(args: argparse.Namespace) -> int:
    # Imported here so that the server's commands never load the media stack.
    from softphone.media.devices import (
        last_device_problem,
        list_audio_devices,
        list_video_devices,
        portaudio_available,
    )

    ok, detail = portaudio_available()
    print(f"Audio ({detail.split(',')[0]}):" if ok else "Audio: unavailable")
    devices = list_audio_devices() if ok else []
    for device in devices:
        roles = [
            role
            for role, flag in (
                ("default input", device.default_input),
                ("default output", device.default_output),
            )
            if flag
        ]
        extra = f"  [{', '.join(roles)}]" if roles else ""
        if device.spec:  # a sound server's sink or source: chosen by this spec
            way = "input" if device.max_input_channels else "output"
            print(f"  {device.spec}  ({way}, {device.host_api}){extra}")
            continue
        print(
            f"  {device.index:>3}  {device.name}  ({device.max_input_channels} in, "
            f"{device.max_output_channels} out, {device.host_api}){extra}"
        )
    if not devices:
        print(f"  none: {detail if not ok else last_device_problem()}")
        print("  Calls still work: audio falls back to silence and the null device.")
    print(
        "  Also: --audio-in tone, tone:HZ, silence or wav:PATH; --audio-out null or wav:PATH; "
        "default for the system's."
    )
    print("Video:")
    cameras = list_video_devices()
    for path in cameras:
        print(f"  {path}")
    if not cameras:
        print("  none: no /dev/video* camera; video calls send a moving test pattern instead.")
    return 0


def _tui_password(config: Config, server_url: str, user: str) -> str | None:
    if not server_url:
        return None  # the embedded default keeps its own random passwords
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV]
    if config.client.password_file:
        path = Path(config.client.password_file).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise Fail(f"softphone: cannot read {path}: {exc.strerror}", EXIT_USAGE) from exc
    if not sys.stdin.isatty():
        raise Fail(f"softphone: no terminal to prompt on; set ${PASSWORD_ENV}", EXIT_USAGE)
    return getpass.getpass(f"password for {user} on {server_url}: ")


def _check_audio(spec: str, kind: str, flag: str = "", special: str = "") -> None:
    """Refuse a device that is not there before the TUI starts, naming the ones that are.
    "default" is always accepted: with no sound card the TUI says it sends silence. `flag`:
    where the spec came from, for the message (default: --audio-in / --audio-out); `special`:
    the valid specs that are not devices."""
    head = spec.strip().partition(":")[0]
    if spec.strip() in ("default", "silence", "null") or head == "tone":
        return
    from softphone.media.audio import check_sink, check_source
    from softphone.media.devices import list_audio_devices
    from softphone.media.errors import MediaUnavailable

    try:
        (check_source if kind == "input" else check_sink)(spec)
    except (MediaUnavailable, ValueError) as exc:
        way = "max_input_channels" if kind == "input" else "max_output_channels"
        there = [d.spec or d.name for d in list_audio_devices() if getattr(d, way) > 0]
        special = special or (
            "tone, tone:HZ, silence, wav:PATH" if kind == "input" else "null, wav:PATH"
        )
        valid = ", ".join(repr(x) for x in ["default", *there]) + f"; or {special}"
        flag = flag or ("--audio-in" if kind == "input" else "--audio-out")
        raise Fail(
            f"softphone: {flag} {spec}: {str(exc).rstrip('.')}. Valid: {valid}", EXIT_USAGE
        ) from exc


def _ring_device(args: argparse.Namespace, configured: str) -> str:
    """--ring-device, else [client] ring_device (already checked for its form when read),
    checked like --audio-out: a device that is not there stops the start, naming the ones
    that are. "" and "none" need no device."""
    if args.ring_device is None:
        spec = configured
        path = resolve_config_path(args.config)
        where = "key 'client.ring_device'"
        where = f"{key_location(path, ['client', 'ring_device'])}: {where}" if path else where
    else:
        spec = args.ring_device
        where = "--ring-device"
        if not valid_ring_device(spec):
            raise Fail(f"softphone: --ring-device {spec}: must be {RING_DEVICE_SPECS}", EXIT_USAGE)
    if spec not in ("", "none"):
        _check_audio(spec, "output", where, "none, null, wav:PATH")
    return spec


def _check_ring_sound(sound: str, config: str | None) -> None:
    """A [client] ring_sound file that cannot be read stops the start, naming file:line."""
    if sound == "tone":
        return
    from softphone.media.errors import MediaUnavailable
    from softphone.media.ring import open_ring_source

    try:
        open_ring_source(sound)
    except (MediaUnavailable, ValueError) as exc:
        path = resolve_config_path(config)
        where = key_location(path, ["client", "ring_sound"]) if path else "[client]"
        message = f"softphone: {where}: key 'client.ring_sound': {str(exc).rstrip('.')}"
        raise Fail(message, EXIT_USAGE) from exc


def _tls_client_options(config: Config) -> dict[str, object]:
    """[client] ca_file and the development switch, as the engine's client options."""
    options: dict[str, object] = {}
    if config.client.ca_file:
        options["ca_file"] = config.client.ca_file
    if config.client.insecure_skip_tls_verify_for_development:
        options["insecure_skip_tls_verify_for_development"] = True
    return options


def cmd_tui(args: argparse.Namespace) -> int:
    import gc

    import platformdirs

    # Start-up builds long-lived objects only (modules, the widget tree): collecting cycles
    # among them until the first frame is work for nothing. The app turns the collector back
    # on once it has painted (SoftphoneApp._painted).
    gc.disable()

    config = _config(args)
    client = config.client
    server_url = args.server if args.server is not None else client.server_url
    anonymous = bool(args.anonymous)
    if not anonymous and (args.to or args.from_ or args.token_file or args.token_url):
        raise Fail("softphone: --to, --from and --token-* need --anonymous", EXIT_USAGE)
    if anonymous and not (args.to or args.token_file or args.token_url):
        raise Fail("softphone: --anonymous needs --to CALLEE (or a token source)", EXIT_USAGE)
    if anonymous and args.token_file and not Path(args.token_file).is_file():
        raise Fail(f"softphone: --token-file {args.token_file}: no such file", EXIT_USAGE)
    user = args.user or client.user or ("" if server_url else "me")
    if server_url and not user and not anonymous:
        raise Fail("softphone: give --user NAME (or set [client] user)", EXIT_USAGE)
    camera = args.camera or client.camera  # the config's camera is checked when it is read
    if not valid_camera(camera):
        raise Fail(f"softphone: --camera {camera}: must be {CAMERA_SPECS}", EXIT_USAGE)
    audio_in = args.audio_in or client.audio_in
    audio_out = args.audio_out or client.audio_out
    _check_audio(audio_in, "input")
    _check_audio(audio_out, "output")
    ring_device = _ring_device(args, client.ring_device)
    _check_ring_sound(config.client.ring_sound, args.config)
    password = None if anonymous else _tui_password(config, server_url, user)
    log_file = Path(
        args.log_file
        or client.log_file
        or platformdirs.user_log_path("softphone") / "softphone.log"
    ).expanduser()
    # Private from the start: logging would create it with the umask's mode (often 0644).
    from softphone.server.private_files import private_dir, private_file

    private_file(private_dir(log_file.parent) / log_file.name)
    logging.basicConfig(
        filename=log_file,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # ALSA and PortAudio write to fd 2 directly: send it to the log, never over the TUI.
    log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    saved_stderr = os.dup(2)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    # Textual draws on sys.__stderr__: give it the terminal's fd 2 back, as its own file.
    terminal = open(saved_stderr, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    real_stderr = sys.__stderr__
    sys.__stderr__ = terminal  # type: ignore[misc]
    app = None
    try:
        from softphone.tui.app import SoftphoneApp
        from softphone.tui.options import TuiOptions

        options = TuiOptions(
            server_url=server_url,
            user=user,
            password=password,
            video=client.video if args.video is None else args.video,
            audio_in=audio_in,
            audio_out=audio_out,
            camera=camera,
            ring_device=ring_device,
            ring_sound=client.ring_sound,
            echo_cancellation=client.echo_cancellation,
            noise_suppression=client.noise_suppression,
            auto_gain=client.auto_gain,
            auto_answer=client.auto_answer,
            do_not_disturb=client.do_not_disturb,
            anonymous=anonymous,
            anonymous_to=args.to or "",
            anonymous_from=args.from_ or "",
            token_file=Path(args.token_file).expanduser() if args.token_file else None,
            token_url=args.token_url or "",
            client_options=_tls_client_options(config),
        )
        app = SoftphoneApp(options)
        app.run()
    finally:
        gc.enable()  # if the app stopped before its first frame
        sys.__stderr__ = real_stderr  # type: ignore[misc]
        terminal.close()
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    if app is not None and app.return_code:
        print(f"softphone: stopped by an error; the details are in {log_file}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "db": cmd_db,
    "user": cmd_user,
    "token": cmd_token,
    "devices": cmd_devices,
}


def _usage_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the subcommand (and its action) given, so an error shows its usage rather
    than the top level's."""
    for name in ("command", "action"):
        choice = getattr(args, name, None)
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if choice is None or not subparsers or choice not in subparsers[0].choices:
            break
        parser = subparsers[0].choices[choice]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame the top level: name the subcommand's usage instead
        _usage_of(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command is None:
            return cmd_tui(args)
        return COMMANDS[args.command](args)
    except Fail as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
