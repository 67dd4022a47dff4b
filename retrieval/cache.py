"""The knowledge cache: one schema, one writer, one reader.

`tiktalk annotate` writes it (:func:`write_knowledge_cache`); training, generation and
reproduction read it (:func:`read_knowledge_cache`); retrieval never runs inside a
training step. A Parquet file, one row per dialogue:

    dialogue_id  str        unique
    query        str        the query text(s), joined by `` | ``
    heads        list[str]  retrieved head texts, best first
    head_ids     list[str]  their KG node ids
    families     list[str]  the flow family each head starts
    scores       list[f32]  their scores: cosine, minus the hub penalty when hub-corrected
    knowledge    str        the linearised knowledge segment (``kg.linearize``)

A cache made by a piece selection (``annotate --selection dense|learned``) has two more
columns, :data:`SELECTION_COLUMNS`:

    pieces       list[str]  the chosen pieces' passages (``head，piece``), best first
    abstained    bool       True when the selector judged no candidate worth a segment
                            (its knowledge is then empty on purpose)

The writer checks the whole schema; a reader checks the two columns it reads
(``dialogue_id``, ``knowledge``), so a hand-made two-column cache works too. The Parquet
key-value metadata ``tiktalk.knowledge`` (JSON) records what the segments were linearised
for: the budget (``max_tokens`` and the ``tokenizer`` that counted them), the retriever
settings, the encoder and the KG. :func:`budget_mismatch` compares that with a model's
budget (a model drops whole trailing pieces of a segment that does not fit it).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl

from tiktalk.errors import FormatError, MissingInputError
from tiktalk.io import atomic_write_bytes
from tiktalk.types import KnowledgeBudget

KNOWLEDGE_CACHE_SCHEMA: dict[str, pl.DataType] = {
    "dialogue_id": pl.String, "query": pl.String, "heads": pl.List(pl.String), "head_ids": pl.List(pl.String),
    "families": pl.List(pl.String), "scores": pl.List(pl.Float32), "knowledge": pl.String,
}
SELECTION_COLUMNS: dict[str, pl.DataType] = {"pieces": pl.List(pl.String), "abstained": pl.Boolean}
READ_COLUMNS = ("dialogue_id", "knowledge")
METADATA_KEY = "tiktalk.knowledge"
FORMAT_VERSION = 1


def check_schema(schema: dict[str, pl.DataType], where: str | Path, columns=None) -> None:
    """Raise FormatError naming ``where`` and the first missing or ill-typed column of ``columns``
    (default: every column of the cache schema)."""
    known = {**KNOWLEDGE_CACHE_SCHEMA, **SELECTION_COLUMNS}
    for name in columns or KNOWLEDGE_CACHE_SCHEMA:
        expected = known[name]
        if name not in schema:
            raise FormatError(f"{where}: knowledge cache column {name!r} is missing (columns: {list(schema)})")
        if schema[name] != expected and schema[name] != pl.Null:  # an all-null column has type Null
            raise FormatError(f"{where}: knowledge cache column {name!r} has type {schema[name]}, expected {expected}")


def parquet_bytes(frame: pl.DataFrame, metadata: dict[str, str] | None = None) -> bytes:
    """Deterministic Parquet bytes (same frame and metadata -> same bytes)."""
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", compression_level=3, statistics=False, metadata=metadata)
    return buf.getvalue()


def write_knowledge_cache(frame: pl.DataFrame, path: str | Path, linearised_for: dict | None = None,
                          on_notice: Callable[[str], None] | None = None) -> None:
    """Write ``frame`` (exactly the cache schema, optionally followed by the selection columns) to
    ``path`` atomically, with ``linearised_for`` (budget, retriever settings, ...) in the metadata."""
    base, extended = list(KNOWLEDGE_CACHE_SCHEMA), [*KNOWLEDGE_CACHE_SCHEMA, *SELECTION_COLUMNS]
    if list(frame.columns) not in (base, extended):
        raise FormatError(f"knowledge cache to write: columns {frame.columns} are not {base} "
                          f"(or those and {list(SELECTION_COLUMNS)})")
    check_schema(dict(frame.schema), "knowledge cache to write", frame.columns)
    duplicated = frame.filter(pl.col("dialogue_id").is_duplicated())["dialogue_id"]
    if duplicated.len():
        raise FormatError(f"knowledge cache to write: dialogue_id {duplicated[0]!r} appears more than once")
    info = {"format_version": FORMAT_VERSION, **(linearised_for or {})}
    metadata = {METADATA_KEY: json.dumps(info, sort_keys=True, ensure_ascii=False)}
    atomic_write_bytes(path, parquet_bytes(frame, metadata), on_notice=on_notice)


def _schema(path: Path) -> dict[str, pl.DataType]:
    if not path.is_file():
        raise MissingInputError(f"knowledge cache {path} does not exist (write one with `tiktalk annotate`)")
    try:
        return dict(pl.read_parquet_schema(path))
    except (OSError, pl.exceptions.PolarsError) as err:
        raise FormatError(f"{path}: not a Parquet file ({err})") from None


def read_knowledge_cache(path: str | Path) -> dict[str, str]:
    """dialogue_id -> knowledge text (a null knowledge reads as ``""``)."""
    path = Path(path)
    check_schema(_schema(path), path, READ_COLUMNS)
    table = pl.read_parquet(path, columns=list(READ_COLUMNS))
    if table["dialogue_id"].null_count():
        raise FormatError(f"{path}: knowledge cache column 'dialogue_id' has null values")
    duplicated = table.filter(pl.col("dialogue_id").is_duplicated())["dialogue_id"]
    if duplicated.len():
        raise FormatError(f"{path}: dialogue_id {duplicated[0]!r} appears more than once")
    return {d: (k or "") for d, k in zip(table["dialogue_id"].to_list(), table["knowledge"].to_list())}


def read_knowledge_cache_info(path: str | Path) -> dict:
    """What the cache's segments were linearised for (``{}`` when not recorded: a hand-made cache)."""
    path = Path(path)
    _schema(path)
    raw = pl.read_parquet_metadata(path).get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: metadata {METADATA_KEY!r} is not valid JSON ({err})") from None


def budget_mismatch(recorded: dict | None, budget: KnowledgeBudget | None, path: str | Path) -> str | None:
    """A one-line warning when the cache at ``path`` was linearised for another budget
    (``recorded``: its metadata's ``budget``) than ``budget`` (a model's), else None."""
    if budget is None:
        return None
    if recorded is None:
        return (f"{path} records no knowledge budget (uncut, or made by hand): segments over the model's "
                f"{budget.max_tokens} tokens lose whole trailing pieces")
    if recorded != budget.as_dict():
        return (f"{path} was linearised for {recorded['max_tokens']} tokens of {recorded['tokenizer']!r}, the model "
                f"reads {budget.max_tokens} tokens of {budget.tokenizer!r}: re-annotate for this model, or longer "
                "segments lose whole trailing pieces")
    return None
