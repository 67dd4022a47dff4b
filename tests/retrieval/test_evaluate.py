"""Retrieval quality on the paraphrase check: rows by source, kind and split; the retriever's merge."""

from __future__ import annotations

import json
import re

import pytest

import kg
from retrieval.evaluate import KS, load_paraphrase_check, metrics, paraphrase_recall
from retrieval.index import build_head_index
from retrieval.query import DEFAULT_VARIANT
from retrieval.retriever import Retriever, RetrieverConfig
from tests.conftest import shared_path
from tiktalk.commands.main import main
from tiktalk.errors import FormatError


def test_metrics():
    m = metrics([1, 3, None, 10, 2], ks=(1, 5, 10))
    assert m == {"recall@1": 0.2, "recall@5": 0.6, "recall@10": 0.8, "mrr": round((1 + 1 / 3 + 0.1 + 0.5) / 5, 4),
                 "queries": 5}


def test_sources_splits_and_skipped_c3kg(sample_kg, hash_encoder):
    rows = load_paraphrase_check()
    report = paraphrase_recall(hash_encoder, {"sample": sample_kg, "c3kg": None})
    c3kg = report["sources"]["c3kg"]
    assert c3kg == {"skipped": "no KG given for source 'c3kg'", "rows": sum(r["source"] == "c3kg" for r in rows)}
    sample = report["sources"]["sample"]
    table = sample["table"][DEFAULT_VARIANT]
    for split in ("dev", "test"):
        assert table[split]["queries"] == sum(r["source"] == "sample" and r["split"] == split for r in rows)
    assert table["all"]["queries"] == sample["rows"] == table["dev"]["queries"] + table["test"]["queries"]
    assert sample["left_out"] == {}
    # an event-only index (C3KG's own matcher) scores event rows only and says what it left out
    events = paraphrase_recall(hash_encoder, {"sample": sample_kg}, kinds="event")["sources"]["sample"]
    kinds = {k: sum(r["source"] == "sample" and r["kind"] == k for r in rows) for k in ("event", "phrase", "emotion")}
    assert events["rows"] == kinds["event"] and events["left_out"] == {"phrase": kinds["phrase"],
                                                                        "emotion": kinds["emotion"]}


def test_ranks_are_the_retrievers(sample_kg, hash_encoder):
    """The benchmark's ranking is exactly what the Retriever returns for the same query."""
    report = paraphrase_recall(hash_encoder, {"sample": sample_kg})
    index = build_head_index(sample_kg, hash_encoder, None, progress=False)
    retriever = Retriever(index, sample_kg, hash_encoder, RetrieverConfig(top_k=max(KS)))
    rows = [r for r in load_paraphrase_check() if r["source"] == "sample"]
    results = retriever.retrieve_batch([r["context"] for r in rows], [r["title"] for r in rows])
    ranks = {"dev": [], "test": []}
    for row, result in zip(rows, results):
        texts = [h.text for h in result.heads]
        ranks[row["split"]].append(texts.index(row["gold"]) + 1 if row["gold"] in texts else None)
    for split, got in ranks.items():
        assert report["sources"]["sample"]["table"][DEFAULT_VARIANT][split] == metrics(got)


def test_c3kg_rows_among_the_real_heads(hash_encoder):
    heads = kg.load_kg(shared_path("c3kg_heads_sample"))
    report = paraphrase_recall(hash_encoder, {"c3kg": heads}, variants=None)
    part = report["sources"]["c3kg"]
    assert part["rows"] == sum(r["source"] == "c3kg" for r in load_paraphrase_check())
    assert part["passages"] == heads.nodes.height and report["sources"]["sample"]["skipped"]


def test_bad_rows_name_file_line_and_gold(tmp_path, sample_kg, hash_encoder):
    bad = tmp_path / "check.jsonl"
    row = {"id": "x1", "title": "t", "context": ["吃了"], "gold": "不存在的头", "kind": "event", "source": "sample",
           "split": "dev"}
    bad.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"check.jsonl: row x1: gold '不存在的头' is not a event node of the sample KG"):
        paraphrase_recall(hash_encoder, {"sample": sample_kg}, path=bad)
    bad.write_text(json.dumps({**row, "split": "train"}) + "\n" + json.dumps({**row, "kind": 3}) + "\n")
    with pytest.raises(FormatError, match=r"check.jsonl:1: field 'split' is 'train', not one of \['dev', 'test'\]"):
        load_paraphrase_check(bad)


def test_index_eval_command(capsys):
    assert main(["index", "eval", "--encoder", "hash:32", "--variants", "last1,last2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["encoder"]["name"] == "hash:32"
    sources = result["paraphrase"]["sources"]
    assert "skipped" in sources["c3kg"]
    assert set(sources["sample"]["table"]) == {"last1", "last2"}
    m = sources["sample"]["table"]["last2"]["test"]
    assert set(m) == {"recall@1", "recall@5", "recall@10", "mrr", "queries"}
    assert 0 <= m["recall@1"] <= m["recall@5"] <= m["recall@10"] <= 1
    assert main(["index", "eval", "--encoder", "hash:32"]) == 0
    assert re.search(r"c3kg: skipped, \d+ rows \(no KG given", capsys.readouterr().out)
    assert main(["index", "eval", "--encoder", "hash:32", "--variants", "bogus"]) == 2
    assert "query variants ['bogus'] are unknown" in capsys.readouterr().err
