"""Precompute knowledge for a whole dataset: the knowledge cache (``tiktalk annotate``).

The cache's schema, writer and reader live in :mod:`retrieval.cache`. The run is
chunked and resumable: each chunk of ``chunk_size`` dialogues is written atomically as a
part file in a folder keyed by everything that determines the output (index files,
encoder, retriever settings, knowledge budget, input rows, chunk size). A restarted run
skips the parts already there and the final file is assembled from the parts in chunk
order, so a run killed half way and restarted gives the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import polars as pl

from retrieval.cache import (
    KNOWLEDGE_CACHE_SCHEMA,
    SELECTION_COLUMNS,
    parquet_bytes,
    write_knowledge_cache,
)
from retrieval.retriever import Retriever
from tiktalk.errors import OutputExistsError, UsageError
from tiktalk.io import atomic_write_bytes


def linearised_for(retriever: Retriever) -> dict:
    """What a cache made by ``retriever`` was linearised for (its metadata; part of the run key)."""
    manifest = retriever.index.manifest
    return {
        "budget": None if retriever.budget is None else retriever.budget.as_dict(),
        "retriever": json.loads(json.dumps(asdict(retriever.config), default=str, ensure_ascii=False)),
        "encoder": {"name": retriever.encoder.name, "fingerprint": retriever.encoder.fingerprint},
        "kg_content_sha256": manifest["kg"]["content_sha256"],
        "selection": retriever.selection_settings,
    }


def _run_key(retriever: Retriever, rows: pl.DataFrame, chunk_size: int) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(retriever.index.manifest.get("files", {}), sort_keys=True).encode())
    digest.update(json.dumps(linearised_for(retriever), sort_keys=True, ensure_ascii=False).encode())
    digest.update(str(chunk_size).encode())
    for did, ctx, title in rows.select("dialogue_id", "context", "title").iter_rows():
        digest.update(json.dumps([did, ctx, title], ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()[:16]


def _chunk_frame(retriever: Retriever, chunk: pl.DataFrame) -> pl.DataFrame:
    results = retriever.retrieve_batch(chunk["context"].to_list(), chunk["title"].to_list())
    selected = {}
    if retriever.scorer is not None:
        selected = {"pieces": [[p.passage for p in r.pieces or []] for r in results],
                    "abstained": [r.abstained for r in results]}
    return pl.DataFrame(
        {
            "dialogue_id": chunk["dialogue_id"].to_list(),
            "query": [" | ".join(r.queries) for r in results],
            "heads": [[h.text for h in r.heads] for r in results],
            "head_ids": [[h.id for h in r.heads] for r in results],
            "families": [[h.family for h in r.heads] for r in results],
            "scores": [[h.score for h in r.heads] for r in results],
            "knowledge": [r.knowledge for r in results],
            **selected,
        },
        schema={**KNOWLEDGE_CACHE_SCHEMA, **(SELECTION_COLUMNS if selected else {})},
    )


def annotate(
    retriever: Retriever,
    rows: pl.DataFrame,
    out: str | Path,
    *,
    chunk_size: int = 256,
    progress: bool = True,
    overwrite: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> dict:
    """Retrieve knowledge for every row of ``rows`` (dialogue_id, context, title) into ``out``.

    ``on_chunk(i)`` is called after chunk ``i`` is safely on disk (tests use it to simulate
    a crash). ``on_notice`` hears of leftovers removed under the caller's output lock
    (:func:`tiktalk.io.atomic_write_bytes`). Returns counts: rows, chunks, chunks reused from an
    earlier run, the run key, and the knowledge budget the segments were cut to (``retriever.budget``).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if chunk_size < 1:
        raise UsageError(f"chunk_size ({chunk_size}) must be at least 1")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists (pass overwrite=True / --overwrite)")
    if out.is_dir():  # checked before any part is written; --overwrite replaces files only
        raise UsageError(f"{out} is a directory; a file is written there")
    if "title" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("title"))
    dupes = rows.filter(pl.col("dialogue_id").is_duplicated())["dialogue_id"].unique().sort().to_list()
    if dupes:
        raise UsageError(f"dialogue_id values repeat: {dupes[:5]}")

    # a piece selection's hub background is these rows (set before the run key, which records it)
    retriever.prepare_background(rows["context"].to_list(), rows["title"].to_list(), progress=progress)
    key = _run_key(retriever, rows, chunk_size)
    parts = out.parent / f".{out.name}.parts-{key}"
    parts.mkdir(parents=True, exist_ok=True)
    n_chunks = (rows.height + chunk_size - 1) // chunk_size
    reused = 0
    with tqdm(total=rows.height, desc="annotate", unit="dialogue", disable=not progress) as bar:
        for i in range(n_chunks):
            part = parts / f"part-{i:06d}.parquet"
            chunk = rows.slice(i * chunk_size, chunk_size)
            if part.is_file():
                reused += 1
            else:
                atomic_write_bytes(part, parquet_bytes(_chunk_frame(retriever, chunk)))
            bar.update(chunk.height)
            if on_chunk is not None:
                on_chunk(i)
    frames = [pl.read_parquet(parts / f"part-{i:06d}.parquet") for i in range(n_chunks)]
    schema = {**KNOWLEDGE_CACHE_SCHEMA, **(SELECTION_COLUMNS if retriever.scorer is not None else {})}
    table = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)
    write_knowledge_cache(table, out, linearised_for(retriever), on_notice=on_notice)
    shutil.rmtree(parts, ignore_errors=True)
    budget = None if retriever.budget is None else retriever.budget.as_dict()
    result = {"out": str(out), "rows": table.height, "chunks": n_chunks, "chunks_reused": reused, "run_key": key,
              "budget": budget, "selection": retriever.selection_settings}
    if retriever.scorer is not None:
        result["abstained"] = int(table["abstained"].sum())
        result["empty"] = int((table["knowledge"] == "").sum())
    return result

