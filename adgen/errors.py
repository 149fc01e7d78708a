"""Errors a user can cause, each mapped to the exit code the CLI returns for it."""

from __future__ import annotations


class AdgenError(Exception):
    """A user-facing error: the message is one line that says what and where.

    `detail` holds optional extra lines (the expression with a caret under the
    offending column) that the CLI prints after the message.
    """

    exit_code = 2

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InputError(AdgenError):
    """Bad expression, option or name (exit code 2)."""

    exit_code = 2


class WriteError(AdgenError):
    """Refused or failed to write an output file (exit code 2)."""

    exit_code = 2


def caret_line(text: str, column: int) -> str:
    """The expression on one line and a caret under `column` (0-based)."""
    shown = text.replace("\n", " ").replace("\t", " ")
    return f"  {shown}\n  {' ' * column}^"
