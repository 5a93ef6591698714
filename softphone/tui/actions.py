"""What the user can ask for, one method per intent. Keys, buttons and the command palette all
reach these through the app's `action_*` methods, so they cannot disagree (resuming a call
holds the others whichever way you ask).

Every engine operation runs in a thread worker (`EngineThread` blocks); a failure becomes a
red line ("Could not ...") through the app's worker handler."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softphone.engine import EngineThread
    from softphone.tui.app import SoftphoneApp
    from softphone.tui.presenter import CallView

Operation = Callable[["EngineThread"], object]


def _hold_all(engine: EngineThread, call_ids: list[str]) -> None:
    for call_id in call_ids:
        engine.hold(call_id)


class CallActions:
    def __init__(self, app: SoftphoneApp) -> None:
        self._app = app

    # -- plumbing ------------------------------------------------------------------------------

    def run(self, description: str, operation: Operation, call_id: str = "") -> None:
        """`operation(engine)` in a thread worker; `description` completes "Could not ...".
        `call_id`: the call whose pending mark a failure clears."""
        engine = self._app.engine
        if engine is None:
            self._app.say("Not connected yet.", error=True)
            return
        self._app.run_worker(
            partial(operation, engine),
            name=call_id,
            thread=True,
            group="engine",
            description=description,
            exit_on_error=False,
        )

    def _pending(self, view: CallView, what: str) -> None:
        """Show at once what was asked ("muting…") in the row and on the status line; the
        engine's event replaces it with what is so."""
        view.pending = what
        self._app.calls_pane.show(view)
        self._app.show_selected()

    def _selected(self) -> CallView | None:
        view = self._app.selected_view
        if view is None or not view.live:
            self._app.say("No call selected.", error=True)
            return None
        return view

    def _talking(self, keep: str | None = None) -> list[str]:
        """Live calls other than `keep` that we are not holding: a second call puts these on
        hold first, as a desk phone does, so you never talk into two calls at once."""
        return [v.call.id for v in self._app.views.values() if v.call.id != keep and v.talking]

    # -- placing and taking calls --------------------------------------------------------------

    def dial(self, target: str, video: bool) -> None:
        app = self._app
        if app.anonymous:  # regular mode: a token set is good for one call only
            url, caller = app.server_url, app.options.anonymous_from or None
            self.run(
                f"call {target} anonymously",
                lambda e: e.make_anonymous(target, None, from_=caller, video=video, server_url=url),
            )
            return
        others = self._talking()

        def dial(engine: EngineThread) -> None:
            _hold_all(engine, others)
            engine.make(target, audio=True, video=video)

        self.run(f"call {target}", dial)

    def answer(self, video: bool) -> None:
        """Answer the first incoming call (with video only if it offers video)."""
        pane = self._app.incoming_pane
        first = pane.first
        if first is None:
            return
        video = video and first.video
        pane.drop(first.call_id)
        self._app.say(f"Answering {first.caller}{' with video' if video else ''}…")
        call_id, others = first.call_id, self._talking()

        def answer(engine: EngineThread) -> None:
            _hold_all(engine, others)
            engine.answer(call_id, audio=True, video=video)

        self.run(f"answer {first.caller}", answer)

    def ignore(self, call_id: str, caller: str) -> None:
        """Do not ring here (do not disturb): the caller's call goes on at our other devices."""
        self.run(f"leave the call from {caller} unanswered", lambda e: e.ignore(call_id))

    def reject(self) -> None:
        pane = self._app.incoming_pane
        first = pane.first
        if first is None:
            return
        pane.drop(first.call_id)
        call_id = first.call_id
        self.run(f"reject {first.caller}", lambda e: e.reject(call_id))

    # -- the selected call ---------------------------------------------------------------------

    def end(self) -> None:
        view = self._selected()
        if view is not None:
            call_id = view.call.id
            self._pending(view, "hanging up…")
            self.run(f"end the call with {view.party}", lambda e: e.end(call_id), call_id)

    def hold(self, hold: bool | None = None) -> None:
        """Hold or resume the selected call (None: whichever it is not). Resuming one call
        holds the others."""
        view = self._selected()
        if view is None:
            return
        call_id = view.call.id
        if hold is None:
            hold = not view.call.local_hold
        if hold == view.call.local_hold:
            self._app.say(f"Call with {view.party}: {'already' if hold else 'not'} on hold")
        elif hold:
            self._pending(view, "holding…")
            self.run(f"hold the call with {view.party}", lambda e: e.hold(call_id), call_id)
        else:
            self._pending(view, "resuming…")
            others = self._talking(keep=call_id)

            def resume(engine: EngineThread) -> None:
                _hold_all(engine, others)
                engine.unhold(call_id)

            self.run(f"resume the call with {view.party}", resume, call_id)

    def mute(self, mute: bool | None = None) -> None:
        """Stop or start sending our audio on the selected call (None: toggle)."""
        view = self._selected()
        if view is None:
            return
        call_id = view.call.id
        if mute is None:
            mute = not view.call.muted
        if mute == view.call.muted:
            self._app.say(f"Call with {view.party}: {'already' if mute else 'not'} muted")
        else:
            verb = "mute" if mute else "unmute"
            self._pending(view, f"{verb[:-1]}ing…")
            switch: Operation = (
                (lambda e: e.mute(call_id)) if mute else (lambda e: e.unmute(call_id))
            )
            self.run(f"{verb} the call with {view.party}", switch, call_id)

    def video(self, send: bool | None = None) -> None:
        """Start or stop sending video on the selected call (None: toggle)."""
        view = self._selected()
        if view is None:
            return
        call_id = view.call.id
        if send is None:
            send = not view.sending_video
        if send == view.sending_video:
            self._app.say(f"Call with {view.party}: {'already' if send else 'not'} sending video")
        elif send:
            self._pending(view, "starting video…")
            self.run(
                f"start video on the call with {view.party}",
                lambda e: e.start_video(call_id),
                call_id,
            )
        else:
            self._pending(view, "stopping video…")
            self.run(
                f"stop video on the call with {view.party}",
                lambda e: e.stop_video(call_id),
                call_id,
            )

    def show_video(self) -> None:
        """Open the selected call's video window again (the user closed it)."""
        view = self._selected()
        if view is None:
            return
        call_id, party, app = view.call.id, view.party, self._app

        def show(engine: EngineThread) -> None:
            engine.show_video(call_id)
            app.call_from_thread(app.say, f"Showing {party}'s video in a window.")

        self.run(f"show the video of {party}", show)

    def dtmf(self, digit: str) -> None:
        view = self._app.selected_view
        if view is None or not view.live:
            return
        self._app.say(f"Sent {digit} to {view.party}.")
        call_id = view.call.id
        self.run(f"send DTMF on the call with {view.party}", lambda e: e.send_dtmf(call_id, digit))

    def switch_call(self) -> None:
        """Select the next live call."""
        live = [v.call.id for v in self._app.views.values() if v.live]
        if not live:
            return
        pane = self._app.calls_pane
        current = pane.selected
        index = live.index(current) + 1 if current in live else 0
        pane.select(live[index % len(live)])
        pane.focus()

    # -- devices -------------------------------------------------------------------------------

    def echo_cancellation(self, mode: str) -> None:
        """ "on", "off" or "auto" (microphones only), for new calls and the live ones at once."""
        app = self._app

        def switch(engine: EngineThread) -> None:
            now = engine.set_audio_processing(echo_cancellation=mode)
            app.options.echo_cancellation = now.echo_cancellation
            words = {"auto": "on for microphones (auto)", "on": "on", "off": "off"}
            app.call_from_thread(
                app.say, f"Echo cancellation {words.get(now.echo_cancellation, mode)}."
            )

        self.run(f"set echo cancellation {mode}", switch)

    def use_device(self, kind: str, spec: str) -> None:
        """Switch the microphone, speaker or camera; live calls move at once."""
        operations: dict[str, tuple[str, Operation]] = {
            "audio_in": (f"use microphone {spec}", lambda e: e.set_audio_input(spec)),
            "audio_out": (f"use speaker {spec}", lambda e: e.set_audio_output(spec)),
            "camera": (f"use camera {spec}", lambda e: e.set_camera(spec)),
        }
        description, operation = operations[kind]
        self.run(description, operation)


__all__ = ["CallActions"]
