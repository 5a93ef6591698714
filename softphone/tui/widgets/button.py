"""`KeyButton`: Textual's `Button` with only the CSS the main screen's buttons use.

`Button.DEFAULT_CSS` (7 kB: flat and ANSI styles, every variant) is the largest stylesheet on
the main screen and Textual parses it at every start before the first frame. These buttons are
never flat and the app never runs in ANSI colour mode, so this class does not inherit it and
carries the default style's rules for the variants they use (default, primary, success, error)
instead, copied from Textual 8.2 unchanged: the screen looks the same (the styled cells were
compared before and after). Behaviour is `Button`'s (messages, focus, keys); only its CSS type
name is `KeyButton`, not `Button`.
"""

from __future__ import annotations

from textual.widgets import Button


class KeyButton(Button, inherit_css=False):
    DEFAULT_CSS = """
    KeyButton {
        width: auto;
        min-width: 16;
        height: auto;
        line-pad: 1;
        text-align: center;
        content-align: center middle;
        pointer: pointer;

        &.-style-default {
            text-style: bold;
            color: $button-foreground;
            background: $surface;
            border: none;
            border-top: tall $surface-lighten-1;
            border-bottom: tall $surface-darken-1;

            &.-textual-compact {
                border: none !important;
            }
            &:disabled {
                text-opacity: 0.6;
                pointer: not-allowed;
            }
            &:focus {
                text-style: $button-focus-text-style;
                background-tint: $foreground 5%;
            }
            &:hover {
                border-top: tall $surface;
                background: $surface-darken-1;
            }
            &.-active {
                background: $surface;
                border-bottom: tall $surface-lighten-1;
                border-top: tall $surface-darken-1;
                tint: $background 30%;
            }
            &.-primary {
                color: $button-color-foreground;
                background: $primary;
                border-top: tall $primary-lighten-3;
                border-bottom: tall $primary-darken-3;
                &:hover {
                    background: $primary-darken-2;
                    border-top: tall $primary;
                }
                &.-active {
                    background: $primary;
                    border-bottom: tall $primary-lighten-3;
                    border-top: tall $primary-darken-3;
                }
            }
            &.-success {
                color: $button-color-foreground;
                background: $success;
                border-top: tall $success-lighten-2;
                border-bottom: tall $success-darken-3;
                &:hover {
                    background: $success-darken-2;
                    border-top: tall $success;
                }
                &.-active {
                    background: $success;
                    border-bottom: tall $success-lighten-2;
                    border-top: tall $success-darken-2;
                }
            }
            &.-error {
                color: $button-color-foreground;
                background: $error;
                border-top: tall $error-lighten-2;
                border-bottom: tall $error-darken-3;
                &:hover {
                    background: $error-darken-1;
                    border-top: tall $error;
                }
                &.-active {
                    background: $error;
                    border-bottom: tall $error-lighten-2;
                    border-top: tall $error-darken-2;
                }
            }
        }
    }
    """


__all__ = ["KeyButton"]
