"""One error type for bad KG input: it names the file, line, field and value at fault."""

from __future__ import annotations

from pathlib import Path


class KGFormatError(ValueError):
    """Malformed C3KG / ATOMIC input. ``str(err)`` reads ``file:line: field 'f': message (value ...)``."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        value: object = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.value = value
        self.reason = message
        where = self.path or "<input>"
        if line is not None:
            where += f":{line}"
        text = f"{where}: "
        if field is not None:
            text += f"field {field!r}: "
        text += message
        if value is not None:
            shown = repr(value)
            text += f" (value {shown[:80] + '...' if len(shown) > 80 else shown})"
        super().__init__(text)
