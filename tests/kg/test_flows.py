from __future__ import annotations

from pathlib import Path

import pytest

import kg
from kg.graph import Tail


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
    full = kg.linearize(items, kg.LinearizeConfig(max_chars=None))
    assert full.text == (
        "有人买披萨，目的是填饱肚子，之前需要去店里，感到开心，接话有人喂别人的猫，接话有人吃披萨，"
        "描述填饱肚子，起因去店里；火锅，位于重庆，聊到啤酒"
    )
    assert (full.heads_used, full.truncated) == (2, False)
    assert kg.linearize(items, kg.LinearizeConfig(max_chars=None)) == full
    for budget in range(1, len(full.text) + 2):
        cut = kg.linearize(items, kg.LinearizeConfig(max_chars=budget))
        assert len(cut.text) <= budget
        assert full.text.startswith(cut.text)
        assert cut.truncated == (budget < len(full.text))
        # cuts fall on piece boundaries only
        rest = full.text[len(cut.text):]
        assert cut.text == "" or rest == "" or rest[0] in "，；"


def test_linearize_token_budget_and_templates(graph: kg.C3KG) -> None:
    items = [graph.flows("有人买披萨")]
    config = kg.LinearizeConfig(
        max_chars=None, max_tokens=4, families=["event"], max_flows=1,
        relation_template="[{relation_type}] {tails}", piece_sep=" | ",
    )
    text = kg.linearize(items, config, count_tokens=lambda s: len(s.split("|"))).text
    assert text == "有人买披萨 | [xIntent] 填饱肚子 | [xNeed] 去店里 | [xReact] 开心"
    with pytest.raises(ValueError, match="count_tokens"):
        kg.linearize(items, config)
    with pytest.raises(ValueError, match=r"max_tails \(-1\)"):
        kg.LinearizeConfig(max_tails=-1)


def test_node_text_in_both_languages(graph: kg.C3KG) -> None:
    assert graph.text("有人喂别人的猫") == "有人喂别人的猫"
    assert graph.text("有人喂别人的猫", lang="en") == "PersonX feeds PersonY's cat"
    assert graph.text("重庆", lang="en") == "重庆"  # no English: falls back to Chinese
    with pytest.raises(KeyError, match="不在"):
        graph.text("不在")
