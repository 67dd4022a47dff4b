"""Dialogue contexts to retrieve for: a JSONL of contexts or a dataset's dialogues.

Read by ``annotate`` and by the hub statistics' background (:mod:`retrieval.hubness`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tiktalk.errors import UsageError


def read_jsonl_contexts(path: str | Path) -> pl.DataFrame:
    """A JSONL of ``{"dialogue_id": str, "context": [str, ...], "title": str (optional)}``."""
    from tiktalk.dataset import (
        read_jsonl_rows,  # the one JSONL reader: bad JSON names file and line
    )

    path = Path(path)
    rows, seen = [], {}
    for line_no, obj in read_jsonl_rows(path):
        if not isinstance(obj, dict):
            raise UsageError(f"{path}:{line_no}: expected an object, got {type(obj).__name__}")
        did, ctx, title = obj.get("dialogue_id"), obj.get("context"), obj.get("title")
        if not isinstance(did, str) or not did:
            raise UsageError(f"{path}:{line_no}: field 'dialogue_id' must be a non-empty string (value {did!r})")
        if not isinstance(ctx, list) or not all(isinstance(t, str) for t in ctx):
            raise UsageError(f"{path}:{line_no}: field 'context' must be a list of strings (value {ctx!r})")
        if title is not None and not isinstance(title, str):
            raise UsageError(f"{path}:{line_no}: field 'title' must be a string or absent (value {title!r})")
        if did in seen:
            raise UsageError(f"{path}:{line_no}: field 'dialogue_id' {did!r} repeats line {seen[did]}")
        seen[did] = line_no
        rows.append({"dialogue_id": did, "context": ctx, "title": title})
    return pl.DataFrame(rows, schema={"dialogue_id": pl.String, "context": pl.List(pl.String), "title": pl.String})


def read_contexts(data: str | Path, split: str | None = None) -> pl.DataFrame:
    """Dialogues to annotate: a JSONL file, or a TikTalk dataset directory / ``sample``
    (its dialogues, with each video's title). Columns: dialogue_id, context, title."""
    path = Path(data)
    if path.is_file():
        if split is not None:
            raise UsageError(f"--split applies to a dataset directory, not to the JSONL file {path}")
        return read_jsonl_contexts(path)
    from tiktalk.dataset import load_dataset  # the dataset package is optional for JSONL users

    dataset = load_dataset(data)
    if split is not None:
        dataset = dataset.split(split)
    titles = dataset.videos.select("video_id", "title")
    return (
        dataset.dialogues.select("dialogue_id", "video_id", "context")
        .join(titles, on="video_id", how="left", maintain_order="left")
        .select("dialogue_id", "context", "title")
    )
