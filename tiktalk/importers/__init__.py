"""Importers: corpora that are already cleaned and split -> a dataset (``tiktalk data import``).

Each importer is one module of this package with a reader ``(source, ImportOptions) ->
ImportResult`` (:class:`tiktalk.importers.records.ImportResult`), and one entry of
:data:`IMPORTERS`; ``data import --from NAME`` takes its choices and help from there.
Readers are named as ``"module:function"`` strings and imported on first use, so building
the command line imports neither polars nor numpy. Rows pass through
:func:`tiktalk.importers.records.import_records`, which checks them against the schema and
splits rows that come without a split.

Adding one: ``tiktalk/importers/myformat.py`` with ``def from_options(source, options) ->
ImportResult``, plus one line below (or, from your own code,
``IMPORTERS.register("myformat", Importer(my_reader, "summary", "what SOURCE is"))``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tiktalk.errors import UsageError
from tiktalk.options import FRACTION, bounded, check_fields
from tiktalk.registry import Registry

if TYPE_CHECKING:
    from tiktalk.importers.records import ImportResult


@dataclass(frozen=True)
class ImportOptions:
    """The options of ``tiktalk data import`` an importer may read; ``None``/``False``: not given
    (the importer's own default applies)."""

    val_fraction: float | None = dataclasses.field(default=None, metadata=bounded(FRACTION))
    test_fraction: float | None = dataclasses.field(default=None, metadata=bounded(FRACTION))
    split_seed: str | None = None
    expand_turns: bool = False
    allow_empty_split: bool = False  # every importer honours it

    def __post_init__(self) -> None:
        check_fields(self)

    def given(self) -> list[str]:
        """The names of the importer-specific options that were set."""
        return [f.name for f in dataclasses.fields(self)
                if f.name != "allow_empty_split" and getattr(self, f.name) not in (None, False)]


Reader = Callable[[str | Path, ImportOptions], "ImportResult"]


@dataclass(frozen=True)
class Importer:
    """One corpus format of ``tiktalk data import --from NAME``."""

    reader: str | Reader  # a "module:function" string is imported on first use
    summary: str  # what the format is: one phrase in `data import --help`
    source: str  # what SOURCE names (a file, a directory)
    options: tuple[str, ...] = ()  # the ImportOptions fields it reads (besides allow_empty_split)
    # what each of those options means for this format, with its default (`data import --help`)
    option_help: dict[str, str] = dataclasses.field(default_factory=dict)

    def read(self, source: str | Path, options: ImportOptions) -> ImportResult:
        reader = self.reader
        if isinstance(reader, str):
            module, _, attribute = reader.partition(":")
            reader = getattr(importlib.import_module(module), attribute)
        return reader(source, options)


# Every importer, in the order of `data import --help`; the first is the default of --from.
IMPORTERS: Registry[Importer] = Registry("importer", {
    "jsonl": Importer("tiktalk.importers.jsonl:from_options", "one dialogue object per line (docs/corpus.md)",
                      "FILE.jsonl", ("val_fraction", "test_fraction", "split_seed"), {
                          "val_fraction": "share of videos hashed to val for rows without a split "
                                          "(default 1000/38703, the paper's)",
                          "test_fraction": "share hashed to test for rows without a split (default 2000/38703)",
                          "split_seed": "salt of the hash split (default 'tiktalk')"}),
    "lccc": Importer("tiktalk.importers.lccc:from_options", "LCCC's JSON ({train|valid|test: [[utterance, ...]]})",
                     "LCCC's JSON file", ("expand_turns",), {"expand_turns": "one row per response turn"}),
    "kdconv": Importer("tiktalk.importers.kdconv:from_options", "KdConv (thu-coai), one domain's dev.json and "
                       "test.json, with each response's gold triples", "KdConv's domain directory",
                       ("val_fraction", "split_seed"), {
                           "val_fraction": "share of dev dialogues drawn into val (default 0.1)",
                           "split_seed": "integer seed of that draw (default 0)"}),
})


def importer_names() -> list[str]:
    return IMPORTERS.names()


def run_import(name: str, source: str | Path, options: ImportOptions | None = None) -> ImportResult:
    """Import ``source`` with the importer ``name``; an option it does not read is an error."""
    importer = IMPORTERS.get(name)
    options = options or ImportOptions()
    stray = [f"--{option.replace('_', '-')}" for option in options.given() if option not in importer.options]
    if stray:
        raise UsageError(f"{', '.join(stray)} does not apply to --from {name}")
    return importer.read(source, options)
