"""One error type for bad KG input: it names the file, line, field and value at fault."""

from __future__ import annotations

from tiktalk.errors import FormatError


class KGFormatError(FormatError):
    """Malformed C3KG / ATOMIC input. ``str(err)`` reads ``file:line: field 'f': message (value ...)``."""
