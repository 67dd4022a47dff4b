"""The TikTalk dataset: a versioned on-disk schema, its readers/writers, and the loader.

A built dataset is a directory::

    manifest.json              format "tiktalk-dataset", schema_version, row counts, sha256s,
                               and (for `tiktalk data build` output) the build config and
                               how many items each cleaning rule removed
    videos.jsonl | .parquet    one row per video (VIDEO_SCHEMA)
    dialogues.jsonl | .parquet one row per dialogue (DIALOGUE_SCHEMA)
    features/frames.safetensors  one tensor per video, named by video_id: (n <= 50, 2048)
    features/audio.safetensors   one tensor per video, named by video_id: (m <= 50, 128)
    features/index.json        video_id -> {"frames": [n, 2048], "audio": [m, 128]}

Columns (schema_version 1):

* videos: ``video_id`` str, ``title`` str, ``topic`` str, ``duration`` float (seconds),
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
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tiktalk.errors import FormatError, MissingInputError, UnknownNameError, UsageError
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

# Field kinds: "str" (non-empty string), "str?" (string or null), "float", "split",
# "list[str]". One table per schema, so the JSONL and Parquet readers check the same rules.
_FIELD_KINDS: dict[str, dict[str, str]] = {
    "videos": {"video_id": "str", "title": "str", "topic": "str", "duration": "float",
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
    raise AssertionError(kind)


def validate_row(table: str, row: Any, *, path: Path | str, line: int, row_word: str = "line") -> dict:
    """Check one row of ``table`` against the schema; return it with optional fields filled."""
    kinds = _FIELD_KINDS[table]
    where = {"path": path, "line": line, "row_word": row_word}
    if not isinstance(row, dict):
        raise DatasetFormatError(f"expected a JSON object, got {type(row).__name__}", **where)
    unknown = sorted(set(row) - set(kinds))
    if unknown:
        raise DatasetFormatError(f"unknown field (schema_version {SCHEMA_VERSION} has "
                                 f"{', '.join(kinds)})", field=unknown[0], **where)
    out = {}
    for name, kind in kinds.items():
        if name not in row:
            if name not in _OPTIONAL_FIELDS[table]:
                raise DatasetFormatError("missing required field", field=name, **where)
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
            raise DatasetFormatError("missing required column", path=path, field=missing[0])
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
    if array.ndim != 2 or array.shape[1] != dim or not 1 <= array.shape[0] <= max_len:
        raise DatasetFormatError(f"{name} tensor has shape {tuple(array.shape)}, expected "
                                 f"(n <= {max_len}, {dim})", path=path, field=key)
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
        """(frames (n <= 50, 2048) float32 | None, audio (m <= 50, 128) float32 | None)."""
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
    on_notice: Callable[[str], None] | None = None,
) -> dict:
    """Write ``dataset`` (tables + its features, re-packed one file per modality) atomically.

    ``features`` maps video_id -> (frames, audio) (default: ``dataset.features`` when the
    dataset has a root). ``feature_dtype`` (float16/float32) sets the storage dtype (default
    float32). ``on_notice`` hears what :func:`tiktalk.io.atomic_directory` recovered or
    removed first. Returns the
    manifest, which holds no timestamps or absolute paths so equal data gives equal bytes.
    """
    if table_format not in TABLE_FORMATS:
        raise UsageError(f"unknown table format {table_format!r}: expected one of {TABLE_FORMATS}")
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


# ---------------------------------------------------------------------------- LCCC adapter

_LCCC_SPLITS = {"train": "train", "valid": "val", "test": "test"}


def lccc_utterance(text: str) -> str:
    """LCCC stores utterances as characters separated by spaces; join them back.

    Every token of the toy release is one character, so the original word spaces cannot
    be recovered; the characters are simply concatenated.
    """
    return "".join(text.split())


def load_lccc(path: str | Path, *, expand_turns: bool = False) -> TikTalkDataset:
    """Read LCCC JSON (``{"train"|"valid"|"test": [[utt, ...], ...]}``) as a text-only dataset.

    Each dialogue of n utterances gives one row: context = first n-1, response = last. With
    ``expand_turns`` every prefix gives a row (utterance i >= 1 as the response to 0..i-1),
    which is how CDial-GPT trains. val/test rows carry ``references = [response]``.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None
    if not isinstance(data, dict):
        raise DatasetFormatError("expected an object with train/valid/test lists", path=path)
    rows = []
    for key, split in _LCCC_SPLITS.items():
        dialogues = data.get(key, [])
        if not isinstance(dialogues, list):
            raise DatasetFormatError("expected a list of dialogues", path=path, field=key)
        for i, dialogue in enumerate(dialogues):
            if not (isinstance(dialogue, list) and len(dialogue) >= 2 and all(isinstance(u, str) for u in dialogue)):
                raise DatasetFormatError("a dialogue must be a list of >= 2 strings",
                                         path=path, field=f"{key}[{i}]", value=dialogue)
            utts = [lccc_utterance(u) for u in dialogue]
            ends = range(1, len(utts)) if expand_turns else [len(utts) - 1]
            for end in ends:
                suffix = f"-{end}" if expand_turns else ""
                rows.append({
                    "dialogue_id": f"lccc-{split}-{i:05d}{suffix}",
                    "video_id": None,
                    "split": split,
                    "context": utts[:end],
                    "response": utts[end],
                    "references": [] if split == "train" else [utts[end]],
                    "emoticons": [],
                    "turn_ids": [],
                })
    return from_rows([], rows)
