"""Start-up and shut-down, run on thread workers (they block: imports, login, the embedded
server). No Textual widgets here: results go back to the app as messages through `post`.

One start-up path for every mode: the embedded server when no server is configured, one
`EngineThread` built from one set of options, then a login or (anonymous mode) the call asked
for at start."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual.message import Message

from softphone.tui.messages import EngineReady, Note
from softphone.tui.options import TuiOptions

if TYPE_CHECKING:
    from softphone.embedded import Embedded
    from softphone.engine import EngineThread
    from softphone.engine.events import EngineCallback

Post = Callable[[Message], object]
Subscriber = Callable[["EngineThread"], "EngineCallback"]


def engine_options(options: TuiOptions) -> dict[str, Any]:
    """What `EngineThread(...)` gets: the media specs, then the caller's extras (tests)."""
    return {
        "audio_in": options.audio_in,
        "audio_out": options.audio_out,
        "camera": options.camera,
        "show_video": options.show_video,
        "echo_cancellation": options.echo_cancellation,
        "noise_suppression": options.noise_suppression,
        "auto_gain": options.auto_gain,
        "ring_device": options.ring_device or None,
        "ring_sound": options.ring_sound,
        **options.engine_options,
    }


def new_engine(options: TuiOptions, subscriber: Subscriber) -> EngineThread:
    from softphone.engine import EngineThread

    engine = EngineThread(**engine_options(options))
    try:
        engine.subscribe(subscriber(engine))
    except BaseException:
        engine.close()
        raise
    return engine


def connect(engine: EngineThread, options: TuiOptions, url: str, user: str, password: str) -> None:
    """Log in in the background: the client retries an unreachable server forever (with
    back-off) and says how it goes in events (connecting, reconnecting in N s, connected, a
    refused password); nothing here waits for the server."""
    secret = password
    engine.start(url, user, lambda: secret, wait=False, **options.client_options)


def start(options: TuiOptions, post: Post, subscriber: Subscriber) -> None:
    """Start everything the options ask for and post `EngineReady` (at once: the connection
    comes in events); raise if it cannot (the worker turns that into a red line)."""
    url, user, password = options.server_url, options.user, options.password or ""
    embedded = None
    if not url:
        from softphone.embedded import start_embedded

        post(Note("No server configured: starting the embedded server…"))
        embedded = start_embedded(
            "me" if options.anonymous else user or "me", options.embedded_data_dir
        )
        url = embedded.url
        if options.anonymous:
            post(Note(f"Embedded server on {url}; 'echo' takes anonymous calls."))
        else:
            user, password = embedded.user, embedded.password
            post(Note(f"Embedded server on {url}: you are {user!r}; the echo bot answers 'echo'."))
    if not options.anonymous and not user:
        raise ValueError("no user name: give --user or set [client] user")

    try:
        engine = new_engine(options, subscriber)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    if not options.anonymous:
        try:
            connect(engine, options, url, user, password)
        except BaseException:
            engine.close()
            if embedded is not None:
                embedded.stop()
            raise
        post(EngineReady(engine, user, url, embedded))
        return
    post(EngineReady(engine, options.anonymous_from or "anonymous", url, embedded, anonymous=True))
    if options.anonymous_to or options.token_file or options.token_url:
        try:
            place_anonymous(engine, options, url, post)
        except Exception as exc:  # refused, unreachable...: say so, stay up for another try
            text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            post(Note(f"Could not place the anonymous call: {text}", True))


def log_in_again(
    old: EngineThread | None,
    options: TuiOptions,
    url: str,
    user: str,
    password: str,
    post: Post,
    subscriber: Subscriber,
    embedded: Embedded | None,
) -> None:
    """A new password (the old one was refused, or the session ended): a fresh engine logs
    in with it. The old engine's calls had ended with its session."""
    if old is not None:
        old.close()
    engine = new_engine(options, subscriber)
    try:
        connect(engine, options, url, user, password)
    except BaseException:
        engine.close()
        raise
    post(EngineReady(engine, user, url, embedded))


def place_anonymous(engine: EngineThread, options: TuiOptions, url: str, post: Post) -> None:
    """The anonymous call asked for at start. Token mode reads or fetches the tokens first."""
    from softphone.protocol.models import TokenCredentials
    from softphone.tui.tokens import TokenSourceError, fetch_tokens, read_token_file

    to = options.anonymous_to
    credentials = None
    caller = options.anonymous_from or None
    if options.token_file is not None or options.token_url:
        try:
            tokens = (
                read_token_file(options.token_file)
                if options.token_file is not None
                else fetch_tokens(options.token_url)
            )
        except TokenSourceError as exc:
            post(Note(f"Cannot place the anonymous call: {exc}", error=True))
            return
        to = to or tokens.callee
        caller = None  # the tokens name the caller; the server reads it from them
        credentials = TokenCredentials(
            tokens.realm, tokens.account_token, tokens.from_token, tokens.to_token
        )
        post(Note(f"Token-based anonymous call to {to} (realm {tokens.realm})."))
    if not to:
        post(Note("No callee: give --to NAME", error=True))
        return
    engine.make_anonymous(
        to,
        credentials,
        from_=caller,
        audio=True,
        video=options.video,
        server_url=url,
        **options.client_options,
    )


def stop(engine: EngineThread | None, embedded: Embedded | None, live: Iterable[str] = ()) -> None:
    """End the live calls (best effort: `close()` ends the rest), close the engine, stop the
    embedded server."""
    if engine is not None:
        for call_id in live:
            with contextlib.suppress(Exception):
                engine.end(call_id)
        engine.close()
    if embedded is not None:
        embedded.stop()


__all__ = [
    "connect",
    "engine_options",
    "log_in_again",
    "new_engine",
    "place_anonymous",
    "start",
    "stop",
]
