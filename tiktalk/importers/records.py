"""The common path of every importer: dialogue records -> a validated, split dataset.

:func:`import_records` takes records in the JSONL format of ``tiktalk data import``
(:data:`IMPORT_FIELDS`, docs/corpus.md); each importer turns its corpus into such records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiktalk.dataset import (
    DEFAULT_SPLIT_SEED,
    PAPER_TEST_FRACTION,
    PAPER_VAL_FRACTION,
    SPLITS,
    DatasetFormatError,
    TikTalkDataset,
    check_splits,
    check_value,
    from_rows,
    require_fields,
    split_of,
    validate_row,
)
from tiktalk.errors import FormatError, MissingInputError
from tiktalk.io import read_json

# The JSONL format of `tiktalk data import`: field -> kind (see tiktalk.dataset.check_value). The first four
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
    manifest: dict[str, Any] = field(default_factory=dict)  # entries naming the source, e.g. {"source": "KdConv"}


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
            reason = check_value(IMPORT_FIELDS[name], value)
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


def read_json_file(path: Path) -> Any:
    """A whole JSON file; a missing file or bad JSON is an error naming it."""
    if not path.exists():
        raise MissingInputError(f"{path}: no such file")
    try:
        return read_json(path)  # the safe reader: bad UTF-8, deep nesting, a FIFO are one-line errors
    except FormatError as err:
        raise DatasetFormatError(err.reason, path=path, line=err.line) from None
