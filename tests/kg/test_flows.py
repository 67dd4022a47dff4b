from __future__ import annotations

from pathlib import Path

import pytest

import kg
from kg.graph import Tail
from kg.linearize import split_pieces
from tiktalk.types import KnowledgeBudget


@pytest.fixture
def graph(tiny_release: Path) -> kg.C3KG:
    return kg.load_kg(tiny_release)


def test_tails_per_relation_in_schema_order(graph: kg.C3KG) -> None:
    assert graph.tails("有人买披萨") == {
        "xIntent": [Tail("填饱肚子", 1)], "xNeed": [Tail("去店里", 1)], "xReact": [Tail("开心", 1)],
    }
    assert list(graph.tails("有人喂别人的猫")) == ["xReact", "oReact"]


def test_flows_ranked_by_weight_and_by_family(graph: kg.C3KG) -> None:
    flows = graph.flows("有人买披萨")
    assert [(e.target, e.weight) for e in flows.flows["event"]] == [("有人喂别人的猫", 9), ("有人吃披萨", 5)]
    assert flows.flows["concept"] == []
    # emotion flows start from the head's react tails: 有人买披萨 -xReact-> 开心 -> ...
    assert [(e.source, e.type, e.target) for e in flows.flows["emotion"]] == [
        ("开心", "intent_describe", "填饱肚子"), ("开心", "emotion_cause", "去店里"),
    ]


def test_depth_and_fanout(graph: kg.C3KG) -> None:
    deep = graph.flows("有人买披萨", families=["event"], depth=2).flows["event"]
    assert [(e.source, e.target, e.depth) for e in deep] == [
        ("有人买披萨", "有人喂别人的猫", 1), ("有人买披萨", "有人吃披萨", 1), ("有人吃披萨", "有人喂别人的猫", 2),
    ]
    top1 = graph.flows("有人买披萨", families=["event"], depth=2, fanout=1).flows["event"]
    assert [(e.source, e.target) for e in top1] == [("有人买披萨", "有人喂别人的猫")]  # the cat head has no flows
    chain = graph.flows("火锅", families=["concept"], depth=3).flows["concept"]
    assert [(e.target, e.depth) for e in chain] == [("啤酒", 1), ("夜宵", 2)]


def test_flows_reference_bfs_agrees_with_networkx(graph: kg.C3KG) -> None:
    """The indexed BFS against networkx's own traversal of the same family's subgraph."""
    import networkx as nx

    g = graph.graph
    for head in graph.heads():
        sub = nx.DiGraph(
            (u, v) for u, v, d in g.edges(data=True) if d["family"] == "event"
        )
        expected = set(nx.single_source_shortest_path_length(sub, head, cutoff=3)) - {head} if head in sub else set()
        got = {e.target for e in graph.flows(head, families=["event"], depth=3).flows["event"]} - {head}
        assert got == expected, head


def test_unknown_head_and_bad_arguments(graph: kg.C3KG) -> None:
    with pytest.raises(KeyError, match="不存在"):
        graph.flows("不存在")
    with pytest.raises(ValueError, match=r"depth \(0\) must be at least 1"):
        graph.flow_edges("有人买披萨", "event", depth=0)
    with pytest.raises(ValueError, match="family 'vibes'"):
        graph.flow_edges("有人买披萨", "vibes")


def test_graph_keeps_every_typed_edge(graph: kg.C3KG) -> None:
    g = graph.graph
    assert g.number_of_edges() == graph.edges.height
    assert g.nodes["开心"]["kind"] == "emotion"
    assert g.edges["感激", "填饱肚子", "weird_type"]["family"] == "unknown"
    assert graph.stats()["unknown_types"] == {"weird_type": 1}


def test_linearize_deterministic_and_budgeted(graph: kg.C3KG) -> None:
    items = [graph.flows("有人买披萨"), graph.flows("火锅")]
    full = kg.linearize(items)
    assert full.text == (
        "有人买披萨，目的是填饱肚子，之前需要去店里，感到开心，接话有人喂别人的猫，接话有人吃披萨，"
        "描述填饱肚子，起因去店里；火锅，位于重庆，聊到啤酒"
    )
    assert (full.pieces, full.heads_used, full.truncated) == (11, 2, False)
    assert kg.linearize(items) == full
    for budget in range(1, len(full.text) + 2):
        cut = kg.linearize(items, budget=KnowledgeBudget(budget))
        assert len(cut.text) <= budget
        assert full.text.startswith(cut.text)
        assert cut.truncated == (budget < len(full.text))
        # cuts fall on piece boundaries only, and the next piece would not have fitted
        rest = full.text[len(cut.text):]
        assert rest == "" or rest[0] in (kg.PIECE_SEP, kg.HEAD_SEP) or cut.text == ""
        assert rest == "" or len(cut.text) + len(split_pieces(rest)[0]) > budget
        assert cut.heads_used == (cut.text != "") + (kg.HEAD_SEP in cut.text)
        # what a model does with the uncut text (drop whole trailing pieces) is the same cut
        assert kg.fit_knowledge(full.text, KnowledgeBudget(budget)) == cut.text


def test_linearize_counts_with_the_given_tokenizer_and_templates(graph: kg.C3KG) -> None:
    items = [graph.flows("有人买披萨", families=["event"])]
    config = kg.LinearizeConfig(relation_template="[{relation_type}] {tails}")
    pieces = KnowledgeBudget(4, count_tokens=lambda s: len(split_pieces(s)), tokenizer="pieces")
    text = kg.linearize(items, config, pieces).text
    assert text == "有人买披萨，[xIntent] 填饱肚子，[xNeed] 去店里，[xReact] 开心"
    reordered = kg.linearize(items, kg.LinearizeConfig(relation_order=("xReact",)), pieces).text
    assert reordered == "有人买披萨，感到开心，目的是填饱肚子，之前需要去店里"  # then schema order
    with pytest.raises(ValueError, match=r"relation_template \('\{relation\}，\{tails\}'\) contains a piece separator"):
        kg.LinearizeConfig(relation_template="{relation}，{tails}")
    with pytest.raises(ValueError, match=r"relation_names\['xNeed'\]"):
        kg.LinearizeConfig(relation_names={"xNeed": "需要；"})
    with pytest.raises(ValueError, match=r"max_tokens \(0\)"):
        KnowledgeBudget(0)


def test_linearize_dedupes_flows_and_keeps_separators_out_of_pieces(graph: kg.C3KG) -> None:
    # both heads react with 开心, so 开心's emotion flows are reached from both: written once
    items = [graph.flows("有人买披萨", families=["emotion"]), graph.flows("有人喂别人的猫", families=["emotion"])]
    text = kg.linearize(items).text
    assert text == "有人买披萨，目的是填饱肚子，之前需要去店里，感到开心，描述填饱肚子，起因去店里；有人喂别人的猫，感到开心，别人感到感激"
    # a separator inside KG text becomes a space, so piece boundaries stay findable
    odd = kg.HeadFlows(head="有人去商店，买东西；回家", kind="event-head", relations={"xNeed": [Tail("钱，包", 1)]})
    assert kg.linearize([odd]).text == "有人去商店 买东西 回家，之前需要钱 包"
    assert split_pieces("甲，乙；丙") == ["甲", "，乙", "；丙"]
    assert kg.fit_knowledge("甲乙丙丁", KnowledgeBudget(3)) == ""  # one piece too long: none of it


def test_node_text_in_both_languages(graph: kg.C3KG) -> None:
    assert graph.text("有人喂别人的猫") == "有人喂别人的猫"
    assert graph.text("有人喂别人的猫", lang="en") == "PersonX feeds PersonY's cat"
    assert graph.text("重庆", lang="en") == "重庆"  # no English: falls back to Chinese
    with pytest.raises(KeyError, match="不在"):
        graph.text("不在")
