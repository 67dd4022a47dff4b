"""The TikTalk dataset: a versioned on-disk schema, its readers/writers, and the loader.

A built dataset is a directory::

    manifest.json              format "tiktalk-dataset", schema_version, row counts, sha256s,
                               and (for `tiktalk data build` output) the build config and
                               how many items each cleaning rule removed
    videos.jsonl | .parquet    one row per video (VIDEO_SCHEMA)
    dialogues.jsonl | .parquet one row per dialogue (DIALOGUE_SCHEMA)
    features/frames.safetensors  one tensor per video, named by video_id: (n <= 50, 2048), or
                               token grids (n <= 50, tokens, 2048) (`features extract --grid`)
    features/audio.safetensors   one tensor per video, named by video_id: (m <= 50, 128)
    features/index.json        video_id -> {"frames": [n, 2048], "audio": [m, 128]}

Columns (schema_version 1):

* videos: ``video_id`` str, ``title`` str, ``topic`` str (both may be empty: unknown),
  ``duration`` float (seconds; 0 when unknown),
  ``split`` str (train/val/test), ``frames_path`` / ``audio_path`` str or null: a
  safetensors file relative to the dataset root that holds a tensor named ``video_id``
  (one file per modality, or one file per video: both layouts read the same way).
* dialogues: ``dialogue_id`` str (unique), ``video_id`` str or null (null only for
  text-only corpora such as LCCC), ``split`` train/val/test, ``context`` list[str] (the
  turns before the response, oldest first), ``response`` str, ``references`` list[str],
  ``emoticons`` list[str] (emoticons removed from the turns by cleaning, in turn order),
  ``turn_ids`` list[str] (source comment ids of context + response; may be empty).
* ``references``: on val/test the ground-truth responses, ``response == references[0]``;
  TikTalk builds keep exactly 5 (paper section 3.2; the LCCC adapter has 1). On train
  ``references`` is ``[]``: the single target is ``response``.

Features are stored as float16 or float32 and always returned as float32. Errors in any
file raise :class:`DatasetFormatError`, whose message names file, line/row, field and value.
A dataset may also hold side files its source provides (``extra_files`` in the manifest,
e.g. ``gold_attrs.jsonl`` of the KdConv adapter).

Corpora that are already cleaned and split come in through :func:`import_jsonl` (``tiktalk
data import``; format in docs/corpus.md); the LCCC and KdConv adapters are thin users of it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tiktalk.errors import (
    EmptyResultError,
    FormatError,
    MissingInputError,
    UnknownNameError,
    UsageError,
)
from tiktalk.io import atomic_directory, read_json, recover_directory, sha256_file, write_json
from tiktalk.types import DialogueExample

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

# Field kinds: "str" (non-empty string), "text" (any string), "str?" (string or null),
# "float", "split", "list[str]", "turns" (list of non-empty strings). One table per schema,
# so the JSONL and Parquet readers check the same rules.
_FIELD_KINDS: dict[str, dict[str, str]] = {
    "videos": {"video_id": "str", "title": "text", "topic": "text", "duration": "float",
               "split": "split", "frames_path": "str?", "audio_path": "str?"},
    "dialogues": {"dialogue_id": "str", "video_id": "str?", "split": "split", "context": "list[str]",
                  "response": "str", "references": "list[str]", "emoticons": "list[str]",
                  "turn_ids": "list[str]"},
}
_OPTIONAL_FIELDS = {"videos": {"frames_path", "audio_path"}, "dialogues": {"turn_ids", "emoticons"}}
_DEFAULTS: dict[str, Any] = {"frames_path": None, "audio_path": None,
                             "turn_ids": [], "emoticons": []}


def _check_value(kind: str, value: Any) -> str | None:
    """The reason ``value`` is not of ``kind``, or None when it is."""
    if kind == "str":
        return None if isinstance(value, str) and value != "" else "expected a non-empty string"
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
    require_fields(row, [k for k in kinds if k not in _OPTIONAL_FIELDS[table]], **where)
    out = {}
    for name, kind in kinds.items():
        if name not in row:
            default = _DEFAULTS[name]
            out[name] = list(default) if isinstance(default, list) else default
            continue
        reason = _check_value(kind, row[name])
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


# ---------------------------------------------------------------------------- table I/O


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


def _frame(table: str, rows: list[dict]) -> pl.DataFrame:
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
                   and c not in _OPTIONAL_FIELDS[table]]
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
    return _frame(table, rows)


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


# ---------------------------------------------------------------------------- features


def _as_feature(name: str, array: np.ndarray, *, path: Path, key: str) -> np.ndarray:
    max_len, dim = FEATURE_SPECS[name]
    grid = name == "frames" and array.ndim == 3 and array.shape[1] >= 1  # (n, tokens, dim) token grids
    if (array.ndim != 2 and not grid) or array.shape[-1] != dim or not 1 <= array.shape[0] <= max_len:
        expected = f"(n <= {max_len}, {dim})" + (f" or (n, tokens, {dim})" if name == "frames" else "")
        raise DatasetFormatError(f"{name} tensor has shape {tuple(array.shape)}, expected {expected}",
                                 path=path, field=key)
    return np.asarray(array, dtype=np.float32)


def save_features(path: Path | str, tensors: Mapping[str, np.ndarray], name: str) -> None:
    """Write ``{video_id: (n, dim)}`` to one safetensors file after checking shapes."""
    from safetensors.numpy import save_file

    path = Path(path)
    for key, array in tensors.items():
        _as_feature(name, array, path=path, key=key)  # shape check only
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}, str(path))


# ---------------------------------------------------------------------------- the dataset


@dataclass
class TikTalkDataset:
    """Videos and dialogues (polars) plus lazy access to per-video features."""

    videos: pl.DataFrame
    dialogues: pl.DataFrame
    root: Path | None = None  # where feature paths are resolved; None for in-memory data
    manifest: dict = field(default_factory=dict)
    _feature_files: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for table, frame in (("videos", self.videos), ("dialogues", self.dialogues)):
            missing = [c for c in TABLE_SCHEMAS[table] if c not in frame.columns]
            if missing:
                raise UsageError(f"{table} frame lacks column(s) {missing}")
        self._video_rows = {r["video_id"]: r for r in self.videos.iter_rows(named=True)}

    def __len__(self) -> int:
        return self.dialogues.height

    def split(self, name: str) -> TikTalkDataset:
        """The dialogues of one split (train/val/test) and the videos they use."""
        if name not in SPLITS:
            raise UsageError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        dialogues = self.dialogues.filter(pl.col("split") == name)
        used = dialogues["video_id"].drop_nulls().unique()
        videos = self.videos.filter(pl.col("video_id").is_in(used.implode()))
        return TikTalkDataset(videos, dialogues, self.root, self.manifest, self._feature_files)

    def video(self, video_id: str) -> dict:
        if video_id not in self._video_rows:
            raise UnknownNameError(f"unknown video_id {video_id!r}")
        return self._video_rows[video_id]

    def _tensor(self, name: str, rel: str | None, video_id: str) -> np.ndarray | None:
        if rel is None:
            return None
        if self.root is None:
            raise UsageError(f"video {video_id!r} names {name} file {rel!r} but the dataset has no root")
        path = self.root / rel
        handle = self._feature_files.get(path)
        if handle is None:
            from safetensors import safe_open

            if not path.exists():
                raise MissingInputError(f"{path}: {name} feature file of video {video_id!r} is missing")
            opened = safe_open(str(path), framework="numpy")
            handle = self._feature_files[path] = (opened, set(opened.keys()))
        handle, keys = handle
        if video_id not in keys:
            raise DatasetFormatError(f"no {name} tensor for this video", path=path, field=video_id)
        return _as_feature(name, handle.get_tensor(video_id), path=path, key=video_id)

    def features(self, video_id: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(frames (n <= 50, 2048) or grids (n, tokens, 2048) float32 | None, audio (m <= 50, 128) float32 | None)."""
        row = self.video(video_id)
        return (self._tensor("frames", row["frames_path"], video_id),
                self._tensor("audio", row["audio_path"], video_id))

    def examples(
        self, split: str, knowledge: Mapping[str, str] | None = None, with_features: bool = True
    ) -> list[DialogueExample]:
        """One DialogueExample per dialogue of ``split``; ``knowledge`` maps dialogue_id -> text."""
        part = self.split(split)
        out = []
        for row in part.dialogues.iter_rows(named=True):
            vid = row["video_id"]
            video = self._video_rows.get(vid) if vid is not None else None
            frames = audio = None
            if with_features and video is not None:
                frames, audio = self.features(vid)
            out.append(DialogueExample(
                dialogue_id=row["dialogue_id"],
                context=list(row["context"]),
                response=row["response"],
                references=list(row["references"]),
                video_id=vid,
                title=None if video is None else video["title"],
                frames=frames,
                audio=audio,
                knowledge=None if knowledge is None else knowledge.get(row["dialogue_id"]),
            ))
        return out

    def modality_presence(self, split: str, knowledge: Mapping[str, str] | None = None) -> dict[str, float]:
        """Share of the dialogues of ``split`` that carry each modality: ``vision`` / ``audio``
        (their video names a frames / audio file) and, when ``knowledge`` (dialogue_id -> text)
        is given, ``knowledge`` (a non-empty text). Text is always present. 0.0 for an empty split.
        """
        rows = self.split(split).dialogues.select("dialogue_id", "video_id").rows()
        total = len(rows) or 1
        videos = [self._video_rows.get(vid) if vid is not None else None for _, vid in rows]
        out = {"vision": sum(v is not None and v["frames_path"] is not None for v in videos) / total,
               "audio": sum(v is not None and v["audio_path"] is not None for v in videos) / total}
        if knowledge is not None:
            out["knowledge"] = sum(bool(knowledge.get(did)) for did, _ in rows) / total
        return out

    def stats(self) -> dict:
        """Counts per split: videos, dialogues, turns, mean turns, mean utterance length."""
        out: dict[str, Any] = {}
        for name in SPLITS:
            d = self.dialogues.filter(pl.col("split") == name)
            turns = [len(c) + 1 for c in d["context"].to_list()]
            utts = [u for c, r in zip(d["context"].to_list(), d["response"].to_list()) for u in [*c, r]]
            out[name] = {
                "videos": d["video_id"].drop_nulls().n_unique(),
                "dialogues": d.height,
                "turns": sum(turns),
                "avg_turns": round(sum(turns) / len(turns), 4) if turns else 0.0,
                "avg_utterance_chars": round(sum(map(len, utts)) / len(utts), 4) if utts else 0.0,
                "with_5_references": int(sum(len(r) >= EVAL_REFERENCES for r in d["references"].to_list())),
            }
        durations = self.videos["duration"].to_list()
        out["total"] = {
            "videos": self.videos.height,
            "dialogues": self.dialogues.height,
            "avg_video_seconds": round(sum(durations) / len(durations), 4) if durations else 0.0,
            "videos_with_frames": int(self.videos["frames_path"].is_not_null().sum()),
            "videos_with_audio": int(self.videos["audio_path"].is_not_null().sum()),
        }
        return out


def empty_splits(dataset: TikTalkDataset) -> list[str]:
    """The splits (train/val/test) with no dialogue, in SPLITS order."""
    present = set(dataset.dialogues["split"].to_list())
    return [name for name in SPLITS if name not in present]


def check_splits(dataset: TikTalkDataset, *, allow_empty_split: bool = False,
                 reasons: Mapping[str, str] | None = None, what: str = "the dataset") -> list[str]:
    """The empty splits of ``dataset``; unless ``allow_empty_split``, an empty split is an
    :class:`EmptyResultError` that says why (``reasons[split]``: the rule or flag responsible).
    """
    empty = empty_splits(dataset)
    if empty and not allow_empty_split:
        why = "; ".join(f"{name}: {(reasons or {}).get(name, 'no dialogue has this split')}" for name in empty)
        raise EmptyResultError(f"{what}: no {' / '.join(empty)} dialogues ({why}); "
                               "pass --allow-empty-split to accept an empty split")
    return empty


def reference_warnings(dataset: TikTalkDataset, wanted: int = EVAL_REFERENCES) -> list[str]:
    """One line per val/test split whose dialogues have fewer than ``wanted`` references.

    The paper scores against 5 references per dialogue (per-reference protocol); with fewer,
    scores average over fewer references and are not comparable to Table 3.
    """
    out = []
    for name in ("val", "test"):
        counts = [len(r) for r in dataset.split(name).dialogues["references"].to_list()]
        short = sum(c < wanted for c in counts)
        if short:
            out.append(f"{name}: {short} of {len(counts)} dialogues have fewer than {wanted} references "
                       f"(min {min(counts)}); the evaluation protocol scores against {wanted} per dialogue, "
                       "so scores are not comparable to the paper's")
    return out


def _check_cross_references(videos: pl.DataFrame, dialogues: pl.DataFrame, paths: dict[str, Path]) -> None:
    seen: dict[str, int] = {}
    for i, vid in enumerate(videos["video_id"].to_list(), start=1):
        if vid in seen:
            raise DatasetFormatError(f"duplicate video_id (first at row {seen[vid]})",
                                     path=paths["videos"], line=i, field="video_id", value=vid, row_word="row")
        seen[vid] = i
    seen = {}
    video_ids = set(videos["video_id"].to_list())
    for i, (did, vid) in enumerate(zip(dialogues["dialogue_id"].to_list(), dialogues["video_id"].to_list()), 1):
        if did in seen:
            raise DatasetFormatError(f"duplicate dialogue_id (first at row {seen[did]})",
                                     path=paths["dialogues"], line=i, field="dialogue_id", value=did, row_word="row")
        seen[did] = i
        if vid is not None and vid not in video_ids:
            raise DatasetFormatError("video_id not in the videos table", path=paths["dialogues"],
                                     line=i, field="video_id", value=vid, row_word="row")


def sample_dir() -> Path:
    """The built sample dataset shipped inside the package (its raw form is beside it)."""
    return Path(__file__).resolve().parent / "data" / "sample" / "built"


def sample_raw_dir() -> Path:
    return Path(__file__).resolve().parent / "data" / "sample" / "raw"


def resolve_path(path: str | Path) -> Path:
    """``sample`` -> the shipped built sample; any other path is kept."""
    return sample_dir() if str(path) == SAMPLE_NAME else Path(path)


def load_dataset(path: str | Path) -> TikTalkDataset:
    """Load a built dataset directory (with manifest.json), or ``"sample"``."""
    root = resolve_path(path)
    recover_directory(root)  # a dataset left missing by an interrupted replacement
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        raise MissingInputError(f"{root}: not a built dataset (no manifest.json); build one with "
                                "`tiktalk data build RAW --out DIR`")
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict):
        raise DatasetFormatError(f"expected a JSON object, got {type(manifest).__name__}", path=manifest_path)
    if manifest.get("format") != FORMAT_NAME:
        raise DatasetFormatError(f"not a {FORMAT_NAME} manifest", path=manifest_path, field="format",
                                 value=manifest.get("format"))
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DatasetFormatError(f"unsupported schema_version (this library reads {SCHEMA_VERSION})",
                                 path=manifest_path, field="schema_version", value=version)
    paths = {}
    for table in TABLE_SCHEMAS:
        entry = manifest.get("tables", {}).get(table)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise DatasetFormatError("missing table entry", path=manifest_path, field=f"tables.{table}")
        paths[table] = root / entry["file"]
    videos = read_table("videos", paths["videos"])
    dialogues = read_table("dialogues", paths["dialogues"])
    _check_cross_references(videos, dialogues, paths)
    for table, frame in (("videos", videos), ("dialogues", dialogues)):
        rows = manifest["tables"][table].get("rows")
        if rows is not None and rows != frame.height:
            raise DatasetFormatError(f"manifest says {rows} rows but {paths[table].name} has {frame.height}",
                                     path=manifest_path, field=f"tables.{table}.rows", value=rows)
    return TikTalkDataset(videos, dialogues, root, manifest)


def write_dataset(
    dataset: TikTalkDataset,
    out: str | Path,
    *,
    table_format: str = "jsonl",
    overwrite: bool = False,
    extra_manifest: Mapping[str, Any] | None = None,
    feature_dtype: str | None = None,
    features: Callable[[str], tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    extra_files: Mapping[str, str] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> dict:
    """Write ``dataset`` (tables + its features, re-packed one file per modality) atomically.

    ``features`` maps video_id -> (frames, audio) (default: ``dataset.features`` when the
    dataset has a root). ``feature_dtype`` (float16/float32) sets the storage dtype (default
    float32). ``extra_files`` (relative name -> UTF-8 text) are side files written beside
    the tables and listed with their sha256 in the manifest. ``on_notice`` hears what
    :func:`tiktalk.io.atomic_directory` recovered or removed first. Returns the
    manifest, which holds no timestamps or absolute paths so equal data gives equal bytes.
    """
    if table_format not in TABLE_FORMATS:
        raise UsageError(f"unknown table format {table_format!r}: expected one of {TABLE_FORMATS}")
    for name in extra_files or {}:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or rel.parts[0] in ("manifest.json", "features", *(
                f"{t}.{f}" for t in TABLE_SCHEMAS for f in TABLE_FORMATS)):
            raise UsageError(f"extra file {name!r} must be a relative path beside the dataset's own files")
    dtype = np.dtype(feature_dtype or "float32")
    videos = dataset.videos.select(list(VIDEO_SCHEMA)).cast(VIDEO_SCHEMA)
    dialogues = dataset.dialogues.select(list(DIALOGUE_SCHEMA)).cast(DIALOGUE_SCHEMA)
    _check_cross_references(videos, dialogues, {"videos": Path("<videos>"), "dialogues": Path("<dialogues>")})
    get_features = features or (dataset.features if dataset.root is not None else None)
    with atomic_directory(out, overwrite=overwrite, on_notice=on_notice) as tmp:
        tensors: dict[str, dict[str, np.ndarray]] = {"frames": {}, "audio": {}}
        index: dict[str, dict[str, list[int]]] = {}
        for vid in videos["video_id"].to_list():
            frames, audio = get_features(vid) if get_features is not None else (None, None)
            for name, arr in (("frames", frames), ("audio", audio)):
                if arr is not None:
                    tensors[name][vid] = arr.astype(dtype)
                    index.setdefault(vid, {})[name] = list(arr.shape)
        rel = {name: f"features/{name}.safetensors" for name in tensors}
        videos = videos.with_columns(
            pl.Series("frames_path", [rel["frames"] if v in tensors["frames"] else None
                                      for v in videos["video_id"]], dtype=pl.String),
            pl.Series("audio_path", [rel["audio"] if v in tensors["audio"] else None
                                     for v in videos["video_id"]], dtype=pl.String),
        )
        files: dict[str, str] = {}
        for name, arrays in tensors.items():
            if arrays:
                save_features(tmp / rel[name], arrays, name)
                files[rel[name]] = sha256_file(tmp / rel[name])
        if index:
            write_json(tmp / "features" / "index.json", dict(sorted(index.items())))
            files["features/index.json"] = sha256_file(tmp / "features" / "index.json")
        tables = {}
        for table, frame in (("videos", videos), ("dialogues", dialogues)):
            name = f"{table}.{table_format}"
            write_table(frame, tmp / name)
            tables[table] = {"file": name, "rows": frame.height, "sha256": sha256_file(tmp / name)}
        manifest = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "tables": tables,
            "features": {
                "files": files,
                "index": "features/index.json" if index else None,
                "dtype": str(dtype),
                "frames": {"max_len": MAX_FRAMES, "dim": FRAME_DIM, "videos": len(tensors["frames"])},
                "audio": {"max_len": MAX_AUDIO, "dim": AUDIO_DIM, "videos": len(tensors["audio"])},
            },
            "counts": TikTalkDataset(videos, dialogues).stats(),
            **dict(extra_manifest or {}),
        }
        if extra_files:
            for name, text in sorted(extra_files.items()):
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_text(text, encoding="utf-8")
            manifest["extra_files"] = {name: sha256_file(tmp / name) for name in sorted(extra_files)}
        write_json(tmp / "manifest.json", manifest)
    return manifest


def from_rows(videos: Iterable[dict], dialogues: Iterable[dict], root: Path | None = None) -> TikTalkDataset:
    """Build an in-memory dataset from row dicts (validated like a file, 'line' = record number)."""
    v = [validate_row("videos", r, path="<videos>", line=i, row_word="row") for i, r in enumerate(videos, 1)]
    d = [validate_row("dialogues", r, path="<dialogues>", line=i, row_word="row")
         for i, r in enumerate(dialogues, 1)]
    vf, df = _frame("videos", v), _frame("dialogues", d)
    _check_cross_references(vf, df, {"videos": Path("<videos>"), "dialogues": Path("<dialogues>")})
    return TikTalkDataset(vf, df, root)


# ---------------------------------------------------------------------------- import


def split_of(video_id: str, val_fraction: float, test_fraction: float, seed: str = DEFAULT_SPLIT_SEED) -> str:
    """Deterministic split from a hash of the video id: val, test or train by fraction."""
    digest = hashlib.sha256(f"{seed}:{video_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"


# The JSONL format of `tiktalk data import`: field -> kind (see _check_value). The first four
# are required (video_id may be null: a text-only corpus); the others are optional.
IMPORT_FIELDS: dict[str, str] = {
    "dialogue_id": "str", "video_id": "str?", "context": "turns", "response": "str",
    "references": "turns", "split": "split", "title": "text", "emoticons": "list[str]",
}
IMPORT_REQUIRED: tuple[str, ...] = ("dialogue_id", "video_id", "context", "response")


@dataclass
class ImportResult:
    """An imported corpus: the dataset, what the import did, and side files to write with it."""

    dataset: TikTalkDataset
    report: dict[str, Any]  # rows, dialogues per split, splits given / hashed, references per dialogue
    extra_files: dict[str, str] = field(default_factory=dict)  # relative name -> text (write_dataset)


def _references_histogram(dialogues: Iterable[dict]) -> dict[str, dict[str, int]]:
    """{"val": {"1": 200}, "test": {"5": 7}}: val/test dialogues by number of references."""
    out: dict[str, dict[str, int]] = {}
    for d in dialogues:
        if d["split"] != "train":
            counts = out.setdefault(d["split"], {})
            counts[str(len(d["references"]))] = counts.get(str(len(d["references"])), 0) + 1
    return {s: dict(sorted(out[s].items(), key=lambda kv: int(kv[0]))) for s in SPLITS if s in out}


def import_records(
    records: Iterable[tuple[int | None, Any]],
    *,
    path: Path | str,
    val_fraction: float = PAPER_VAL_FRACTION,
    test_fraction: float = PAPER_TEST_FRACTION,
    split_seed: str = DEFAULT_SPLIT_SEED,
    allow_empty_split: bool = False,
) -> ImportResult:
    """Dialogue records (``(line, object)``, the format of :data:`IMPORT_FIELDS`) -> a dataset.

    The ``split`` of every record is kept exactly; a record without one gets the hash split
    of its video_id (of its dialogue_id when video_id is null) with ``val_fraction`` /
    ``test_fraction`` / ``split_seed``, counted in the report. ``references`` defaults to
    ``[response]`` on val/test and ``[]`` on train (the schema's convention). Each video_id
    becomes one video row (title from its records, topic "", duration 0 = unknown); a video
    belongs to one split. An empty split is an :class:`EmptyResultError` unless
    ``allow_empty_split``. Errors name ``path:line``, the field(s) and the value.
    """
    dialogues: list[dict] = []
    first_line: dict[str, int | None] = {}
    videos: dict[str, dict] = {}
    video_line: dict[str, int | None] = {}
    hashed = 0
    for line, row in records:
        where = {"path": path, "line": line}
        if not isinstance(row, dict):
            raise DatasetFormatError(f"expected a JSON object, got {type(row).__name__}", **where)
        unknown = [k for k in row if k not in IMPORT_FIELDS]
        if unknown:
            raise DatasetFormatError(f"unknown field{'s' if len(unknown) > 1 else ''} "
                                     f"{', '.join(map(repr, unknown))} (the import format has "
                                     f"{', '.join(IMPORT_FIELDS)})", **where)
        require_fields(row, IMPORT_REQUIRED, **where)
        for name, value in row.items():
            if name == "split" and value is None:
                continue  # null split = no split given
            reason = _check_value(IMPORT_FIELDS[name], value)
            if reason:
                raise DatasetFormatError(reason, field=name, value=value, **where)
        did, vid = row["dialogue_id"], row["video_id"]
        if did in first_line:
            raise DatasetFormatError(f"duplicate dialogue_id (first on line {first_line[did]})",
                                     field="dialogue_id", value=did, **where)
        first_line[did] = line
        split = row.get("split")
        if split is None:
            split = split_of(vid if vid is not None else did, val_fraction, test_fraction, split_seed)
            hashed += 1
        references = row.get("references", [row["response"]] if split != "train" else [])
        dialogue = validate_row("dialogues", {
            "dialogue_id": did, "video_id": vid, "split": split, "context": row["context"],
            "response": row["response"], "references": references, "emoticons": row.get("emoticons", []),
            "turn_ids": [],
        }, **where)
        dialogues.append(dialogue)
        if vid is None:
            continue
        title = row.get("title")
        video = videos.get(vid)
        if video is None:
            videos[vid] = {"video_id": vid, "title": title, "topic": "", "duration": 0.0, "split": split}
            video_line[vid] = line
            continue
        if video["split"] != split:
            raise DatasetFormatError(f"video {vid!r} is in split {video['split']!r} (line {video_line[vid]}) and "
                                     f"{split!r} here: every dialogue of a video belongs to one split (the "
                                     "paper splits by video)", field="split", value=split, **where)
        if title is not None:
            if video["title"] is not None and video["title"] != title:
                raise DatasetFormatError(f"video {vid!r} has another title on line {video_line[vid]} "
                                         f"({video['title']!r})", field="title", value=title, **where)
            video["title"] = title
    video_rows = [{**v, "title": v["title"] or ""} for v in videos.values()]
    dataset = from_rows(video_rows, dialogues)
    counts = {s: sum(d["split"] == s for d in dialogues) for s in SPLITS}
    reasons = {}
    for name in SPLITS:
        fraction = {"val": val_fraction, "test": test_fraction}.get(name)
        hash_note = (f" and none of the {hashed} dialogues without a split hashed to it"
                     + (f" (--{name}-fraction {fraction:.4g})" if fraction is not None else "")) if hashed else ""
        reasons[name] = f"no record of {path} has split {name!r}{hash_note}"
    check_splits(dataset, allow_empty_split=allow_empty_split, reasons=reasons, what=f"importing {path}")
    report = {
        "rows": len(dialogues),
        "dialogues": counts,
        "videos": len(video_rows),
        "text_only_dialogues": sum(d["video_id"] is None for d in dialogues),
        "split_given": len(dialogues) - hashed,
        "split_by_hash": hashed,
        "hash_split": {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": split_seed},
        "references_per_dialogue": _references_histogram(dialogues),
    }
    return ImportResult(dataset, report)


def import_jsonl(path: str | Path, **options: Any) -> ImportResult:
    """``tiktalk data import FILE.jsonl``: one dialogue object per line (see :func:`import_records`)."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such file to import")
    return import_records(read_jsonl_rows(path), path=path, **options)


def _read_json_file(path: Path) -> Any:
    if not path.exists():
        raise MissingInputError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None


# ---------------------------------------------------------------------------- LCCC adapter

_LCCC_SPLITS = {"train": "train", "valid": "val", "test": "test"}


def lccc_utterance(text: str) -> str:
    """LCCC stores utterances as characters separated by spaces; join them back.

    Every token of the toy release is one character, so the original word spaces cannot
    be recovered; the characters are simply concatenated.
    """
    return "".join(text.split())


def import_lccc(path: str | Path, *, expand_turns: bool = False, allow_empty_split: bool = False) -> ImportResult:
    """Read LCCC JSON (``{"train"|"valid"|"test": [[utt, ...], ...]}``) as a text-only dataset.

    Each dialogue of n utterances gives one record: context = first n-1, response = last. With
    ``expand_turns`` every prefix gives a record (utterance i >= 1 as the response to 0..i-1),
    which is how CDial-GPT trains. Records go through :func:`import_records` with LCCC's own
    split (valid -> val); val/test dialogues have one reference.
    """
    path = Path(path)
    data = _read_json_file(path)
    if not isinstance(data, dict):
        raise DatasetFormatError("expected an object with train/valid/test lists", path=path)
    records: list[tuple[int | None, dict]] = []
    for key, split in _LCCC_SPLITS.items():
        dialogues = data.get(key, [])
        if not isinstance(dialogues, list):
            raise DatasetFormatError("expected a list of dialogues", path=path, field=key)
        for i, dialogue in enumerate(dialogues):
            ok = isinstance(dialogue, list) and len(dialogue) >= 2 and all(isinstance(u, str) for u in dialogue)
            utts = [lccc_utterance(u) for u in dialogue] if ok else []
            if not ok or not all(utts):
                raise DatasetFormatError("a dialogue must be a list of >= 2 non-empty strings",
                                         path=path, field=f"{key}[{i}]", value=dialogue)
            ends = range(1, len(utts)) if expand_turns else [len(utts) - 1]
            for end in ends:
                suffix = f"-{end}" if expand_turns else ""
                records.append((None, {"dialogue_id": f"lccc-{split}-{i:05d}{suffix}", "video_id": None,
                                       "split": split, "context": utts[:end], "response": utts[end]}))
    return import_records(records, path=path, allow_empty_split=allow_empty_split)


def load_lccc(path: str | Path, *, expand_turns: bool = False) -> TikTalkDataset:
    """The dataset of :func:`import_lccc`."""
    return import_lccc(path, expand_turns=expand_turns).dataset


# ---------------------------------------------------------------------------- KdConv adapter

KDCONV_FILES = {"dev": "dev.json", "test": "test.json"}
KDCONV_VAL_FRACTION = 0.1  # share of KdConv dev dialogues drawn (seeded) into val; the rest train
KDCONV_SEED = 0
GOLD_ATTRS_FILE = "gold_attrs.jsonl"  # side file: the knowledge each response used


def import_kdconv(
    directory: str | Path, *, val_fraction: float = KDCONV_VAL_FRACTION, seed: int = KDCONV_SEED,
    allow_empty_split: bool = False,
) -> ImportResult:
    """KdConv (thu-coai; one domain's ``dev.json`` and ``test.json``) as a text-only dataset.

    Every utterance after the first of a dialogue is a response, with the utterances before
    it as context. ``test.json`` -> test; ``dev.json`` -> val for ``round(val_fraction * n)``
    dialogues drawn by a seeded permutation (``numpy.random.default_rng(seed)``), train for
    the rest: the split is by dialogue, so no dialogue is in two splits. A KdConv dialogue's
    id (``kdconv-dev-007``) is the video_id of its records and its entity ``name`` their
    title; records are ``kdconv-dev-007-03`` (utterance 3 as the response). Each response's
    gold ``attrs`` (name, attrname, attrvalue) go to the side file ``gold_attrs.jsonl``, one
    ``{"dialogue_id", "attrs"}`` line per record (``[]`` when the utterance used none).
    """
    directory = Path(directory)
    if not 0 <= val_fraction <= 1:
        raise UsageError(f"KdConv val_fraction {val_fraction} is not in [0, 1]")
    records: list[tuple[int | None, dict]] = []
    attrs_lines: list[str] = []
    with_attrs = 0
    for part, name in KDCONV_FILES.items():
        path = directory / name
        data = _read_json_file(path)
        if not isinstance(data, list):
            raise DatasetFormatError("expected a list of dialogues", path=path)
        order = np.random.default_rng(seed).permutation(len(data))
        val = set(order[: round(val_fraction * len(data))].tolist()) if part == "dev" else set()
        for i, dialogue in enumerate(data):
            messages = dialogue.get("messages") if isinstance(dialogue, dict) else None
            if not isinstance(messages, list) or len(messages) < 2:
                raise DatasetFormatError("expected a dialogue object with >= 2 messages", path=path,
                                         field=f"[{i}].messages", value=messages)
            texts: list[str] = []
            gold: list[list[dict]] = []
            for j, message in enumerate(messages):
                text = message.get("message") if isinstance(message, dict) else None
                attrs = message.get("attrs", []) if isinstance(message, dict) else None
                if not isinstance(text, str) or not text.strip():
                    raise DatasetFormatError("expected a non-empty string", path=path,
                                             field=f"[{i}].messages[{j}].message", value=text)
                if not (isinstance(attrs, list) and all(isinstance(a, dict) for a in attrs)):
                    raise DatasetFormatError("expected a list of objects", path=path,
                                             field=f"[{i}].messages[{j}].attrs", value=attrs)
                texts.append(text.strip())
                gold.append([{k: a.get(k) for k in ("name", "attrname", "attrvalue")} for a in attrs])
            split = "test" if part == "test" else "val" if i in val else "train"
            video_id = f"kdconv-{part}-{i:03d}"
            title = dialogue.get("name", "")
            for end in range(1, len(texts)):
                did = f"{video_id}-{end:02d}"
                records.append((None, {"dialogue_id": did, "video_id": video_id, "split": split,
                                       "context": texts[:end], "response": texts[end],
                                       "title": title if isinstance(title, str) else ""}))
                attrs_lines.append(json.dumps({"dialogue_id": did, "attrs": gold[end]}, ensure_ascii=False) + "\n")
                with_attrs += bool(gold[end])
    result = import_records(records, path=directory, allow_empty_split=allow_empty_split)
    result.report["kdconv"] = {"val_fraction": val_fraction, "seed": seed,
                               "responses_with_attrs": with_attrs}
    result.extra_files[GOLD_ATTRS_FILE] = "".join(attrs_lines)
    return result


def read_gold_attrs(dataset_dir: str | Path) -> dict[str, list[dict]]:
    """``gold_attrs.jsonl`` of an imported KdConv dataset: dialogue_id -> the response's attrs."""
    path = resolve_path(dataset_dir) / GOLD_ATTRS_FILE
    if not path.exists():
        raise MissingInputError(f"{path}: no gold attrs (written by `tiktalk data import --from kdconv`)")
    out: dict[str, list[dict]] = {}
    for line, row in read_jsonl_rows(path):
        if not (isinstance(row, dict) and isinstance(row.get("dialogue_id"), str)
                and isinstance(row.get("attrs"), list)):
            raise DatasetFormatError("expected {\"dialogue_id\": str, \"attrs\": list}", path=path, line=line)
        out[row["dialogue_id"]] = row["attrs"]
    return out
