"""The dataset in memory (:class:`TikTalkDataset`), loading and writing a dataset directory, splits."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tiktalk.dataset.features import (
    as_feature,
    check_stored,
    open_safetensors,
    read_tensor,
    save_features,
)
from tiktalk.dataset.schema import (
    AUDIO_DIM,
    DEFAULT_SPLIT_SEED,
    DIALOGUE_SCHEMA,
    EVAL_REFERENCES,
    FORMAT_NAME,
    FRAME_DIM,
    MAX_AUDIO,
    MAX_FRAMES,
    SAMPLE_NAME,
    SCHEMA_VERSION,
    SPLITS,
    TABLE_FORMATS,
    TABLE_SCHEMAS,
    VIDEO_SCHEMA,
    DatasetFormatError,
    validate_row,
)
from tiktalk.dataset.tables import read_jsonl_rows, read_table, table_frame, write_table
from tiktalk.errors import EmptyResultError, MissingInputError, UnknownNameError, UsageError
from tiktalk.io import (
    atomic_directory,
    check_regular_file,
    read_generation,
    read_json,
    recover_directory,
    sha256_file,
    write_json,
)
from tiktalk.types import DialogueExample


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
            self._check_feature_file(rel, name, video_id)
            if not path.exists():
                raise MissingInputError(f"{path}: {name} feature file of video {video_id!r} is missing")
            check_regular_file(path)
            recorded = self.manifest.get("features", {}).get("files", {}).get(rel) if self.manifest else None
            if recorded is not None:  # verified once, when first opened (feature files are large)
                _verify_sha(path, recorded, self.root / "manifest.json", f"features.files.{rel}")
            opened = open_safetensors(path)
            handle = self._feature_files[path] = (opened, set(opened.keys()))
        handle, keys = handle
        if video_id not in keys:
            raise DatasetFormatError(f"no {name} tensor for this video", path=path, field=video_id)
        return as_feature(name, read_tensor(handle, video_id, path), path=path, key=video_id)

    def _check_feature_file(self, rel: str, name: str, video_id: str) -> None:
        """A loaded dataset's feature path must be one its manifest lists with a hash, inside the directory."""
        if not self.manifest:
            return  # an in-memory dataset: no manifest to hold it to
        where = self.root / "manifest.json"
        check_relative(rel, where, f"videos.{name}_path of {video_id!r}")
        files = self.manifest.get("features", {}).get("files", {})
        if not isinstance(files, dict) or rel not in files:
            raise DatasetFormatError(f"video {video_id!r} names {name} file {rel!r}, which the manifest does not "
                                     "list with a sha256", path=where, field="features.files")

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
    return Path(__file__).resolve().parents[1] / "data" / "sample" / "built"


def sample_raw_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "sample" / "raw"


def resolve_path(path: str | Path) -> Path:
    """``sample`` -> the shipped built sample; any other path is kept."""
    return sample_dir() if str(path) == SAMPLE_NAME else Path(path)


def check_relative(name: object, manifest_path: Path, field: str) -> str:
    """A manifest's file name: relative, and inside the manifest's directory (no ``..``)."""
    if not isinstance(name, str) or not name or "\\" in name:
        raise DatasetFormatError("expected a relative file name", path=manifest_path, field=field, value=name)
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or rel.parts[0] == "":
        raise DatasetFormatError("file must be a relative path inside the dataset directory",
                                 path=manifest_path, field=field, value=name)
    return name


def _verify_sha(path: Path, expected: object, manifest_path: Path, field: str) -> None:
    if not isinstance(expected, str) or len(expected) != 64:
        raise DatasetFormatError("expected a sha256", path=manifest_path, field=field, value=expected)
    actual = sha256_file(path)
    if actual != expected:
        raise DatasetFormatError(f"{path.name} has sha256 {actual}, not the manifest's (the file is corrupt or "
                                 "was edited after the build)", path=manifest_path, field=field, value=expected)


def load_dataset(path: str | Path) -> TikTalkDataset:
    """Load a built dataset directory (with manifest.json), or ``"sample"``.

    Every table's recorded sha256 is verified (a table without one is refused), table and
    feature paths must lie inside the directory, and the reader sees one complete generation
    of it even while ``data build --overwrite`` replaces it (:func:`tiktalk.io.read_generation`).
    Feature files are verified when first opened.
    """
    root = resolve_path(path)
    recover_directory(root)  # a dataset left missing by an interrupted replacement
    return read_generation(root, lambda: _load_dataset_files(root))


def _load_dataset_files(root: Path) -> TikTalkDataset:
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
        paths[table] = root / check_relative(entry["file"], manifest_path, f"tables.{table}.file")
        if "sha256" not in entry:
            raise DatasetFormatError("no sha256 recorded for the table; refusing to read it unchecked",
                                     path=manifest_path, field=f"tables.{table}.sha256")
        if not paths[table].exists():
            raise MissingInputError(f"{paths[table]}: table {table} of the dataset is missing")
        check_regular_file(paths[table])
        _verify_sha(paths[table], entry["sha256"], manifest_path, f"tables.{table}.sha256")
    videos = read_table("videos", paths["videos"])
    dialogues = read_table("dialogues", paths["dialogues"])
    _check_cross_references(videos, dialogues, paths)
    for table, frame in (("videos", videos), ("dialogues", dialogues)):
        rows = manifest["tables"][table].get("rows")
        if rows is not None and rows != frame.height:
            raise DatasetFormatError(f"manifest says {rows} rows but {paths[table].name} has {frame.height}",
                                     path=manifest_path, field=f"tables.{table}.rows", value=rows)
    return TikTalkDataset(videos, dialogues, root, manifest)


def rel_name(name: str) -> str:
    return f"features/{name}.safetensors"


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
                    arr = as_feature(name, arr, path=Path(f"<{name} of the source>"), key=vid)
                    tensors[name][vid] = check_stored(name, arr.astype(dtype), arr, path=rel_name(name), key=vid)
                    index.setdefault(vid, {})[name] = list(arr.shape)
        rel = {name: rel_name(name) for name in tensors}
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
    vf, df = table_frame("videos", v), table_frame("dialogues", d)
    _check_cross_references(vf, df, {"videos": Path("<videos>"), "dialogues": Path("<dialogues>")})
    return TikTalkDataset(vf, df, root)


def split_of(video_id: str, val_fraction: float, test_fraction: float, seed: str = DEFAULT_SPLIT_SEED) -> str:
    """Deterministic split from a hash of the video id: val, test or train by fraction."""
    digest = hashlib.sha256(f"{seed}:{video_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"


GOLD_ATTRS_FILE = "gold_attrs.jsonl"  # side file of a KdConv import: the knowledge each response used


def read_gold_attrs(dataset_dir: str | Path) -> dict[str, list[dict]]:
    """``gold_attrs.jsonl`` of an imported KdConv dataset: dialogue_id -> the response's attrs."""
    path = resolve_path(dataset_dir) / GOLD_ATTRS_FILE
    if not path.exists():
        raise MissingInputError(f"{path}: no gold attrs (written by `tiktalk data import --from kdconv`)")
    manifest_path = path.parent / "manifest.json"
    if manifest_path.exists():
        recorded = read_json(manifest_path)
        recorded = recorded.get("extra_files", {}) if isinstance(recorded, dict) else {}
        if not isinstance(recorded, dict) or GOLD_ATTRS_FILE not in recorded:
            raise DatasetFormatError(f"no sha256 recorded for {GOLD_ATTRS_FILE}", path=manifest_path,
                                     field="extra_files")
        _verify_sha(path, recorded[GOLD_ATTRS_FILE], manifest_path, f"extra_files.{GOLD_ATTRS_FILE}")
    out: dict[str, list[dict]] = {}
    for line, row in read_jsonl_rows(path):
        if not (isinstance(row, dict) and isinstance(row.get("dialogue_id"), str)
                and isinstance(row.get("attrs"), list)):
            raise DatasetFormatError("expected {\"dialogue_id\": str, \"attrs\": list}", path=path, line=line)
        out[row["dialogue_id"]] = row["attrs"]
    return out
