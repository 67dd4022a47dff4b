from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import kg
from kg.convert import EDGES_FILE, MANIFEST_FILE, NODES_FILE, build_tables
from tests.conftest import shared_path


def test_tiny_release_tables(tiny_release: Path) -> None:
    nodes, edges, report = build_tables([tiny_release])
    kinds = dict(zip(nodes["id"].to_list(), nodes["kind"].to_list()))
    assert kinds["有人买披萨"] == "event-head"
    assert kinds["火锅"] == "phrase-head"
    assert kinds["开心"] == "emotion"  # source of emotion-flow edges
    assert kinds["夜宵"] == "entity"  # concept-flow node that is no head
    assert kinds["重庆"] == "tail"
    assert report.skipped_none_tails == 1
    assert report.unknown_types == {"weird_type": 1}
    fam = dict(zip(edges["type"].to_list(), edges["family"].to_list()))
    assert fam == {
        "xIntent": "atomic", "xReact": "atomic", "xNeed": "atomic", "oReact": "atomic",
        "AtLocation": "atomic", "next_utterance": "event", "next_sentence": "event",
        "next_entity": "concept", "emotion_cause": "emotion", "intent_describe": "emotion",
        "weird_type": "unknown",
    }
    assert edges.height == 6 + 8  # 7 triple rows less one "none" tail, 8 flow edges
    # every edge appears once, sorted by (source, type, target)
    assert edges.select("source", "type", "target").is_duplicated().sum() == 0
    assert edges.sort(["source", "type", "target"]).equals(edges)
    # English text and head_replaced come from the head CSV
    row = nodes.filter(pl.col("id") == "有人喂别人的猫").row(0, named=True)
    assert row["text_en"] == "PersonX feeds PersonY's cat"
    assert row["text_replaced"] == "someone feeds someone else's cat"


def test_convert_is_byte_identical_and_loads_back(tiny_release: Path, tmp_path: Path) -> None:
    a = kg.convert([tiny_release], tmp_path / "a")
    b = kg.convert([tiny_release], tmp_path / "b")
    for name in (NODES_FILE, EDGES_FILE, MANIFEST_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a == b
    graph = kg.load_kg(tmp_path / "a")
    nodes, edges, _ = build_tables([tiny_release])
    assert graph.nodes.equals(nodes) and graph.edges.equals(edges)
    assert graph.content_sha256 == a["content_sha256"]
    assert a["counts"]["edges"] == edges.height


def test_convert_refuses_existing_output_and_overwrites_on_request(tiny_release: Path, tmp_path: Path) -> None:
    out = tmp_path / "kg"
    kg.convert([tiny_release], out)
    with pytest.raises(FileExistsError, match="already exists"):
        kg.convert([tiny_release], out)
    kg.convert([tiny_release], out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kg", "release"]  # no temp dirs left


def test_corrupt_table_is_refused(tiny_release: Path, tmp_path: Path) -> None:
    out = tmp_path / "kg"
    kg.convert([tiny_release], out)
    data = bytearray((out / EDGES_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / EDGES_FILE).write_bytes(bytes(data))
    with pytest.raises(kg.KGFormatError, match=r"edges\.parquet.*sha256"):
        kg.load_kg(out)
    (out / EDGES_FILE).unlink()
    with pytest.raises(kg.KGFormatError, match="missing table"):
        kg.load_kg(out)


def test_manifest_version_checked(tiny_release: Path, tmp_path: Path) -> None:
    out = tmp_path / "kg"
    kg.convert([tiny_release], out)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(kg.KGFormatError, match="format version 99"):
        kg.load_kg(out)


def _atomic2020_reference() -> tuple[dict, set]:
    """The slow obvious join, straight from the files."""
    import csv

    heads = {}
    for name in ("head_shortSentence.csv", "head_phrase.csv"):
        with open(shared_path("c3kg_heads_sample", name), encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                heads.setdefault(row["head"], row["head_translated"])
    triples = set()
    with open(shared_path("atomic2020", "test.tsv"), encoding="utf-8") as fh:
        for line in fh:
            left, tails = line.rstrip("\n").split("\t")
            head, relation = left.rsplit(" @@ ", 1)
            for tail in tails.split("|"):
                tail = tail.strip()
                if tail.lower() not in ("", "none") and head in heads:
                    triples.add((heads[head], tail, relation))
    return heads, triples


def test_real_heads_join_atomic2020_by_english_head() -> None:
    heads_dir = shared_path("c3kg_heads_sample")
    atomic = shared_path("atomic2020", "test.tsv")
    graph = kg.load_kg([heads_dir, atomic])
    stats = graph.stats()
    # exact counts of the real files (216 + 511 head rows; 8 rows share a Chinese text)
    assert stats["heads"] == {"event-head": 215, "phrase-head": 504}
    assert stats["nodes_by_kind"] == {"event-head": 215, "phrase-head": 504, "tail": 230}
    assert stats["triples"] == 237
    assert stats["tails"] == 230
    assert stats["isolated_nodes"] == 719 - 38
    report = graph.manifest["report"]
    assert report["atomic2020_matched_heads"] == 38  # 23 event + 15 phrase heads with a real tail
    assert report["atomic2020_unmatched_triples"] == 19435 - 237
    assert report["skipped_none_tails"] == 1264
    assert report["merged_translations"] == 8
    # the same triples as the obvious join
    _, expected = _atomic2020_reference()
    atomic_edges = graph.edges.filter(pl.col("family") == "atomic")
    assert set(atomic_edges.select("source", "target", "type").iter_rows()) == expected
    # e.g. the event head "PersonX buys pizza" carries its English ATOMIC tails
    assert graph.kind("有人买披萨") == "event-head"


def test_atomic2020_alone_keeps_english_heads() -> None:
    graph = kg.load_kg(shared_path("atomic2020", "test.tsv"))
    stats = graph.stats()
    assert stats["triples"] == 19435
    assert stats["heads"]["event-head"] + stats["heads"]["phrase-head"] == 2869  # heads with a real tail
    node = graph.nodes.filter(pl.col("id") == "PersonX takes things for granted").row(0, named=True)
    assert node["kind"] == "event-head"
    assert node["text_replaced"] == "someone takes things for granted"


def test_atomic2020_plain_form_equals_at_form(tmp_path: Path) -> None:
    at_form = tmp_path / "at.tsv"
    at_form.write_text("PersonX eats @@ xNeed\tbuy food| none| cook\nbread @@ AtLocation\tbakery\n", encoding="utf-8")
    plain = tmp_path / "plain.tsv"
    plain.write_text(
        "PersonX eats\txNeed\tbuy food\nPersonX eats\txNeed\tcook\nbread\tAtLocation\tbakery\n", encoding="utf-8"
    )
    _, e1, _ = build_tables([at_form])
    _, e2, _ = build_tables([plain])
    assert e1.equals(e2) and e1.height == 3
