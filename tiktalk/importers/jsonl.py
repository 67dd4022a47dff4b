"""``--from jsonl``: one dialogue object per line, the format of docs/corpus.md, imported as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiktalk.dataset import read_jsonl_rows
from tiktalk.errors import MissingInputError
from tiktalk.importers import ImportOptions
from tiktalk.importers.records import ImportResult, import_records


def import_jsonl(path: str | Path, **options: Any) -> ImportResult:
    """``tiktalk data import FILE.jsonl``: one dialogue object per line (see :func:`import_records`)."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such file to import")
    result = import_records(read_jsonl_rows(path), path=path, **options)
    result.manifest["source"] = "tiktalk data import"
    return result


def from_options(source: str | Path, options: ImportOptions) -> ImportResult:
    """The reader of ``tiktalk data import --from jsonl``: unset options keep their defaults."""
    given = {"val_fraction": options.val_fraction, "test_fraction": options.test_fraction,
             "split_seed": options.split_seed}
    return import_jsonl(source, **{k: v for k, v in given.items() if v is not None},
                        allow_empty_split=options.allow_empty_split)
