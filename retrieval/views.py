"""Passage views: the texts that stand for a head when it is encoded, and their weights.

A C3KG head is a few characters (开心, 拖把, 有人买披萨); a comment that implies it rarely
shares its words, and a small encoder sees little in so short a text. The KG itself says
more about each head, so a head is encoded from several *views* and its passage vector is
their weighted sum::

    passage(h) = sum_v  weight_v * encode(view_v(h))            (dim,), not unit length

so one FAISS inner product with a unit query is the weighted sum of the query's cosines to
the views (the same trick as encoder ensembles, :class:`retrieval.encoders.EnsembleEncoder`).
Views, registered in :data:`VIEWS`:

- ``text``: the head's Chinese text (what a plain index encodes).
- ``english``: the head's English form from the release (``head_replaced``, PersonX written
  as "someone"; else ``head``); both encoders are multilingual. Heads without one (emotion
  nodes, KB entities) use their text.
- ``flows``: the head followed by what the KG says of it, ``，``-joined, repeats dropped: the
  strongest tail of each of its ATOMIC relations (xIntent, xReact, AtLocation, ...) and, for
  an emotion node, the first :data:`FLOW_VIEW_EMOTION_EDGES` targets of its emotion flows
  (causes, intents). A head with neither (the release's head files carry no tails) uses its
  text.

A view a head lacks falls back to its text, so every head's weights sum to the same total
and scores stay comparable across kinds. Distinct texts are encoded once.

Chosen on the paraphrase check's dev split (README "Passage views"; default encoder, LCCC
background): ``text:0.3 + english:0.2 + flows:0.5`` lifted recall@5 from .496 to .630
(events .64 -> .71, emotions .13 -> .50) at the hub correction then in use, .615 with the
one chosen after it; held out, the test split went from .538 to .708.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from tiktalk.errors import UsageError
from tiktalk.registry import Registry

DEFAULT_VIEWS = "text:0.3+english:0.2+flows:0.5"
FLOW_VIEW_EMOTION_EDGES = 4  # emotion-flow targets of an emotion node in its flows view

ViewBuilder = Callable[[object, pl.DataFrame], list[str]]  # (graph, head table) -> one text per head


def _text_view(graph, heads: pl.DataFrame) -> list[str]:
    return heads["text"].to_list()


def _english_view(graph, heads: pl.DataFrame) -> list[str]:
    nodes = graph.nodes
    columns = [c for c in ("text_replaced", "text_en") if c in nodes.columns]
    if not columns:
        return heads["text"].to_list()
    english = heads.select("id", "text").join(nodes.select("id", *columns), on="id", how="left", maintain_order="left")
    present = [pl.when(pl.col(c).str.strip_chars().str.len_chars() > 0).then(pl.col(c)) for c in columns]
    return english.select(pl.coalesce(*present, pl.col("text"))).to_series().to_list()


def _flows_view(graph, heads: pl.DataFrame) -> list[str]:
    out = []
    for head_id, text in zip(heads["id"].to_list(), heads["text"].to_list()):
        flows = graph.flows(head_id, families=("emotion",), top_k_tails=1, fanout=FLOW_VIEW_EMOTION_EDGES)
        parts = [tails[0].text for tails in flows.relations.values() if tails]
        parts += [e.target for e in flows.flows.get("emotion", []) if e.source == head_id][:FLOW_VIEW_EMOTION_EDGES]
        out.append("，".join(dict.fromkeys([text, *parts])))
    return out


# View name -> builder. Add one with VIEWS.register("name", builder).
VIEWS: Registry[ViewBuilder] = Registry("passage view", {
    "text": _text_view,
    "english": _english_view,
    "flows": _flows_view,
})


@dataclass(frozen=True)
class PassageViews:
    """Views and their weights (normalised to sum 1), in :data:`VIEWS` order whatever order
    they were given in (so ``flows+text`` is ``text+flows``, and a manifest's sorted JSON
    reads back equal)."""

    weights: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, spec: str | PassageViews | None = None) -> PassageViews:
        """``"text:0.3+english:0.2+flows:0.5"`` (a view without ``:w`` weighs 1); None: the
        default; ``"text"``: the plain index."""
        if isinstance(spec, PassageViews):
            return spec
        spec = DEFAULT_VIEWS if spec is None else spec
        members: list[tuple[str, float]] = []
        for part in spec.split("+"):
            name, sep, weight = part.strip().partition(":")
            if name not in VIEWS:
                raise UsageError(f"passage views {spec!r}: unknown view {name!r}; known: {', '.join(VIEWS.names())}")
            try:
                w = float(weight) if sep else 1.0
            except ValueError:
                raise UsageError(f"passage views {spec!r}: weight {weight!r} of {name!r} is not a number") from None
            if not w > 0 or not np.isfinite(w):
                raise UsageError(f"passage views {spec!r}: weight of {name!r} is {weight}; weights must be > 0")
            if any(name == m for m, _ in members):
                raise UsageError(f"passage views {spec!r}: view {name!r} appears twice")
            members.append((name, w))
        total = sum(w for _, w in members)
        return cls(_canonical((name, w / total) for name, w in members))

    @classmethod
    def from_manifest(cls, entry: dict | None) -> PassageViews:
        """An index manifest's ``views`` entry; an index from before views had the text only."""
        return cls((("text", 1.0),)) if not entry else cls(_canonical((k, float(v)) for k, v in entry.items()))

    @property
    def name(self) -> str:
        return "+".join(f"{n}:{w:g}" for n, w in self.weights)

    @property
    def plain(self) -> bool:
        """Only the head text: unit passage vectors, as before views existed."""
        return [n for n, _ in self.weights] == ["text"]

    def as_dict(self) -> dict[str, float]:
        return {name: round(w, 6) for name, w in self.weights}

    def texts(self, graph, heads: pl.DataFrame) -> dict[str, list[str]]:
        """view -> one text per row of ``heads`` (:func:`retrieval.index.head_table`)."""
        return {name: VIEWS.get(name)(graph, heads) for name, _ in self.weights}

    def encode(self, graph, heads: pl.DataFrame, encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """(n heads, dim) float32 passage vectors. ``encode``: distinct texts -> (m, dim) unit
        passage rows (the caller's encoder, with its progress bar or cache)."""
        return combine_views(self.texts(graph, heads), self.weights, encode)


def _canonical(weights) -> tuple[tuple[str, float], ...]:
    order = {name: i for i, name in enumerate(VIEWS.names())}
    return tuple(sorted(weights, key=lambda item: order.get(item[0], len(order))))


def combine_views(texts: dict[str, Sequence[str]], weights: Sequence[tuple[str, float]],
                  encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """sum_v weight_v * encode(texts[v]) row by row; each distinct text is encoded once."""
    distinct = list(dict.fromkeys(t for name, _ in weights for t in texts[name]))
    vectors = np.asarray(encode(distinct), dtype=np.float32)
    if vectors.shape[0] != len(distinct):
        raise UsageError(f"the encoder returned {vectors.shape[0]} rows for {len(distinct)} texts")
    row = {t: i for i, t in enumerate(distinct)}
    out = np.zeros((len(texts[weights[0][0]]), vectors.shape[1]), dtype=np.float32)
    for name, w in weights:
        out += np.float32(w) * vectors[[row[t] for t in texts[name]]]
    return out
