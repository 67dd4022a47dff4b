"""The knowledge cache: JSONL/dataset input, output columns, budget, and byte-identical resume."""

from __future__ import annotations

import json

import polars as pl
import pytest

from retrieval.annotate import annotate
from retrieval.cache import read_knowledge_cache, read_knowledge_cache_info
from retrieval.contexts import read_contexts, read_jsonl_contexts
from retrieval.retriever import Retriever
from tiktalk.types import KnowledgeBudget

CONTEXTS = [
    ["这披萨看着好香"], ["我家猫天天拆家", "哈哈哈"], ["周末去爬山累死了"], ["新游戏好难"],
    ["今天发工资了"], ["火锅走起"], ["狗狗走丢了好着急"], ["这首歌单曲循环"], ["下雪了"], ["考试没考好"],
]


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "dialogues.jsonl"
    path.write_text("".join(json.dumps({"dialogue_id": f"d{i:02d}", "context": c}, ensure_ascii=False) + "\n"
                            for i, c in enumerate(CONTEXTS)), encoding="utf-8")
    return path


class Crash(RuntimeError):
    pass


def test_resume_gives_identical_bytes(tmp_path, jsonl, sample_index_dir):
    retriever = Retriever.load(sample_index_dir, budget=KnowledgeBudget(30))
    rows = read_contexts(jsonl)
    straight = annotate(retriever, rows, tmp_path / "a.parquet", chunk_size=3, progress=False)
    assert straight["chunks"] == 4 and straight["chunks_reused"] == 0

    def crash_after_second(i: int) -> None:
        if i == 1:
            raise Crash("killed")

    with pytest.raises(Crash):
        annotate(retriever, rows, tmp_path / "b.parquet", chunk_size=3, progress=False, on_chunk=crash_after_second)
    assert not (tmp_path / "b.parquet").exists()
    parts = list(tmp_path.glob(".b.parquet.parts-*/part-*.parquet"))
    assert len(parts) == 2
    resumed = annotate(retriever, rows, tmp_path / "b.parquet", chunk_size=3, progress=False)
    assert resumed["chunks_reused"] == 2
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert not list(tmp_path.glob(".b.parquet.parts-*")), "parts folder removed after assembly"

    table = pl.read_parquet(tmp_path / "a.parquet")
    assert table["dialogue_id"].to_list() == [f"d{i:02d}" for i in range(len(CONTEXTS))]
    assert {"dialogue_id", "heads", "scores", "knowledge"} <= set(table.columns)
    first = retriever.retrieve(CONTEXTS[0])
    assert table["heads"][0].to_list() == [h.text for h in first.heads]
    assert table["knowledge"][0] == first.knowledge
    assert read_knowledge_cache(tmp_path / "a.parquet")["d00"] == first.knowledge
    assert all(0 < len(k) <= 30 for k in table["knowledge"].to_list())
    info = read_knowledge_cache_info(tmp_path / "a.parquet")
    assert info["budget"] == {"max_tokens": 30, "tokenizer": "characters"} == straight["budget"]
    assert info["retriever"]["top_k"] == retriever.config.top_k
    # another budget is another run: its parts are not reused
    longer = Retriever.load(sample_index_dir, budget=KnowledgeBudget(60))
    other = annotate(longer, rows, tmp_path / "c.parquet", chunk_size=3, progress=False)
    assert other["run_key"] != straight["run_key"] and other["chunks_reused"] == 0


def test_jsonl_errors_name_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"dialogue_id": "a", "context": ["x"]}\n{"dialogue_id": "b", "context": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'context' must be a list of strings"):
        read_jsonl_contexts(bad)
    bad.write_text('{"dialogue_id": "a", "context": []}\n{"dialogue_id": "a", "context": []}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'dialogue_id' 'a' repeats line 1"):
        read_jsonl_contexts(bad)
    bad.write_text('{"dialogue_id": "a", "context": [}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid JSON"):
        read_jsonl_contexts(bad)


def test_dataset_sample_input():
    pytest.importorskip("tiktalk.dataset")
    try:
        rows = read_contexts("sample")
    except FileNotFoundError as err:
        pytest.skip(f"the sample dataset is not built yet: {err}")
    assert rows.columns == ["dialogue_id", "context", "title"]
    assert rows.height > 0 and rows["dialogue_id"].n_unique() == rows.height
    assert rows["title"].null_count() < rows.height  # titles joined from the videos table
