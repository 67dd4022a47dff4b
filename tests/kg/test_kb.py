"""A knowledge base as JSON (KdConv's kb_*.json): a generic triple graph of entities and
attributes, indexed and linearised like any KG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kg
from kg import readers
from kg.convert import build_tables
from kg.linearize import split_pieces
from tests.conftest import shared_path
from tiktalk.types import KnowledgeBudget

# KdConv's form: entity -> [[entity, attribute, value], ...]; a repeated triple, a value with
# the piece separator, and an entity that is also another entity's value.
KB_TRIPLES = {
    "故宫": [
        ["故宫", "门票", "旺季60元，淡季40元。"],
        ["故宫", "电话", "010-85007938"],
        ["故宫", "周边景点", "天坛"],
        ["故宫", "周边景点", "天坛"],
        ["故宫", "周边景点", "景山公园"],
        ["故宫", "Information", "故宫又称紫禁城，是明、清两代的皇宫，也是古老中国的标志和象征。"],
    ],
    "天坛": [["天坛", "门票", "15元"], ["天坛", "地址", "北京市东城区天坛路甲1号"]],
}
# The same kind of KB as entity -> {attribute: value or [values]}.
KB_ATTRIBUTES = {"故宫": {"门票": "60元", "周边景点": ["天坛", "景山公园"]}, "天坛": {"门票": "15元"}}


def write_kb(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def test_kdconv_form_converts_to_entities_and_attribute_edges(tmp_path: Path) -> None:
    path = write_kb(tmp_path / "kb_travel.json", KB_TRIPLES)
    assert readers.sniff_format(path) == "kb-json"
    nodes, edges, report = build_tables([path])
    kinds = dict(zip(nodes["id"].to_list(), nodes["kind"].to_list()))
    assert kinds["故宫"] == kinds["天坛"] == "entity"  # 天坛 is a value of 故宫 and an entity itself
    assert kinds["15元"] == kinds["景山公园"] == "tail"
    assert set(edges["family"].to_list()) == {"attribute"}
    assert report.kb_triples == 8 and report.duplicate_edges_merged == 1 and edges.height == 7
    assert report.unknown_types == {}  # attribute names are the KB's own, not unknown C3KG types
    weights = {(s, t, ty): w for s, t, ty, w in edges.select("source", "target", "type", "weight").iter_rows()}
    assert weights[("故宫", "天坛", "周边景点")] == 2  # the repeated triple: one edge, weight 2

    graph = kg.C3KG(nodes, edges)
    assert graph.heads("entity") == ["天坛", "故宫"]
    stats = graph.stats()
    assert stats["kb_triples"] == 7 and stats["flow_edges"] == 0 and stats["triples"] == 0
    assert stats["kb_triples_by_attribute"] == {"Information": 1, "周边景点": 2, "地址": 1, "电话": 1, "门票": 2}
    item = graph.flows("故宫", top_k_tails=1)
    assert item.relations == {} and item.attributes["周边景点"] == [kg.Tail("天坛", 2)]  # best value first


def test_linearised_as_entity_then_attribute_value_pieces(tmp_path: Path) -> None:
    graph = kg.load_kg(write_kb(tmp_path / "kb.json", KB_TRIPLES))
    items = [graph.flows("故宫", top_k_tails=2), graph.flows("天坛")]
    text = kg.linearize(items).text
    assert text == ("故宫，周边景点：天坛、景山公园，电话：010-85007938，门票：旺季60元 淡季40元。，"
                    "Information：故宫又称紫禁城 是明、清两代的皇宫 也是古老中国的标志和象征。；"
                    "天坛，门票：15元，地址：北京市东城区天坛路甲1号")
    # pieces stay parseable: each is an entity or one "attribute：values", shortest first
    pieces = [p.lstrip("，；") for p in split_pieces(text)]
    assert pieces[0] == "故宫" and pieces[4].startswith("Information：") and pieces[5] == "天坛"
    assert all("：" in p for p in pieces if p not in ("故宫", "天坛"))
    cut = kg.linearize(items, budget=KnowledgeBudget(40))  # the long description goes first
    assert cut.text == "故宫，周边景点：天坛、景山公园，电话：010-85007938" and cut.truncated


def test_attribute_object_form_reads_the_same_triples(tmp_path: Path) -> None:
    _, edges, report = build_tables([write_kb(tmp_path / "kb_small.json", KB_ATTRIBUTES)])
    assert sorted(edges.select("source", "type", "target").iter_rows()) == [
        ("天坛", "门票", "15元"), ("故宫", "周边景点", "天坛"), ("故宫", "周边景点", "景山公园"), ("故宫", "门票", "60元")]
    assert report.kb_triples == 4


@pytest.mark.parametrize(("data", "message"), [
    ([["故宫", "门票", "60元"]], r"kb\.json: expected a non-empty object .* found list \(a dialogue file\?\)"),
    ({"故宫": [["天坛", "门票", "15元"]]}, r"kb\.json: field '故宫\[0\]': triple of entity '天坛' filed under '故宫'"),
    ({"故宫": [["故宫", "门票"]]}, r"field '故宫\[0\]': expected \[entity, attribute, value\]"),
    ({"故宫": {"门票": 60}}, r"field '故宫\.门票': expected a string \(value 60\)"),
    ({"故宫": "60元"}, r"field '故宫': expected a list .* or an object"),
])
def test_bad_kb_names_file_and_field(tmp_path: Path, data, message: str) -> None:
    with pytest.raises(kg.KGFormatError, match=message):
        build_tables([write_kb(tmp_path / "kb.json", data)])


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "kb.json"
    path.write_text('{\n "故宫": [\n  ["故宫", "门票" "60元"]\n ]\n}\n', encoding="utf-8")
    with pytest.raises(kg.KGFormatError, match=r"kb\.json:3: not valid JSON"):
        build_tables([path])


def test_real_kdconv_travel_kb(tmp_path: Path) -> None:
    path = shared_path("kdconv_travel", "kb_travel.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    rows = [tuple(t) for triples in raw.values() for t in triples]
    manifest = kg.convert([path], tmp_path / "kg")
    # the README's counts: 1,154 entities, 12,509 triples; 10,968 of them distinct
    assert len(raw) == 1154 and len(rows) == 12509 and len(set(rows)) == 10968
    assert manifest["report"]["kb_triples"] == 12509
    assert manifest["report"]["duplicate_edges_merged"] == 12509 - 10968
    assert manifest["counts"]["edges"] == 10968 and manifest["counts"]["edges_by_family"] == {"attribute": 10968}
    graph = kg.load_kg(tmp_path / "kg")
    assert len(graph.heads("entity")) == 1154 and set(graph.heads("entity")) == set(raw)
    stats = graph.stats()
    assert sum(stats["kb_triples_by_attribute"].values()) == 10968 and len(stats["kb_triples_by_attribute"]) == 7
    assert stats["kb_triples_by_attribute"]["Information"] == 1154  # one description per entity
