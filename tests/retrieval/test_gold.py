"""Gold knowledge: the triples each KdConv response used, as a knowledge cache."""

from __future__ import annotations

import json

import polars as pl
import pytest

import kg
from retrieval.cache import KNOWLEDGE_CACHE_SCHEMA, read_knowledge_cache, read_knowledge_cache_info
from retrieval.gold import gold_items, gold_knowledge_frame
from tests.kdconv_mini import write_mini_kdconv
from tiktalk.commands.main import main
from tiktalk.dataset import read_gold_attrs
from tiktalk.errors import FormatError
from tiktalk.types import KnowledgeBudget


def attr(name: str, attribute: str, value: str) -> dict:
    return {"name": name, "attrname": attribute, "attrvalue": value}


def test_gold_items_group_by_entity_in_first_use_order() -> None:
    items = gold_items([attr("天坛", "门票", "15元"), attr("故宫", "电话", "010-1"), attr("天坛", "门票", "15元"),
                        attr("天坛", "地址", "东城区")])
    assert [i.head for i in items] == ["天坛", "故宫"] and items[0].kind == "entity"
    assert items[0].attributes == {"门票": [kg.Tail("15元", 1)], "地址": [kg.Tail("东城区", 1)]}  # repeat once


def test_frame_is_the_cache_schema_with_empty_segments_kept(tmp_path) -> None:
    gold = {"a": [attr("天坛", "门票", "15元")], "b": [],
            "c": [attr("故宫", "Information", "很长的介绍" * 20), attr("故宫", "电话", "010-1")]}
    frame = gold_knowledge_frame(gold, KnowledgeBudget(20))
    assert dict(frame.schema) == KNOWLEDGE_CACHE_SCHEMA
    assert frame["knowledge"].to_list() == ["天坛，门票：15元", "", "故宫，电话：010-1"]  # the long piece is cut
    assert frame["heads"].to_list() == [["天坛"], [], ["故宫"]] and frame["families"][0].to_list() == ["concept"]
    # the same text as the KG's own linearisation of those triples
    kb = tmp_path / "kb.json"
    kb.write_text(json.dumps({"天坛": [["天坛", "门票", "15元"]]}, ensure_ascii=False), encoding="utf-8")
    assert frame["knowledge"][0] == kg.linearize([kg.load_kg(kb).flows("天坛")]).text


def test_bad_attr_names_the_dialogue_and_field() -> None:
    with pytest.raises(FormatError, match=r"dialogue 'x': attrs\[1\] field 'attrvalue' must be a non-empty string"):
        gold_knowledge_frame({"x": [attr("天坛", "门票", "15元"), attr("天坛", "门票", "")]}, None)


def test_cli_gold_knowledge_of_an_imported_kdconv(tmp_path, capsys) -> None:
    folder = write_mini_kdconv(tmp_path / "kdconv", n_dev=6, n_test=3)
    data, out = tmp_path / "data", tmp_path / "gold.parquet"
    assert main(["data", "import", str(folder), "--from", "kdconv", "--out", str(data)]) == 0
    capsys.readouterr()
    assert main(["data", "gold-knowledge", str(data), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    gold = read_gold_attrs(data)
    knowledge = read_knowledge_cache(out)
    assert set(knowledge) == set(gold) and summary["rows"] == len(gold)
    assert summary["with_knowledge"] == sum(bool(a) for a in gold.values()) == sum(bool(k) for k in knowledge.values())
    for dialogue_id, attrs in gold.items():  # every answer's value is in its segment, after its entity
        for a in attrs:
            assert knowledge[dialogue_id].startswith(a["name"]) and f"{a['attrname']}：{a['attrvalue']}" in knowledge[dialogue_id]
    info = read_knowledge_cache_info(out)
    assert info["source"] == "gold attrs" and info["budget"]["max_tokens"] == 69  # Maria's budget
    assert pl.read_parquet(out)["query"].null_count() == len(gold)
    assert main(["data", "gold-knowledge", str(data), "--out", str(out)]) == 2  # exists: refused


def test_index_and_retrieve_from_a_kb_read_like_gold(tmp_path) -> None:
    from retrieval.encoders import HashEncoder
    from retrieval.index import build_head_index
    from retrieval.retriever import Retriever, RetrieverConfig
    from tests.kdconv_mini import mini_kb

    path = tmp_path / "kb_travel.json"
    path.write_text(json.dumps(mini_kb(), ensure_ascii=False), encoding="utf-8")
    graph, encoder = kg.load_kg(path), HashEncoder(dim=64)
    index = build_head_index(graph, encoder, tmp_path / "index", progress=False)
    assert len(index) == 10 and set(index.heads["kind"].to_list()) == {"entity"}  # entities are the heads
    retriever = Retriever(index, graph, encoder, RetrieverConfig(top_k=1, selection="paper"), budget=KnowledgeBudget(69))
    result = retriever.retrieve(["你去过颐和园吗？", "去过，挺好玩的。"])
    assert [h.text for h in result.heads] == ["颐和园"]
    values = {a: v for _, a, v in mini_kb()["颐和园"]}
    assert result.knowledge.startswith("颐和园，") and f"门票：{values['门票']}" in result.knowledge
    # the same pieces as the gold segment of a response that used that triple
    gold = gold_knowledge_frame({"x": [attr("颐和园", "门票", values["门票"])]}, None)["knowledge"][0]
    assert gold == f"颐和园，门票：{values['门票']}" and all(p in result.knowledge for p in gold.split("，"))


# ------------------------------------------------------------------ gold_value_use (issue 20's measure)

LONG = "故宫是明清两代的皇家宫殿。旧称紫禁城。位于北京中轴线的中心"  # 30 characters: no 20-character segment holds it


def test_gold_value_use_on_hand_made_segments() -> None:
    from retrieval.gold import gold_value_use

    gold = {
        "a": [attr("天坛", "门票", "15元")],
        "b": [attr("故宫", "Information", LONG)],
        "c": [attr("颐和园", "门票", "30元")],
        "d": [],
        "f": [attr("长城", "地址", "北京市，延庆区")],
        "g": [attr("故宫", "Information", LONG), attr("故宫", "门票", "60元")],
        "h": [attr("故宫", "Information", LONG)],
    }
    segments = {
        "a": "天坛，门票：15元",  # the whole value
        "b": "故宫，旧称紫禁城。；天坛，门票：15元",  # a sentence of the long value only
        "c": "",  # empty
        "d": "天坛，门票：15元",  # no gold: not counted, not empty
        # "e": no segment at all: empty
        "f": "长城，地址：北京市 延庆区",  # the value as linearised (its separator a space)
        "g": f"故宫，{LONG}",  # the long value whole, not the short one that fits
        "h": "故宫，故宫是",  # 3 characters of the long value: too short to count as a part
    }
    ids = ["a", "b", "c", "d", "e", "f", "g", "h"]
    use = gold_value_use(segments, gold, ids)
    assert use == {"dialogues": 8, "with_gold": 6, "gold_value_in_segment": round(3 / 6, 4),
                   "gold_part_in_segment": round(4 / 6, 4), "empty_share": 2 / 8}
    # with a budget: the same, plus the share over the responses with a used value that fits it
    # on its own (a, c, f and g's 门票; b's and h's long value does not fit 20 characters)
    fitted = gold_value_use(segments, gold, ids, KnowledgeBudget(20))
    assert fitted == {**use, "with_fitting_value": 4, "gold_value_in_segment_fits": 2 / 4}
    assert gold_value_use(segments, gold, ["d", "e"]) == {"dialogues": 2, "with_gold": 0, "gold_value_in_segment": 0.0,
                                                         "gold_part_in_segment": 0.0, "empty_share": 0.5}
    assert gold_value_use({}, gold, [])["empty_share"] == 0.0


def test_gold_part_is_not_the_entity_name() -> None:
    from retrieval.gold import gold_value_use

    info = "798艺术区是北京的著名景点。历史悠久。"
    use = gold_value_use({"x": "798艺术区，门票：10元"}, {"x": [attr("798艺术区", "Information", info)]}, ["x"])
    assert use["gold_value_in_segment"] == 0.0 and use["gold_part_in_segment"] == 0.0
