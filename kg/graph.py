"""The in-memory C3KG: canonical tables plus a networkx graph, and the flows API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from kg.schema import (
    ATOMIC_FAMILY,
    ATTRIBUTE_FAMILY,
    EMOTION_SOURCE_RELATIONS,
    FLOW_FAMILIES,
    NodeKind,
    type_rank,
)
from tiktalk.errors import UnknownNameError, UsageError

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True)
class Tail:
    text: str
    weight: int


@dataclass(frozen=True)
class FlowEdge:
    """One dialogue-flow edge reached from a head; ``depth`` 1 = leaves the start node."""

    source: str
    target: str
    type: str
    weight: int
    depth: int


@dataclass
class HeadFlows:
    """Everything the KG says about one head: tails per ATOMIC relation, flow edges per family,
    and values per KB attribute (an entity of a KB such as KdConv's)."""

    head: str
    kind: str | None
    relations: dict[str, list[Tail]] = field(default_factory=dict)
    flows: dict[str, list[FlowEdge]] = field(default_factory=dict)
    attributes: dict[str, list[Tail]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "head": self.head,
            "kind": self.kind,
            "relations": {r: [[t.text, t.weight] for t in ts] for r, ts in self.relations.items()},
            "attributes": {a: [[t.text, t.weight] for t in ts] for a, ts in self.attributes.items()},
            "flows": {
                f: [
                    {"source": e.source, "target": e.target, "type": e.type, "weight": e.weight, "depth": e.depth}
                    for e in es
                ]
                for f, es in self.flows.items()
            },
        }


def _rank(item: tuple[str, str, int]) -> tuple:
    target, edge_type, weight = item
    return (-weight, type_rank(edge_type), target)


class C3KG:
    """A converted C3KG. ``nodes``/``edges`` are the canonical polars tables.

    ``graph`` is a networkx ``MultiDiGraph`` (a ``DiGraph`` subclass) keyed by edge type:
    unlike the released DiGraph, an edge of one type never overwrites another type's.
    """

    def __init__(self, nodes: pl.DataFrame, edges: pl.DataFrame, manifest: dict | None = None,
                 path: Path | None = None) -> None:
        self.nodes = nodes
        self.edges = edges
        self.manifest = manifest or {}
        self.path = path
        self._kind: dict[str, str] = dict(zip(nodes["id"].to_list(), nodes["kind"].to_list()))

    def __repr__(self) -> str:
        return f"C3KG(nodes={self.nodes.height}, edges={self.edges.height}, path={self.path})"

    @property
    def content_sha256(self) -> str:
        if "content_sha256" not in self.manifest:
            from kg.convert import content_sha256

            self.manifest["content_sha256"] = content_sha256(self.nodes, self.edges)
        return self.manifest["content_sha256"]

    @cached_property
    def graph(self) -> nx.MultiDiGraph:
        import networkx as nx  # only this view needs it; `import kg` stays light

        g = nx.MultiDiGraph()
        g.add_nodes_from(
            (row[0], {"kind": row[1], "text_zh": row[2], "text_en": row[3]})
            for row in self.nodes.select("id", "kind", "text_zh", "text_en").iter_rows()
        )
        g.add_edges_from(
            (s, t, ty, {"type": ty, "weight": w, "family": f})
            for s, t, ty, w, f in self.edges.select("source", "target", "type", "weight", "family").iter_rows()
        )
        return g

    @cached_property
    def _out(self) -> dict[str, dict[str, list[tuple[str, str, int]]]]:
        """node -> family -> [(target, type, weight)] ranked by weight desc, then type, then target."""
        out: dict[str, dict[str, list[tuple[str, str, int]]]] = {}
        for s, t, ty, w, f in self.edges.select("source", "target", "type", "weight", "family").iter_rows():
            out.setdefault(s, {}).setdefault(f, []).append((t, ty, w))
        for fams in out.values():
            for items in fams.values():
                items.sort(key=_rank)
        return out

    def __contains__(self, node: str) -> bool:
        return node in self._kind

    def kind(self, node: str) -> str | None:
        return self._kind.get(node)

    def heads(self, kinds: Iterable[str] | str | None = None) -> list[str]:
        """Node ids of the given kinds (default: event and phrase heads), sorted."""
        if kinds is None:
            kinds = (NodeKind.EVENT_HEAD.value, NodeKind.PHRASE_HEAD.value)
        elif isinstance(kinds, str):
            kinds = (kinds,)
        wanted = {str(k) for k in kinds}
        return self.nodes.filter(pl.col("kind").is_in(wanted))["id"].to_list()

    @cached_property
    def _texts(self) -> dict[str, tuple[str | None, str | None]]:
        return {i: (zh, en) for i, zh, en in self.nodes.select("id", "text_zh", "text_en").iter_rows()}

    def text(self, node: str, lang: str = "zh") -> str:
        """Display text of a node: Chinese when it has one, else English (``lang="en"``: the reverse)."""
        if node not in self._texts:
            raise UnknownNameError(f"node {node!r} is not in the KG")
        zh, en = self._texts[node]
        return (zh or en) if lang == "zh" else (en or zh)

    def tails(self, head: str, relations: Sequence[str] | None = None, top_k: int | None = None) -> dict[str, list[Tail]]:
        """Commonsense tails of ``head`` per ATOMIC relation, ranked by weight (schema order of relations)."""
        out: dict[str, list[Tail]] = {}
        for target, rel, weight in self._out.get(head, {}).get(ATOMIC_FAMILY, []):
            if relations is None or rel in relations:
                out.setdefault(rel, []).append(Tail(target, weight))
        ordered = dict(sorted(out.items(), key=lambda kv: type_rank(kv[0])))
        if top_k is not None:
            ordered = {r: ts[:top_k] for r, ts in ordered.items()}
        return ordered

    def attributes(self, entity: str, top_k: int | None = None) -> dict[str, list[Tail]]:
        """Values of ``entity`` per KB attribute (family ``attribute``), each ranked by weight
        (how often the KB repeats the triple), then text; attributes by name."""
        out: dict[str, list[Tail]] = {}
        for target, attribute, weight in self._out.get(entity, {}).get(ATTRIBUTE_FAMILY, []):
            out.setdefault(attribute, []).append(Tail(target, weight))
        return {a: ts[:top_k] for a, ts in sorted(out.items())}

    def flow_edges(self, start: str, family: str, depth: int = 1, fanout: int | None = None) -> list[FlowEdge]:
        """Flow edges of one family reachable from ``start``, breadth first to ``depth``.

        Each node contributes its ``fanout`` best edges (weight desc, then type, then target);
        nodes already expanded are not expanded again, so cycles end.
        """
        if depth < 1:
            raise UsageError(f"depth ({depth}) must be at least 1")
        if family not in FLOW_FAMILIES and family != "unknown":
            raise UsageError(f"family {family!r} is not one of {list(FLOW_FAMILIES)} or 'unknown'")
        result: list[FlowEdge] = []
        frontier, expanded = [start], {start}
        for level in range(1, depth + 1):
            nxt: list[str] = []
            for node in frontier:
                items = self._out.get(node, {}).get(family, [])
                for target, ty, w in items[:fanout]:
                    result.append(FlowEdge(node, target, ty, w, level))
                    if target not in expanded:
                        expanded.add(target)
                        nxt.append(target)
            frontier = nxt
        return result

    def flows(
        self,
        head: str,
        *,
        families: Sequence[str] | None = None,
        depth: int = 1,
        fanout: int | None = None,
        relations: Sequence[str] | None = None,
        top_k_tails: int | None = None,
    ) -> HeadFlows:
        """Tails per relation, flow edges per family and KB attribute values for ``head``.

        ``relations`` and ``top_k_tails`` choose among ATOMIC relations; a KB entity's
        attributes (open-ended names) are all kept, ``top_k_tails`` values each.
        Emotion flows start at emotion nodes: for a head that is not one itself they start
        from its xReact/oReact tails (C3KG's emotion flows link emotion tails to tails), so
        depth 1 there means head -react-> emotion -flow-> tail.
        """
        if head not in self._kind:
            raise UnknownNameError(f"head {head!r} is not in the KG")
        families = list(FLOW_FAMILIES) if families is None else list(families)
        result = HeadFlows(head=head, kind=self._kind[head], relations=self.tails(head, relations, top_k_tails),
                           attributes=self.attributes(head, top_k_tails))
        for family in families:
            if family == "emotion" and self._kind[head] != NodeKind.EMOTION.value:
                starts = [
                    t for t, rel, _ in self._out.get(head, {}).get(ATOMIC_FAMILY, [])
                    if rel in EMOTION_SOURCE_RELATIONS
                ]
            else:
                starts = [head]
            edges: list[FlowEdge] = []
            seen: set[tuple[str, str, str]] = set()
            for start in dict.fromkeys(starts):
                for e in self.flow_edges(start, family, depth, fanout):
                    if (e.source, e.target, e.type) not in seen:
                        seen.add((e.source, e.target, e.type))
                        edges.append(e)
            edges.sort(key=lambda e: (e.depth, -e.weight, type_rank(e.type), e.source, e.target))
            result.flows[family] = edges
        return result

    def stats(self) -> dict:
        """Heads by kind, tails, triples by relation, KB triples by attribute, flow edges by type
        and family, isolated nodes."""
        e = self.edges
        atomic = e.filter(pl.col("family") == ATOMIC_FAMILY)
        kb = e.filter(pl.col("family") == ATTRIBUTE_FAMILY)
        flows = e.filter(~pl.col("family").is_in([ATOMIC_FAMILY, ATTRIBUTE_FAMILY]))
        degree_nodes = set(e["source"].to_list()) | set(e["target"].to_list())
        isolated = sorted(set(self._kind) - degree_nodes)
        return {
            "nodes": self.nodes.height,
            "nodes_by_kind": dict(self.nodes.group_by("kind").len().sort("kind").iter_rows()),
            "heads": {
                k: int((self.nodes["kind"] == k).sum())
                for k in (NodeKind.EVENT_HEAD.value, NodeKind.PHRASE_HEAD.value)
            },
            "tails": int(atomic["target"].n_unique()),
            "triples": atomic.height,
            "triples_by_relation": dict(
                sorted(atomic.group_by("type").len().iter_rows(), key=lambda kv: type_rank(kv[0]))
            ),
            "kb_triples": kb.height,
            "kb_triples_by_attribute": dict(kb.group_by("type").len().sort("type").iter_rows()),
            "flow_edges": flows.height,
            "flow_edges_by_type": dict(
                sorted(flows.group_by("type").len().iter_rows(), key=lambda kv: type_rank(kv[0]))
            ),
            "flow_edges_by_family": dict(flows.group_by("family").len().sort("family").iter_rows()),
            "unknown_types": dict(
                e.filter(pl.col("family") == "unknown").group_by("type").len().sort("type").iter_rows()
            ),
            "isolated_nodes": len(isolated),
            "content_sha256": self.content_sha256,
        }
