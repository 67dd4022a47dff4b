"""C3KG.GRAPH: read only with the opt-in, and only a DiGraph of strings."""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import networkx as nx
import pytest

import kg


def _graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edge("有人买披萨", "填饱肚子", type="xIntent", weight=1)
    g.add_edge("有人买披萨", "有人吃披萨", type="next_utterance", weight=12)
    g.add_edge("开心", "填饱肚子", type="intent_describe", weight=3)
    g.add_node("孤立节点")
    _ = g.adj, g.succ, g.pred, g.nodes, g.edges  # networkx 3 caches these views in the pickle
    return g


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_round_trip_needs_opt_in(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "C3KG.GRAPH"
    path.write_bytes(pickle.dumps(_graph(), protocol=protocol))  # what write_gpickle did
    with pytest.raises(kg.KGFormatError, match=r"C3KG\.GRAPH: this is a pickle.*trust_pickle=True"):
        kg.read_gpickle(path)
    with pytest.raises(kg.KGFormatError, match="trust_pickle"):
        kg.load_kg(path)
    graph = kg.read_gpickle(path, trust_pickle=True)
    assert nx.utils.graphs_equal(graph, _graph())
    loaded = kg.load_kg(path, trust_pickle=True)
    assert loaded.kind("有人买披萨") == "event-head"
    assert loaded.kind("开心") == "emotion"
    assert loaded.kind("孤立节点") == "tail" and loaded.stats()["isolated_nodes"] == 1
    assert loaded.stats()["flow_edges_by_family"] == {"emotion": 1, "event": 1}


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (Evil(), r"(posix|os|nt)\.system"),
        (collections.OrderedDict(a=1), r"collections\.OrderedDict"),
        (nx.MultiDiGraph([("a", "b")]), r"networkx\.classes\.multidigraph\.MultiDiGraph"),
    ],
)
def test_other_classes_are_refused_by_name(tmp_path: Path, payload, named: str) -> None:
    path = tmp_path / "C3KG.GRAPH"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(kg.UnsafePickleError, match=rf"refusing to unpickle class {named}"):
        kg.read_gpickle(path, trust_pickle=True)


def test_graph_carrying_a_foreign_class_is_refused(tmp_path: Path) -> None:
    g = _graph()
    g.edges["有人买披萨", "填饱肚子"]["extra"] = collections.Counter(a=1)
    path = tmp_path / "C3KG.GRAPH"
    path.write_bytes(pickle.dumps(g))
    with pytest.raises(kg.UnsafePickleError, match=r"collections\.Counter"):
        kg.read_gpickle(path, trust_pickle=True)


def test_edge_without_type_is_an_error(tmp_path: Path) -> None:
    g = nx.DiGraph()
    g.add_edge("a", "b", weight=1)
    path = tmp_path / "C3KG.GRAPH"
    path.write_bytes(pickle.dumps(g))
    with pytest.raises(kg.KGFormatError, match=r"field 'type': edge 'a' -> 'b' has no string 'type'"):
        kg.read_gpickle(path, trust_pickle=True)


def test_truncated_pickle(tmp_path: Path) -> None:
    path = tmp_path / "C3KG.GRAPH"
    path.write_bytes(pickle.dumps(_graph())[:40])
    with pytest.raises(kg.KGFormatError, match="unreadable pickle"):
        kg.read_gpickle(path, trust_pickle=True)
