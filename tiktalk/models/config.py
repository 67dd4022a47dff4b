"""The config base of every model (Maria and the baselines): a dataclass with named validation
errors and a JSON round trip.

A model's config subclasses :class:`ModelConfig`, declares its fields with their defaults
(the one place they live) and checks them in :meth:`~ModelConfig.validate`, which runs on
construction and raises :class:`~tiktalk.errors.UsageError` naming the field and its value.
Saved models store ``to_dict()`` inside the saved-model JSON (:mod:`tiktalk.models.saving`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tiktalk.errors import UsageError
from tiktalk.models.modalities import check_modalities

if TYPE_CHECKING:  # typing.Self needs Python 3.11; annotations are not evaluated
    from typing_extensions import Self


@dataclass
class ModelConfig:
    """Base of every model config: ``validate``, ``to_dict`` / ``from_dict``, ``save`` / ``load``."""

    def validate(self) -> None:  # overridden; subclasses call super().validate()
        pass

    def __post_init__(self) -> None:
        self.validate()

    # -- validation helpers (each raises UsageError naming the field and its value)
    def _fail(self, field: str, value: Any, why: str) -> None:
        raise UsageError(f"{type(self).__name__}.{field} = {value!r}: {why}")

    def _positive(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self._fail(name, value, "must be a positive integer")

    def _probability(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                self._fail(name, value, "must be a probability in [0, 1)")

    def _choice(self, name: str, choices: Sequence[str]) -> None:
        value = getattr(self, name)
        if value not in choices:
            self._fail(name, value, f"must be one of {list(choices)}")

    def _divisible(self, width_field: str, heads_field: str) -> None:
        width, heads = getattr(self, width_field), getattr(self, heads_field)
        if width % heads:
            raise UsageError(f"{type(self).__name__}.{width_field} ({width}) is not a multiple of "
                             f"{heads_field} ({heads})")

    def _modalities(self, name: str = "modalities") -> None:
        check_modalities(getattr(self, name), f"{type(self).__name__}.{name}")

    # -- JSON round trip
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The config of ``data`` (as ``to_dict`` or a saved JSON wrote it); unknown fields are an error."""
        if not isinstance(data, dict):
            raise UsageError(f"{cls.__name__}: expected an object of fields, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise UsageError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(fields)}")
        # JSON has no tuples: a tuple field (modalities) comes back as a list
        data = {k: tuple(v) if isinstance(v, list) and str(fields[k].type).startswith("tuple") else v
                for k, v in data.items()}
        return cls(**data)

    def replace(self, **overrides: Any) -> Self:
        return type(self).from_dict({**self.to_dict(), **overrides})

    def save(self, path: str | os.PathLike) -> None:
        """``to_dict()`` as a JSON file, written atomically."""
        from tiktalk.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        from tiktalk.io import read_json

        data = read_json(path)  # bad UTF-8 / JSON: a FormatError naming file and line
        if not isinstance(data, dict):
            raise UsageError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)
