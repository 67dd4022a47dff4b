"""``tiktalk index build|info``, ``retrieve`` and ``annotate`` through the real parser."""

from __future__ import annotations

import json

import polars as pl

from fusion.modeling_maria import MariaForDialogue
from retrieval.cache import read_knowledge_cache, read_knowledge_cache_info
from tiktalk.commands.main import main


def run_json(capsys, *argv) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_build_retrieve_annotate(tmp_path, capsys):
    out = tmp_path / "idx"
    built = run_json(capsys, "index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32",
                     "--kinds", "event,phrase")
    assert built["factory"] == "Flat" and set(built["counts"]) == {"event", "concept"}
    assert built["encoder"]["name"] == "hash:32" and not built["reused_embeddings"]
    rebuilt = run_json(capsys, "index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32",
                       "--kinds", "event,phrase", "--factory", "HNSW32", "--ef-search", "64", "--overwrite")
    assert rebuilt["reused_embeddings"] and rebuilt["search_params"]["ef_search"] == 64
    info = run_json(capsys, "index", "info", str(out))
    assert info["factory"] == "HNSW32"

    # the paper's head-major selection: top-k heads, the first one's pieces first
    got = run_json(capsys, "retrieve", "--index", str(out), "--top-k", "2", "--selection", "paper", "这披萨看着好香", "饿了")
    assert set(got) == {"queries", "heads", "knowledge"} and len(got["heads"]) == 2
    assert {"text", "score", "kind", "family"} <= set(got["heads"][0])
    assert got["knowledge"].startswith(got["heads"][0]["text"])
    # the default, a dense piece selection: the chosen pieces, their heads in order of first piece
    dense = run_json(capsys, "retrieve", "--index", str(out), "--candidate-heads", "2", "--named-heads", "1",
                     "--max-tokens", "40", "这披萨看着好香", "饿了")
    assert dense["pieces"] and dense["abstained"] is False and len(dense["heads"]) <= 3
    assert [h["text"] for h in dense["heads"]] == list(dict.fromkeys(p.split("，")[0] for p in dense["pieces"]))
    assert dense["knowledge"].startswith(dense["heads"][0]["text"]) and len(dense["knowledge"]) <= 40
    assert main(["retrieve", "--index", str(out), "--selection", "bogus", "hi"]) == 2
    assert "selection 'bogus' is not one of" in capsys.readouterr().err

    data = tmp_path / "d.jsonl"
    data.write_text('{"dialogue_id": "x1", "context": ["周末去爬山"]}\n', encoding="utf-8")
    ann = run_json(capsys, "annotate", "--index", str(out), "--data", str(data), "--out", str(tmp_path / "k.parquet"))
    assert ann["rows"] == 1 and ann["selection"]["name"] == "dense"
    table = pl.read_parquet(tmp_path / "k.parquet")
    assert table["dialogue_id"].to_list() == ["x1"] and table.columns[-2:] == ["pieces", "abstained"]
    paper = run_json(capsys, "annotate", "--index", str(out), "--data", str(data), "--out", str(tmp_path / "p.parquet"),
                     "--selection", "paper")
    assert paper["selection"] == {"name": "paper"} and "abstained" not in paper
    assert "pieces" not in pl.read_parquet(tmp_path / "p.parquet").columns
    # by default linearised for Maria (its tiny preset's config), and the cache says so
    maria = MariaForDialogue.from_preset("tiny").knowledge_budget()
    assert ann["budget"] == maria.as_dict() == read_knowledge_cache_info(tmp_path / "k.parquet")["budget"]

    cut = run_json(capsys, "retrieve", "--index", str(out), "--top-k", "2", "--selection", "paper", "--max-tokens", "12",
                   "这披萨看着好香")
    assert 0 < len(cut["knowledge"]) <= 12
    chars = run_json(capsys, "annotate", "--index", str(out), "--data", str(data), "--out", str(tmp_path / "c.parquet"),
                     "--model", "none", "--max-tokens", "30")
    assert chars["budget"] == {"max_tokens": 30, "tokenizer": "characters"}
    assert len(read_knowledge_cache(tmp_path / "c.parquet")["x1"]) <= 30
    assert main(["annotate", "--index", str(out), "--data", str(data), "--out", str(tmp_path / "d.parquet"),
                 "--model", "dialogpt"]) == 2
    assert "model 'dialogpt' reads no knowledge" in capsys.readouterr().err


def test_errors_exit_2_with_message(tmp_path, capsys):
    assert main(["retrieve", "--index", str(tmp_path / "nope"), "hi"]) == 2
    assert "index directory" in capsys.readouterr().err
    assert main(["index", "build", "--out", str(tmp_path / "i"), "--encoder", "bogus"]) == 2
    assert "unknown encoder 'bogus'" in capsys.readouterr().err
