"""Numeric options declared once: their type, range and finiteness (issue 22).

A :class:`Bounds` says what values an option takes. The same object checks a config field
(:func:`check_fields`, called from a dataclass's ``__post_init__``) and parses the flag
(:meth:`Bounds.parse`, an argparse ``type``), so the command line and the config objects
cannot disagree, and both name the option and the range in their error::

    batch_size: int = field(default=64, metadata=bounded(POSITIVE_INT, "examples per micro-batch"))

    def __post_init__(self) -> None:
        check_fields(self)

    parser.add_argument("--top-k", type=POSITIVE_INT.parse("--top-k"), default=None)

Floats are always finite: NaN and infinities are refused wherever a number is read.
Integers have an upper limit as well, so no option asks for unbounded memory (a value
that sizes an allocation is also clamped to the data where it is used, e.g. top-k to the
index size).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tiktalk.errors import UsageError

INT_LIMIT = 2**31 - 1  # FAISS and torch take C ints; nothing here needs more


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else repr(float(value))


@dataclass(frozen=True)
class Bounds:
    """The values one numeric option takes: ``kind`` (int or float) within ``low``..``high``.

    ``low_open`` / ``high_open`` exclude that end. Floats must be finite. ``None`` is never
    checked here: a field whose default is ``None`` ("not given") skips it.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        """``an integer in [1, 2147483647]``, ``a finite number > 0``, ``a finite number in [0, 1)``."""
        noun = "an integer" if self.kind is int else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_number_text(self.low)}, {_number_text(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_number_text(self.low)}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {_number_text(self.high)}"
        return noun

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not one of these values (``None``: it is)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"must be {self.describe()}"
        if self.kind is int and not isinstance(value, numbers.Integral):
            return f"must be {self.describe()}"
        if not isinstance(value, numbers.Integral) and not math.isfinite(value):
            return f"must be {self.describe()}"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {self.describe()}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"must be {self.describe()}"
        return None

    def check(self, name: str, value: Any) -> Any:
        """``value`` when it is in range, else :class:`~tiktalk.errors.UsageError` naming ``name``
        (an option or a config field), the range and the value."""
        problem = self.problem(value)
        if problem is not None:
            raise UsageError(f"{name} {problem}, got {value!r}")
        return float(value) if self.kind is float else int(value)

    def convert(self, text: str) -> int | float:
        """Parse a command-line string; ValueError when it is not of this kind or out of range."""
        text = text.strip()
        if self.kind is int:
            if len(text) > 40:  # int() of thousands of digits is slow and never in range
                raise ValueError(text)
            value: int | float = int(text, 10)
        else:
            value = float(text)
        if self.problem(value) is not None:
            raise ValueError(text)
        return value

    def parse(self, flag: str) -> Callable[[str], int | float]:
        """An argparse ``type`` for ``flag``: a bad value exits 2 with
        ``argument --top-k: must be an integer in [1, 2147483647], got '0'``."""

        def parse(text: str) -> int | float:
            try:
                return self.convert(text)
            except ValueError:
                shown = text if len(text) <= 40 else text[:37] + "..."
                raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {shown!r}") from None

        parse.__name__ = flag.lstrip("-").replace("-", "_")
        return parse


POSITIVE_INT = Bounds(int, 1, INT_LIMIT)
COUNT = Bounds(int, 0, INT_LIMIT)  # zero allowed
FOLDS = Bounds(int, 2, INT_LIMIT)  # cross-validation / cross-fitting folds
SEED = Bounds(int, 0, 2**32 - 1)  # numpy's and torch's seeds
POSITIVE = Bounds(float, 0, low_open=True)
NON_NEGATIVE = Bounds(float, 0)
FRACTION = Bounds(float, 0, 1)
BETA = Bounds(float, 0, 1, high_open=True)  # Adam's betas
FINITE = Bounds(float)


def bounded(bounds: Bounds, help: str = "") -> dict[str, Any]:
    """The ``metadata`` of a dataclass field declaring its bounds (and its help text)."""
    return {"bounds": bounds, "help": help}


def field_bounds(f: dataclasses.Field) -> Bounds | None:
    return f.metadata.get("bounds")


def check_fields(obj: Any, prefix: str | None = None) -> None:
    """Check every field of dataclass ``obj`` declared with :func:`bounded`; a ``None`` value
    is "not given" and passes. Errors name ``Class.field`` (or ``prefix.field``)."""
    owner = prefix or type(obj).__name__
    for f in dataclasses.fields(obj):
        bounds = field_bounds(f)
        value = getattr(obj, f.name)
        if bounds is not None and value is not None:
            checked = bounds.check(f"{owner}.{f.name}", value)
            if checked is not value and type(checked) is not type(value):
                object.__setattr__(obj, f.name, checked)  # an int given for a float field


def check_option(flag: str, value: Any, bounds: Bounds) -> Any:
    """A value passed to the library directly (not through a parser): ``None`` passes."""
    return None if value is None else bounds.check(flag, value)
