"""Reading and writing the two tables (videos, dialogues) as JSONL or Parquet, validating every row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from tiktalk.dataset.schema import OPTIONAL_FIELDS, TABLE_SCHEMAS, DatasetFormatError, validate_row
from tiktalk.errors import MissingInputError, UsageError

MAX_JSON_DEPTH = 64  # no schema nests deeper than 3; this only stops hostile input early


def _bad_json_value(obj: Any) -> tuple[str, str] | None:
    """(reason, the offending string) for a lone surrogate or nesting deeper than
    :data:`MAX_JSON_DEPTH` anywhere in ``obj`` (walked without recursion), else None."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels", ""
        if isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as err:
                return f"a string holds a lone surrogate {item[err.start]!r} (not encodable as UTF-8)", item
    return None


def read_jsonl_rows(path: Path | str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line of a UTF-8 file (a BOM is accepted).

    Every problem names file and line: bad UTF-8, bad JSON (a raw control character such
    as NUL inside a string is one), nesting deeper than :data:`MAX_JSON_DEPTH`, and strings
    holding a lone surrogate (``\\ud800``), which no UTF-8 writer could store.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DatasetFormatError(f"not valid UTF-8 at byte {err.start} of the line", path=path,
                                         line=number, value=raw[max(0, err.start - 8) : err.start + 8]) from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise DatasetFormatError(f"not valid JSON ({err.msg}, column {err.colno})",
                                         path=path, line=number, value=text.strip()) from None
            except RecursionError:
                raise DatasetFormatError(f"not valid JSON (nested deeper than {MAX_JSON_DEPTH} levels)",
                                         path=path, line=number) from None
            except ValueError as err:  # e.g. an integer of more than 4300 digits
                raise DatasetFormatError(f"not valid JSON ({err})", path=path, line=number) from None
            bad = _bad_json_value(obj)
            if bad is not None:
                raise DatasetFormatError(bad[0], path=path, line=number, value=bad[1] or None)
            yield number, obj


def table_frame(table: str, rows: list[dict]) -> pl.DataFrame:
    schema = TABLE_SCHEMAS[table]
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def read_table(table: str, path: Path | str) -> pl.DataFrame:
    """Read ``videos`` or ``dialogues`` from JSONL or Parquet (by suffix), validating every row."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such {table} file")
    if path.suffix == ".parquet":
        raw = pl.read_parquet(path)
        missing = [c for c in TABLE_SCHEMAS[table] if c not in raw.columns
                   and c not in OPTIONAL_FIELDS[table]]
        if missing:
            raise DatasetFormatError("missing required column" + ("s " + ", ".join(map(repr, missing))
                                                                  if len(missing) > 1 else ""),
                                     path=path, field=missing[0] if len(missing) == 1 else None)
        rows = [validate_row(table, r, path=path, line=i, row_word="row")
                for i, r in enumerate(raw.to_dicts(), start=1)]
    elif path.suffix == ".jsonl":
        rows = [validate_row(table, r, path=path, line=n) for n, r in read_jsonl_rows(path)]
    else:
        raise DatasetFormatError(f"unknown table format {path.suffix!r} (expected .jsonl or .parquet)",
                                 path=path)
    return table_frame(table, rows)


def write_table(frame: pl.DataFrame, path: Path | str) -> None:
    """Write a table as JSONL (one object per line, schema column order) or Parquet."""
    path = Path(path)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    elif path.suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in frame.iter_rows(named=True))
    else:
        raise UsageError(f"{path}: unknown table format {path.suffix!r} (expected .jsonl or .parquet)")
