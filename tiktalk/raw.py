"""Raw Douyin-style comment trees: the readers of a raw directory, split files, and tree walks.

Raw input is a directory with two JSONL files (and optionally ``build_config.json``)::

    videos.jsonl    required: video_id (str|int)
                    optional: title (str, default ""), topic (str, default ""),
                              duration (seconds, default 0 = unknown), likes (int, default unknown)
    comments.jsonl  required: comment_id (str|int), parent_id (str|int|null: null = first-level
                              comment), video_id, text (str)
                    optional: likes (int, default unknown)

A row lacking several required fields is one error naming all of them. Unknown likes
(absent or null) are never compared with a likes threshold: such a video or comment is kept
by rules 1 and 2 (counted in ``likes_unknown``), and ranks as 0 likes when references are
chosen. A split file (``--split-file``) fixes the split of the videos it names (see
:func:`read_split_file`).

The build (:mod:`tiktalk.build`) reads a raw directory with these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiktalk.dataset import SPLITS, DatasetFormatError, read_jsonl_rows, require_fields
from tiktalk.errors import FormatError, MissingInputError
from tiktalk.io import open_input, read_json

RAW_VIDEOS, RAW_COMMENTS = "videos.jsonl", "comments.jsonl"


# ---------------------------------------------------------------------------- raw input


@dataclass(frozen=True)
class RawVideo:
    video_id: str
    title: str
    topic: str
    duration: float  # seconds; 0 when unknown
    likes: int | None  # None: unknown, never compared with a threshold
    line: int


@dataclass(frozen=True)
class RawComment:
    comment_id: str
    parent_id: str | None
    video_id: str
    text: str
    likes: int | None  # None: unknown
    line: int


RAW_VIDEO_REQUIRED = ("video_id",)
RAW_COMMENT_REQUIRED = ("comment_id", "parent_id", "video_id", "text")


def _id(value: Any, *, path: Path, line: int, name: str, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise DatasetFormatError("expected a non-empty string or integer id" + (" or null" if nullable else ""),
                                 path=path, line=line, field=name, value=value)
    return str(value)


def _likes(value: Any, *, path: Path, line: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatasetFormatError("expected a non-negative integer", path=path, line=line, field="likes", value=value)
    return value


def _text(value: Any, name: str, *, path: Path, line: int) -> str:
    if not isinstance(value, str):
        raise DatasetFormatError("expected a string", path=path, line=line, field=name, value=value)
    return value


def read_raw_videos(path: str | Path) -> list[RawVideo]:
    path = Path(path)
    out, seen = [], {}
    for line, row in read_jsonl_rows(path):
        if not isinstance(row, dict):
            raise DatasetFormatError("expected a JSON object", path=path, line=line)
        require_fields(row, RAW_VIDEO_REQUIRED, path=path, line=line)
        vid = _id(row["video_id"], path=path, line=line, name="video_id")
        if vid in seen:
            raise DatasetFormatError(f"duplicate video_id (first on line {seen[vid]})",
                                     path=path, line=line, field="video_id", value=vid)
        seen[vid] = line
        duration = row.get("duration", 0.0)
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
            raise DatasetFormatError("expected a non-negative number of seconds", path=path, line=line,
                                     field="duration", value=duration)
        out.append(RawVideo(vid, _text(row.get("title", ""), "title", path=path, line=line),
                            _text(row.get("topic", ""), "topic", path=path, line=line), float(duration),
                            _likes(row.get("likes"), path=path, line=line), line))
    return out


def read_raw_comments(path: str | Path) -> list[RawComment]:
    path = Path(path)
    out, seen = [], {}
    for line, row in read_jsonl_rows(path):
        if not isinstance(row, dict):
            raise DatasetFormatError("expected a JSON object", path=path, line=line)
        require_fields(row, RAW_COMMENT_REQUIRED, path=path, line=line)
        cid = _id(row["comment_id"], path=path, line=line, name="comment_id")
        if cid in seen:
            raise DatasetFormatError(f"duplicate comment_id (first on line {seen[cid]})",
                                     path=path, line=line, field="comment_id", value=cid)
        seen[cid] = line
        out.append(RawComment(
            cid, _id(row["parent_id"], path=path, line=line, name="parent_id", nullable=True),
            _id(row["video_id"], path=path, line=line, name="video_id"),
            _text(row["text"], "text", path=path, line=line), _likes(row.get("likes"), path=path, line=line), line))
    return out


def read_split_file(path: str | Path) -> dict[str, str]:
    """video_id -> split from a ``.json`` object (``{"v1": "test", ...}``) or, for any other
    suffix, TSV lines ``video_id<TAB>split`` (an optional header ``video_id<TAB>split``; blank
    lines and ``#`` comments skipped). Splits are train, val or test, exactly.
    """
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such split file")
    entries: list[tuple[int | None, Any, Any]] = []
    if path.suffix == ".json":
        try:
            data = read_json(path)
        except FormatError as err:
            raise DatasetFormatError(err.reason, path=path, line=err.line) from None
        if not isinstance(data, dict):
            raise DatasetFormatError("expected a JSON object video_id -> split", path=path)
        entries = [(None, vid, split) for vid, split in data.items()]
    else:
        with open_input(path) as fh:
            data = fh.read()
        try:
            lines = data.decode("utf-8-sig").splitlines()
        except UnicodeDecodeError as err:
            raise DatasetFormatError(f"not valid UTF-8 at byte {err.start}", path=path) from None
        for number, text in enumerate(lines, start=1):
            if not text.strip() or text.startswith("#"):
                continue
            parts = text.rstrip("\r").split("\t")
            if len(parts) != 2:
                raise DatasetFormatError("expected two tab-separated columns: video_id, split",
                                         path=path, line=number, value=text)
            if number == 1 and parts == ["video_id", "split"]:
                continue
            entries.append((number, parts[0].strip(), parts[1].strip()))
    out: dict[str, str] = {}
    for line, vid, split in entries:
        if not vid:
            raise DatasetFormatError("expected a non-empty video_id", path=path, line=line, field="video_id",
                                     value=vid)
        if split not in SPLITS:
            raise DatasetFormatError(f"expected one of {', '.join(SPLITS)}", path=path, line=line,
                                     field=f"split of {vid}", value=split)
        if vid in out and out[vid] != split:
            raise DatasetFormatError(f"video listed twice with different splits ({out[vid]!r} first)",
                                     path=path, line=line, field="video_id", value=vid)
        out[vid] = split
    return out


# ---------------------------------------------------------------------------- trees


def children_map(parents: dict[str, str | None]) -> dict[str | None, list[str]]:
    """parent id (None = the video) -> child ids, in the order of ``parents``."""
    out: dict[str | None, list[str]] = {}
    for cid, pid in parents.items():
        out.setdefault(pid, []).append(cid)
    return out


def root_to_leaf_chains(parents: dict[str, str | None]) -> list[list[str]]:
    """Every root-to-leaf path of a comment forest (``{comment_id: parent_id or None}``).

    Roots are comments whose parent is None; paths come out depth-first in the order of
    ``parents``. Every parent must be a key (remove orphans first).
    """
    kids = children_map(parents)
    chains: list[list[str]] = []
    stack: list[list[str]] = [[r] for r in reversed(kids.get(None, []))]
    while stack:
        path = stack.pop()
        below = kids.get(path[-1], [])
        if not below:
            chains.append(path)
        stack.extend([*path, c] for c in reversed(below))
    return chains
