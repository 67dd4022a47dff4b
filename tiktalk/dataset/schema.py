"""The dataset schema (version 1): constants, the two tables' columns, and row validation.

One table of field kinds per table, so the JSONL and Parquet readers (:mod:`tiktalk.dataset.tables`)
and the importers check the same rules; every problem is a :class:`DatasetFormatError`
naming file, line/row, field and value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from tiktalk.errors import FormatError

FORMAT_NAME = "tiktalk-dataset"
SCHEMA_VERSION = 1
SAMPLE_NAME = "sample"
SPLITS: tuple[str, ...] = ("train", "val", "test")
MAX_FRAMES, FRAME_DIM = 50, 2048  # ResNet-101 pooled features, at most 50 per video
MAX_AUDIO, AUDIO_DIM = 50, 128  # VGGish patches, at most 50 per video
FEATURE_SPECS: dict[str, tuple[int, int]] = {"frames": (MAX_FRAMES, FRAME_DIM), "audio": (MAX_AUDIO, AUDIO_DIM)}
EVAL_REFERENCES = 5  # ground-truth responses per val/test dialogue in TikTalk
# Shares of videos the paper put in val and test (1,000 and 2,000 of 38,703 videos): the
# default of every hash split (`data build`, and `data import` rows without a split).
PAPER_VAL_FRACTION, PAPER_TEST_FRACTION = 1000 / 38703, 2000 / 38703
DEFAULT_SPLIT_SEED = "tiktalk"

VIDEO_SCHEMA: dict[str, pl.DataType] = {
    "video_id": pl.String(),
    "title": pl.String(),
    "topic": pl.String(),
    "duration": pl.Float64(),
    "split": pl.String(),
    "frames_path": pl.String(),
    "audio_path": pl.String(),
}
DIALOGUE_SCHEMA: dict[str, pl.DataType] = {
    "dialogue_id": pl.String(),
    "video_id": pl.String(),
    "split": pl.String(),
    "context": pl.List(pl.String()),
    "response": pl.String(),
    "references": pl.List(pl.String()),
    "emoticons": pl.List(pl.String()),
    "turn_ids": pl.List(pl.String()),
}
TABLE_SCHEMAS = {"videos": VIDEO_SCHEMA, "dialogues": DIALOGUE_SCHEMA}
TABLE_FORMATS = ("jsonl", "parquet")


class DatasetFormatError(FormatError):
    """Malformed dataset input. ``str(err)`` reads ``file:line: field 'f': message (value ...)``."""



# ---------------------------------------------------------------------------- validation

# Field kinds: "str" (a string not empty nor only whitespace), "text" (any string), "str?" (string or null),
# "float", "split", "list[str]", "turns" (list of non-empty strings). One table per schema,
# so the JSONL and Parquet readers check the same rules.
_FIELD_KINDS: dict[str, dict[str, str]] = {
    "videos": {"video_id": "str", "title": "text", "topic": "text", "duration": "float",
               "split": "split", "frames_path": "str?", "audio_path": "str?"},
    "dialogues": {"dialogue_id": "str", "video_id": "str?", "split": "split", "context": "list[str]",
                  "response": "str", "references": "list[str]", "emoticons": "list[str]",
                  "turn_ids": "list[str]"},
}
OPTIONAL_FIELDS = {"videos": {"frames_path", "audio_path"}, "dialogues": {"turn_ids", "emoticons"}}
_DEFAULTS: dict[str, Any] = {"frames_path": None, "audio_path": None,
                             "turn_ids": [], "emoticons": []}


def check_value(kind: str, value: Any) -> str | None:
    """The reason ``value`` is not of ``kind``, or None when it is."""
    if kind == "str":
        if isinstance(value, str) and value.strip():
            return None
        return "expected a non-empty string" + (" (it is only whitespace)" if isinstance(value, str) and value else "")
    if kind == "text":
        return None if isinstance(value, str) else "expected a string"
    if kind == "str?":
        return None if value is None or isinstance(value, str) else "expected a string or null"
    if kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            ok = ok and math.isfinite(value) and value >= 0
        except OverflowError:  # an integer too large for a float
            ok = False
        return None if ok else "expected a finite non-negative number"
    if kind == "split":
        return None if value in SPLITS else f"expected one of {', '.join(SPLITS)}"
    if kind == "list[str]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "expected a list of strings"
    if kind == "turns":
        ok = isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
        return None if ok else "expected a list of non-empty strings"
    raise AssertionError(kind)


def require_fields(row: Mapping[str, Any], required: Iterable[str], *, path: Path | str, line: int | None,
                   row_word: str = "line") -> None:
    """Raise one error naming every field of ``required`` that ``row`` lacks."""
    missing = [name for name in required if name not in row]
    where = {"path": path, "line": line, "row_word": row_word}
    if len(missing) == 1:
        raise DatasetFormatError("missing required field", field=missing[0], **where)
    if missing:
        raise DatasetFormatError("missing required fields " + ", ".join(repr(m) for m in missing), **where)


def validate_row(table: str, row: Any, *, path: Path | str, line: int | None, row_word: str = "line") -> dict:
    """Check one row of ``table`` against the schema; return it with optional fields filled."""
    kinds = _FIELD_KINDS[table]
    where = {"path": path, "line": line, "row_word": row_word}
    if not isinstance(row, dict):
        raise DatasetFormatError(f"expected a JSON object, got {type(row).__name__}", **where)
    unknown = sorted(set(row) - set(kinds))
    if unknown:
        raise DatasetFormatError(f"unknown field (schema_version {SCHEMA_VERSION} has "
                                 f"{', '.join(kinds)})", field=unknown[0], **where)
    require_fields(row, [k for k in kinds if k not in OPTIONAL_FIELDS[table]], **where)
    out = {}
    for name, kind in kinds.items():
        if name not in row:
            default = _DEFAULTS[name]
            out[name] = list(default) if isinstance(default, list) else default
            continue
        reason = check_value(kind, row[name])
        if reason:
            raise DatasetFormatError(reason, field=name, value=row[name], **where)
        out[name] = float(row[name]) if kind == "float" else row[name]
    if table == "dialogues" and out["split"] in ("val", "test"):
        refs = out["references"]
        if not refs:
            raise DatasetFormatError(f"a {out['split']} dialogue needs at least one reference",
                                     field="references", value=refs, **where)
        if refs[0] != out["response"]:
            raise DatasetFormatError("on val/test, response must equal references[0]",
                                     field="response", value=out["response"], **where)
    return out
