"""Context -> query -> top-k heads -> KG flows -> knowledge segment text.

The three stages are separate methods so they can be timed and tested apart:
:meth:`Retriever.encode` (text -> vectors), :meth:`Retriever.search_heads` (vectors ->
ranked heads) and :meth:`Retriever.expand` (heads -> flows -> linearised text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import kg
from retrieval.encoders import Encoder, get_encoder
from retrieval.index import HeadIndex
from retrieval.query import QueryConfig, build_queries
from tiktalk.errors import MissingInputError, UsageError


@dataclass
class RetrieverConfig:
    """``top_k`` heads overall, or per family when ``per_family``; heads under ``min_score``
    are dropped. ``depth`` / ``fanout`` / ``top_k_tails`` go to :meth:`kg.C3KG.flows`;
    ``linearize`` sets the knowledge budget."""

    top_k: int = 3
    per_family: bool = False
    min_score: float | None = None
    query: QueryConfig = field(default_factory=QueryConfig)
    depth: int = 1
    fanout: int | None = 3
    top_k_tails: int | None = 3
    linearize: kg.LinearizeConfig = field(default_factory=kg.LinearizeConfig)

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise UsageError(f"top_k ({self.top_k}) must be at least 1")


def _manifest_kg(index_dir: str | Path, record: dict) -> str:
    """The KG an index names, refused with where the path came from when it is not there."""
    source = record.get("source") or record.get("path")
    manifest = Path(index_dir) / "manifest.json"
    if not isinstance(source, str):
        raise UsageError(f"{manifest}: field 'kg.source' does not say which KG the index was built from; "
                         "pass the KG (--kg)")
    if source != kg.SAMPLE_NAME and not Path(source).exists():
        given = record.get("source_given")
        typed = f" (typed as {given!r} when the index was built)" if given and given != source else ""
        relative = "; it is relative, so it was read from the current directory" if not Path(source).is_absolute() else ""
        raise MissingInputError(
            f"{manifest}: field 'kg.source' names the KG {source}{typed}, which does not exist{relative}; "
            "pass the KG (--kg)"
        )
    return source


@dataclass(frozen=True)
class RetrievedHead:
    id: str
    text: str
    kind: str
    family: str
    score: float

    def as_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "kind": self.kind, "family": self.family,
                "score": round(float(self.score), 6)}


@dataclass
class Retrieval:
    """What one context retrieved: its query text(s), ranked heads and the knowledge text."""

    queries: list[str]
    heads: list[RetrievedHead]
    knowledge: str

    def as_dict(self) -> dict:
        return {"queries": self.queries, "heads": [h.as_dict() for h in self.heads], "knowledge": self.knowledge}


class Retriever:
    def __init__(self, index: HeadIndex, graph: kg.C3KG, encoder: Encoder, config: RetrieverConfig | None = None,
                 *, check: bool = True) -> None:
        if check:
            index.check_compatible(encoder, graph.content_sha256)
        self.index, self.graph, self.encoder = index, graph, encoder
        self.config = config or RetrieverConfig()
        h = index.heads
        self._ids, self._texts = h["id"].to_list(), h["text"].to_list()
        self._kinds, self._families = h["kind"].to_list(), h["family"].to_list()

    @classmethod
    def load(cls, index_dir: str | Path, *, graph: kg.C3KG | None = None, encoder: Encoder | None = None,
             config: RetrieverConfig | None = None, verify: bool = True, trust_pickle: bool = False,
             on_notice: Callable[[str], None] | None = None) -> Retriever:
        """Open an index directory; the encoder and KG default to the ones named in its manifest.

        ``trust_pickle`` lets that KG be a ``C3KG.GRAPH`` pickle (see :func:`kg.load_kg`);
        ``on_notice`` hears of an interrupted index replacement restored on open.
        """
        index = HeadIndex.load(index_dir, verify=verify, on_notice=on_notice)
        encoder = encoder or get_encoder(index.manifest["encoder"]["name"])
        if graph is None:
            graph = kg.load_kg(_manifest_kg(index_dir, index.manifest["kg"]), trust_pickle=trust_pickle)
        return cls(index, graph, encoder, config)

    # -- stage 1: text -> vectors
    def queries(self, contexts: Sequence[Sequence[str]], titles: Sequence[str | None] | None = None) -> list[list[str]]:
        titles = list(titles) if titles is not None else [None] * len(contexts)
        if len(titles) != len(contexts):
            raise UsageError(f"{len(titles)} titles for {len(contexts)} contexts")
        return [build_queries(c, t, self.config.query) for c, t in zip(contexts, titles)]

    def encode(self, queries: list[list[str]]) -> np.ndarray:
        """Flattened query texts -> (sum of queries, dim) vectors (blank contexts have none)."""
        flat = [q for qs in queries for q in qs]
        if not flat:
            return np.zeros((0, self.index.dim), dtype=np.float32)
        return self.encoder.encode(flat, kind="query")

    # -- stage 2: vectors -> ranked heads
    def search_heads(self, queries: list[list[str]], vectors: np.ndarray) -> list[list[RetrievedHead]]:
        cfg = self.config
        if vectors.shape[0] == 0:  # only blank contexts: no query, no heads
            return [[] for _ in queries]
        # fetch a few extra so merging duplicate texts / per-turn hits still leaves top_k
        fetch = cfg.top_k * 2
        if cfg.per_family:
            parts = [self.index.search(vectors, fetch, family=f) for f in self.index.families]
            scores = np.concatenate([p[0] for p in parts], axis=1)
            ids = np.concatenate([p[1] for p in parts], axis=1)
        else:
            scores, ids = self.index.search(vectors, fetch)
        out, row = [], 0
        for qs in queries:
            best: dict[str, RetrievedHead] = {}  # text -> best hit (duplicate heads merged)
            for r in range(row, row + len(qs)):
                for s, i in zip(scores[r], ids[r]):
                    if i < 0 or (cfg.min_score is not None and s < cfg.min_score):
                        continue
                    text = self._texts[i]
                    if text not in best or s > best[text].score:
                        best[text] = RetrievedHead(self._ids[i], text, self._kinds[i], self._families[i], float(s))
            row += len(qs)
            ranked = sorted(best.values(), key=lambda h: (-h.score, h.id))
            if cfg.per_family:
                kept, count = [], {}
                for h in ranked:
                    if count.get(h.family, 0) < cfg.top_k:
                        kept.append(h)
                        count[h.family] = count.get(h.family, 0) + 1
                ranked = kept
            else:
                ranked = ranked[: cfg.top_k]
            out.append(ranked)
        return out

    # -- stage 3: heads -> flows -> knowledge text
    def expand(self, heads: list[RetrievedHead]) -> str:
        cfg = self.config
        items = [
            self.graph.flows(h.id, depth=cfg.depth, fanout=cfg.fanout, top_k_tails=cfg.top_k_tails,
                             families=list(cfg.linearize.families))
            for h in heads
        ]
        return kg.linearize(items, cfg.linearize).text

    def retrieve_batch(self, contexts: Sequence[Sequence[str]],
                       titles: Sequence[str | None] | None = None) -> list[Retrieval]:
        queries = self.queries(contexts, titles)
        vectors = self.encode(queries)
        heads = self.search_heads(queries, vectors)
        return [Retrieval(q, h, self.expand(h)) for q, h in zip(queries, heads)]

    def retrieve(self, context: Sequence[str], title: str | None = None) -> Retrieval:
        return self.retrieve_batch([context], [title])[0]
