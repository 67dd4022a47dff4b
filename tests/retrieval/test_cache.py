"""The knowledge cache's one schema, writer and reader (retrieval/cache.py)."""

from __future__ import annotations

import polars as pl
import pytest

from retrieval.cache import (
    KNOWLEDGE_CACHE_SCHEMA,
    budget_mismatch,
    read_knowledge_cache,
    read_knowledge_cache_info,
    write_knowledge_cache,
)
from tiktalk.errors import FormatError, MissingInputError
from tiktalk.types import KnowledgeBudget


def cache_frame(ids, knowledge) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame({"dialogue_id": ids, "query": ["q"] * n, "heads": [["h"]] * n, "head_ids": [["h"]] * n,
                         "families": [["event"]] * n, "scores": [[0.5]] * n, "knowledge": knowledge},
                        schema=KNOWLEDGE_CACHE_SCHEMA)


def test_round_trip_with_budget_metadata(tmp_path):
    path = tmp_path / "k.parquet"
    budget = KnowledgeBudget(69, tokenizer="char:21128:abc")
    write_knowledge_cache(cache_frame(["a", "b"], ["有人做饭，感到开心", None]), path, {"budget": budget.as_dict()})
    assert read_knowledge_cache(path) == {"a": "有人做饭，感到开心", "b": ""}
    info = read_knowledge_cache_info(path)
    assert info == {"format_version": 1, "budget": {"max_tokens": 69, "tokenizer": "char:21128:abc"}}
    assert budget_mismatch(info["budget"], budget, path) is None
    other = KnowledgeBudget(48, tokenizer="LlamaTokenizerFast:32000:def")
    warning = budget_mismatch(info["budget"], other, path)
    assert "linearised for 69 tokens of 'char:21128:abc', the model reads 48" in warning
    assert budget_mismatch(info["budget"], None, path) is None  # a model without knowledge does not care


def test_writer_checks_the_whole_schema(tmp_path):
    frame = cache_frame(["a"], ["k"]).with_columns(pl.col("scores").cast(pl.List(pl.Float64)))
    with pytest.raises(FormatError, match=r"column 'scores' has type List\(Float64\), expected List\(Float32\)"):
        write_knowledge_cache(frame, tmp_path / "k.parquet")
    with pytest.raises(FormatError, match=r"columns \['dialogue_id', 'heads', .*\] are not \['dialogue_id', 'query',"):
        write_knowledge_cache(cache_frame(["a"], ["k"]).drop("query"), tmp_path / "k.parquet")
    with pytest.raises(FormatError, match=r"dialogue_id 'a' appears more than once"):
        write_knowledge_cache(cache_frame(["a", "a"], ["k", "k"]), tmp_path / "k.parquet")
    assert not (tmp_path / "k.parquet").exists()


def test_reader_names_file_and_column(tmp_path):
    # a hand-made cache with the two columns a reader reads is enough, and records no budget
    two = tmp_path / "two.parquet"
    pl.DataFrame({"dialogue_id": ["x"], "knowledge": ["知识"]}).write_parquet(two)
    assert read_knowledge_cache(two) == {"x": "知识"}
    assert read_knowledge_cache_info(two) == {}
    assert "records no knowledge budget" in budget_mismatch(None, KnowledgeBudget(10), two)

    no_knowledge = tmp_path / "bad.parquet"
    pl.DataFrame({"dialogue_id": ["x"], "text": ["t"]}).write_parquet(no_knowledge)
    with pytest.raises(FormatError, match=r"bad.parquet: knowledge cache column 'knowledge' is missing"):
        read_knowledge_cache(no_knowledge)
    ill_typed = tmp_path / "typed.parquet"
    pl.DataFrame({"dialogue_id": [1, 2], "knowledge": ["a", "b"]}).write_parquet(ill_typed)
    with pytest.raises(FormatError, match=r"typed.parquet: knowledge cache column 'dialogue_id' has type Int64, "
                                          r"expected String"):
        read_knowledge_cache(ill_typed)
    dup = tmp_path / "dup.parquet"
    pl.DataFrame({"dialogue_id": ["a", "a"], "knowledge": ["k", "k"]}).write_parquet(dup)
    with pytest.raises(FormatError, match=r"dup.parquet: dialogue_id 'a' appears more than once"):
        read_knowledge_cache(dup)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(FormatError, match=r"junk.parquet: not a Parquet file"):
        read_knowledge_cache(junk)
    with pytest.raises(MissingInputError, match=r"nope.parquet does not exist"):
        read_knowledge_cache(tmp_path / "nope.parquet")
