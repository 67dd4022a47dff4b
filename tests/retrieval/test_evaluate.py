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


def retriever_ranks(retriever) -> dict[str, list[int | None]]:
    """Split -> the rank of each sample-source row's gold among what the Retriever returns."""
    rows = [r for r in load_paraphrase_check() if r["source"] == "sample"]
    results = retriever.retrieve_batch([r["context"] for r in rows], [r["title"] for r in rows])
    ranks: dict[str, list[int | None]] = {"dev": [], "test": []}
    for row, result in zip(rows, results):
        texts = [h.text for h in result.heads]
        ranks[row["split"]].append(texts.index(row["gold"]) + 1 if row["gold"] in texts else None)
    return ranks


def _same_recall(measured: dict, reference: dict) -> None:
    """ir-measures' recall@k / MRR (what the tables report) equal the hand-written reference."""
    assert {k: measured[k] for k in reference} == reference
    assert 0 <= measured["ndcg@10"] <= 1 and 0 <= measured["map"] <= 1


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
    retriever = Retriever(index, sample_kg, hash_encoder, RetrieverConfig(top_k=max(KS), selection="paper"))
    ranks = retriever_ranks(retriever)
    for split, got in ranks.items():
        _same_recall(report["sources"]["sample"]["table"][DEFAULT_VARIANT][split], metrics(got))


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
    assert set(m) == {"recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "map", "queries"}
    assert 0 <= m["recall@1"] <= m["recall@5"] <= m["recall@10"] <= 1
    assert main(["index", "eval", "--encoder", "hash:32"]) == 0
    assert re.search(r"c3kg: skipped, \d+ rows \(no KG given", capsys.readouterr().out)
    assert main(["index", "eval", "--encoder", "hash:32", "--variants", "bogus"]) == 2
    assert "query variants ['bogus'] are unknown" in capsys.readouterr().err


def test_hub_corrected_ranks_are_the_retrievers(sample_kg, hash_encoder):
    """With a background, the check ranks exactly as a retriever over an index built with it."""
    from retrieval.evaluate import HubSetup
    from retrieval.hubness import read_background

    background = read_background("sample")
    report = paraphrase_recall(hash_encoder, {"sample": sample_kg}, hub=HubSetup(background, k=5))
    index = build_head_index(sample_kg, hash_encoder, None, progress=False, background=background, hub_k=5)
    retriever = Retriever(index, sample_kg, hash_encoder, RetrieverConfig(top_k=max(KS), selection="paper"))
    assert retriever.hub_corrected
    ranks = retriever_ranks(retriever)
    part = report["sources"]["sample"]
    for split, got in ranks.items():
        _same_recall(part["table"][DEFAULT_VARIANT][split], metrics(got))
    hubs = part["background_hubness"]
    assert hubs["in_sample"] and hubs["k"] == 5 and hubs["plain"]["queries"] == len(background.queries())
    # per family: each family's rows alone
    families = part["table"][DEFAULT_VARIANT]["families"]
    kinds = {"event": "event", "phrase": "concept", "emotion": "emotion"}
    rows = [r for r in load_paraphrase_check() if r["source"] == "sample"]
    for family, groups in families.items():
        got = [r for r, row in zip(ranks["dev"] + ranks["test"], [r for r in rows if r["split"] == "dev"]
                                   + [r for r in rows if r["split"] == "test"]) if kinds[row["kind"]] == family]
        _same_recall(groups["all"], metrics(got))


def test_kdconv_pools_and_splits(hash_encoder):
    from retrieval.evaluate import kdconv_recall, load_kdconv

    data = shared_path("kdconv_travel")
    kb, cases = load_kdconv(data, max_dialogues=5)
    gold_pool, gold_cases = load_kdconv(data, max_dialogues=5, pool="gold")
    assert len(kb) == 10_968 and len(gold_pool) < len(kb) and len(gold_cases) == len(cases)
    for case, gold_case in zip(cases, gold_cases):  # the same gold triples, renumbered
        assert {kb[g] for g in case.gold} == {gold_pool[g] for g in gold_case.gold}
    dev_passages, dev_cases = load_kdconv(data, max_dialogues=5, split="dev")
    assert dev_passages == kb and dev_cases[0].context != cases[0].context
    with pytest.raises(FormatError, match="KdConv split 'train'"):
        load_kdconv(data, split="train")
    report = kdconv_recall(hash_encoder, data, max_dialogues=3, pool="gold")
    m = report["table"][DEFAULT_VARIANT]["all"]
    assert report["pool"] == "gold" and m["queries"] == report["queries"] and 0 <= m["hub_share"] <= 1


def test_user_jsonl(tmp_path, sample_index_dir, sample_kg, hash_encoder):
    from retrieval.evaluate import user_recall
    from retrieval.index import HeadIndex

    index = HeadIndex.load(sample_index_dir)
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"context": ["深夜来了个意式大饼", "看得我口水直流"], "gold": "有人买披萨"},
        {"context": "今天好开心", "gold": "开心", "title": "日常"},
    ]) + "\n", encoding="utf-8")
    report = user_recall(index, hash_encoder, cases)
    table = report["table"][DEFAULT_VARIANT]
    assert report["rows"] == 2 and table["all"]["queries"] == 2 and not report["hub_corrected"]
    assert set(table["families"]) == {"event", "emotion"}
    # ranks are the retriever's
    retriever = Retriever(index, sample_kg, hash_encoder, RetrieverConfig(top_k=max(KS), selection="paper"))
    got = []
    for context, gold in ((["深夜来了个意式大饼", "看得我口水直流"], "有人买披萨"), (["今天好开心"], "开心")):
        texts = [h.text for h in retriever.retrieve(context).heads]
        got.append(texts.index(gold) + 1 if gold in texts else None)
    _same_recall(table["all"], metrics(got))
    cases.write_text(json.dumps({"context": ["吃了"], "gold": "没有这个头"}, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"cases.jsonl:1: field 'gold' '没有这个头' is no head text or id"):
        user_recall(index, hash_encoder, cases)
    cases.write_text(json.dumps({"context": [], "gold": "开心"}) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"cases.jsonl:1: field 'context' must be a non-empty list"):
        user_recall(index, hash_encoder, cases)


def test_index_eval_everything(tmp_path, capsys, sample_index_dir):
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"context": ["今天好开心"], "gold": "开心"}, ensure_ascii=False) + "\n", encoding="utf-8")
    plot = tmp_path / "eval.png"
    args = ["index", "eval", "--index", str(sample_index_dir), "--kdconv", str(shared_path("kdconv_travel")),
            "--kdconv-pool", "gold", "--cases", str(cases), "--background", "sample", "--hub-k", "5",
            "--plot", str(plot), "--workers", "1", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["encoder"]["name"] == "hash:32" and result["hub_correction"]["k"] == 5
    assert {"paraphrase", "kdconv", "data", "plot"} <= set(result)
    assert result["kdconv"]["background_hubness"]["in_sample"] is False  # fitted on train, measured on val+test
    assert plot.stat().st_size > 0 and plot.read_bytes()[:4] == b"\x89PNG"
    assert main([*args[:-1]]) == 0  # the text rendering
    out = capsys.readouterr().out
    assert "KdConv" in out and "background hubness" in out and "hub share" in out
    assert main(["index", "eval", "--index", str(sample_index_dir), "--encoder", "hash:8"]) == 2
    assert "--encoder and --index both name an encoder" in capsys.readouterr().err


def test_index_eval_writes_trec_files_ir_measures_reads_back_to_the_same_ndcg(tmp_path, capsys):
    import ir_measures

    from retrieval.evaluate import eval_plot_bars

    run_file, qrels_file, plot = tmp_path / "r.trec", tmp_path / "q.txt", tmp_path / "eval.png"
    assert main(["index", "eval", "--encoder", "hash:32", "--kdconv", str(shared_path("kdconv_travel")),
                 "--kdconv-pool", "gold", "--run-file", str(run_file), "--qrels-file", str(qrels_file),
                 "--plot", str(plot), "--workers", "1", "--background", "none", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trec"]["queries"] == len({line.split()[0] for line in qrels_file.read_text().splitlines()})
    prefix = f"kdconv:{DEFAULT_VARIANT}:"
    qrels = [q for q in ir_measures.read_trec_qrels(str(qrels_file)) if q.query_id.startswith(prefix)]
    run = [r for r in ir_measures.read_trec_run(str(run_file)) if r.query_id.startswith(prefix)]
    kdconv = result["kdconv"]["table"][DEFAULT_VARIANT]["all"]
    assert len({q.query_id for q in qrels}) == kdconv["queries"] == result["kdconv"]["queries"]
    # queries with nothing retrieved count 0, as the JSON counts them
    per_query = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.nDCG @ 10], qrels, run)}
    ndcg = sum(per_query.values()) / kdconv["queries"]
    assert round(ndcg, 4) == kdconv["ndcg@10"] and 0 < ndcg < 1
    ap = ir_measures.calc_aggregate([ir_measures.AP @ 10], qrels, run)[ir_measures.AP @ 10]
    assert abs(ap * len(per_query) / kdconv["queries"] - kdconv["map"]) < 1e-4
    # the plot: every part labelled with its query count; the lower-is-better hub share apart
    labels = [label for label, _ in eval_plot_bars(result)]
    assert f"kdconv\nn={kdconv['queries']}" in labels
    assert plot.read_bytes()[:4] == b"\x89PNG"
