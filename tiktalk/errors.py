"""The library's own error types. The command line turns these, and only these, into a
one-line message and exit code 2; any other exception is a bug and keeps its traceback.

Each also derives from the built-in type a Python caller would expect (``ValueError``,
``FileNotFoundError``, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from pathlib import Path


class TiktalkError(Exception):
    """Base of every error the library raises for bad input, options or files."""


class UsageError(TiktalkError, ValueError):
    """An option, argument or configuration value that cannot be used; names both values."""


class MissingInputError(TiktalkError, FileNotFoundError):
    """A file or directory the user named does not exist or is not what it should be."""


class OutputExistsError(TiktalkError, FileExistsError):
    """The output exists and replacing it was not asked for."""


class UnknownNameError(TiktalkError, KeyError):
    """A node, head, video or other key that is not in the collection it was looked up in."""

    def __str__(self) -> str:  # KeyError would repr() its message
        return str(self.args[0]) if self.args else ""


class CommandFailedError(TiktalkError, RuntimeError):
    """A step run on the user's behalf (a benchmark suite, a sub-command) failed."""


class EmptyResultError(TiktalkError, ValueError):
    """A step would leave a dataset split or an output empty; names the rule or flag responsible."""


class NonFiniteError(TiktalkError, FloatingPointError):
    """A value that must be finite is NaN or infinite (a training loss, a feature tensor)."""


class FormatError(TiktalkError, ValueError):
    """Malformed input. ``str(err)`` reads ``file:line: field 'f': message (value ...)``.

    ``row_word="row"`` writes ``file row N`` instead, for tables without text lines (Parquet).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        value: object = None,
        row_word: str = "line",
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.value = value
        self.reason = message
        text = self.path or "<input>"
        if line is not None:
            text += f":{line}" if row_word == "line" else f" {row_word} {line}"
        text += ": "
        if field is not None:
            text += f"field {field!r}: "
        text += message
        if value is not None:
            shown = repr(value)
            text += f" (value {shown[:80] + '...' if len(shown) > 80 else shown})"
        super().__init__(text)


class OutputLockedError(FormatError):
    """Another live process holds the output lock of ``target`` (see :func:`tiktalk.io.output_lock`).

    ``str(err)`` reads ``target: is being written by another process (pid N, started ...)``.
    ``holder`` is the holder's :class:`tiktalk.lock_holder.LockHolder` (``None`` when it had not yet
    said who it is), ``lock_path`` the lock file.
    """

    def __init__(
        self, message: str, *, target: str | Path, lock_path: str | Path, holder: object = None
    ) -> None:
        super().__init__(message, path=target)
        self.target = str(target)
        self.lock_path = str(lock_path)
        self.holder = holder
