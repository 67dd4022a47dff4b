"""Context -> query -> top-k heads -> KG flows -> knowledge segment text.

The three stages are separate methods so they can be timed and tested apart:
:meth:`Retriever.encode` (text -> vectors), :meth:`Retriever.search_heads` (vectors ->
ranked heads) and :meth:`Retriever.expand` (heads -> flows -> linearised text).
:func:`merge_hits` is the one merge of a context's hits (the quality benchmarks call it too).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import kg
from retrieval.encoders import Encoder, open_manifest_encoder
from retrieval.hubness import DEFAULT_HUB_WEIGHT
from retrieval.index import HeadIndex
from retrieval.pieces import Piece, write_segment
from retrieval.query import QueryConfig, build_queries
from retrieval.selection import (
    DEFAULT_SELECTION,
    SELECTIONS,
    CandidateBuilder,
    Candidates,
    SelectionConfig,
    choose,
)
from tiktalk.errors import MissingInputError, UsageError
from tiktalk.options import FINITE, NON_NEGATIVE, POSITIVE_INT, bounded, check_fields
from tiktalk.types import KnowledgeBudget


@dataclass
class RetrieverConfig:
    """``top_k`` heads overall, or per family when ``per_family``; heads under ``min_score``
    are dropped (the hub-corrected score, when corrected). ``hub_correction``: rank heads by
    cosine minus ``hub_weight`` x their stored hub penalty (:mod:`retrieval.hubness`) when the index has one
    (built with a background); an index without one is searched plainly. The flows query (:meth:`kg.C3KG.flows`) is the one place knowledge is
    chosen: ``families``, ``relations``, ``depth``, ``fanout`` edges per node and family,
    ``top_k_tails`` tails per relation. ``linearize`` only formats; the budget that cuts the
    text is the :class:`Retriever`'s (the model's, see ``ChatModel.knowledge_budget``).

    ``selection`` (:data:`retrieval.selection.SELECTIONS`): ``paper`` writes the ``top_k``
    heads head-major as above (the paper's row); ``dense`` and ``learned`` score the pieces
    of ``piece_selection.candidate_heads`` + ``.named_heads`` candidate heads and fill the
    segment best first (:mod:`retrieval.selection`); ``learned`` reads the selector at
    ``selector`` (``tiktalk select train``), whose own candidate settings then apply."""

    top_k: int = field(default=3, metadata=bounded(POSITIVE_INT))
    per_family: bool = False
    min_score: float | None = field(default=None, metadata=bounded(FINITE))
    hub_correction: bool = True
    hub_weight: float = field(default=DEFAULT_HUB_WEIGHT, metadata=bounded(NON_NEGATIVE))
    query: QueryConfig = field(default_factory=QueryConfig)
    families: tuple[str, ...] = tuple(kg.FLOW_FAMILIES)
    relations: tuple[str, ...] = kg.DEFAULT_RELATIONS
    depth: int = field(default=1, metadata=bounded(POSITIVE_INT))
    fanout: int | None = field(default=2, metadata=bounded(POSITIVE_INT))
    top_k_tails: int | None = field(default=2, metadata=bounded(POSITIVE_INT))
    linearize: kg.LinearizeConfig = field(default_factory=kg.LinearizeConfig)
    selection: str = DEFAULT_SELECTION
    selector: str | None = None
    abstain: bool = True  # False: a piece selection never abstains (its threshold is ignored)
    piece_selection: SelectionConfig = field(default_factory=SelectionConfig)

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise UsageError(f"selection {self.selection!r} is not one of {SELECTIONS.names()}")
        if (self.selection == "learned") != (self.selector is not None):
            raise UsageError("selection 'learned' needs a selector (tiktalk select train) and only it takes one "
                             f"(selection {self.selection!r}, selector {self.selector!r})")
        check_fields(self)  # numeric ranges, declared with the fields (tiktalk.options)
        unknown = [f for f in self.families if f not in kg.FLOW_FAMILIES]
        if unknown:
            raise UsageError(f"families {unknown} are not flow families {list(kg.FLOW_FAMILIES)}")


def merge_hits(scores: np.ndarray, ids: np.ndarray, keys: Sequence[Hashable] | None = None,
               min_score: float | None = None) -> list[tuple[int, float]]:
    """The hits of one context's query rows, merged: scores / ids (q, k) -> [(row, score)].

    A row reached by several queries counts once with its best score; with ``keys`` (row ->
    key, e.g. the head text) rows sharing a key count once too (the best-scoring row, the
    lower row among equal scores). Ranked by score (descending), then row. ``-1`` ids
    (FAISS's empty slots) and scores under ``min_score`` are dropped.
    """
    best: dict[Hashable, tuple[int, float]] = {}
    for row_scores, row_ids in zip(scores, ids):
        for s, i in zip(row_scores, row_ids):
            if i < 0 or (min_score is not None and s < min_score):
                continue
            i, s = int(i), float(s)
            key = i if keys is None else keys[i]
            if key not in best or (-s, i) < (-best[key][1], best[key][0]):
                best[key] = (i, s)
    return sorted(best.values(), key=lambda hit: (-hit[1], hit[0]))


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
    """What one context retrieved: its query text(s), ranked heads and the knowledge text;
    with a piece selection also the chosen pieces (best first) and whether it abstained."""

    queries: list[str]
    heads: list[RetrievedHead]
    knowledge: str
    pieces: list[Piece] | None = None
    abstained: bool = False

    def as_dict(self) -> dict:
        out = {"queries": self.queries, "heads": [h.as_dict() for h in self.heads], "knowledge": self.knowledge}
        if self.pieces is not None:
            out["pieces"] = [p.passage for p in self.pieces]
            out["abstained"] = self.abstained
        return out


class Retriever:
    """``budget``: the knowledge segment's length (a model's, ``ChatModel.knowledge_budget()``;
    None: uncut)."""

    def __init__(self, index: HeadIndex, graph: kg.C3KG, encoder: Encoder, config: RetrieverConfig | None = None,
                 *, budget: KnowledgeBudget | None = None, check: bool = True) -> None:
        if check:
            index.check_compatible(encoder, graph.content_sha256)
        self.index, self.graph, self.encoder = index, graph, encoder
        self.config = config or RetrieverConfig()
        self.budget = budget
        h = index.heads
        self._ids, self._texts = h["id"].to_list(), h["text"].to_list()
        self._kinds, self._families = h["kind"].to_list(), h["family"].to_list()
        # (head id, flows settings) -> HeadFlows: heads recur across contexts (annotate), and a
        # KG query costs ~0.1 ms; keyed by the settings so a changed config is never served stale
        self._flows: dict[tuple, kg.HeadFlows] = {}
        self._query_vectors: dict[str, np.ndarray] = {}  # prepare_background's, reused by encode
        self._rows = {head_id: row for row, head_id in enumerate(self._ids)}
        self.scorer, self.candidates = None, None
        if self.config.selection != "paper":
            if self.config.selection == "learned":
                from retrieval.selector import LearnedScorer

                self.scorer = LearnedScorer.load(self.config.selector, self)
            else:
                self.scorer = SELECTIONS.get(self.config.selection)(self.config.piece_selection)
            self.candidates = CandidateBuilder(self, self.scorer.config)
            if not self.config.abstain:
                self.scorer.never_abstain()

    @property
    def selection_settings(self) -> dict:
        """What chose the knowledge: the strategy, its scorer and the hub background in use."""
        if self.scorer is None:
            return {"name": "paper"}
        cb = self.candidates
        background = (f"batch ({len(cb.background)} queries)" if cb.background is not None else
                      "index" if self.hub_corrected else "none")
        return {**self.scorer.describe(), "hub_background": background}

    def prepare_background(self, contexts: Sequence[Sequence[str]], titles: Sequence[str | None] | None = None,
                           limit: int = 4096, seed: int = 0, progress: bool = False) -> int:
        """Let these contexts (at most ``limit``, a seeded sample) be the hub background of a
        piece selection (unless the hub correction is off); their query vectors are kept for
        :meth:`encode`. Returns the number of background queries (0: none used)."""
        if self.candidates is None or not self.config.hub_correction:
            return 0
        from tqdm.auto import tqdm

        contexts, titles = list(contexts), (list(titles) if titles is not None else [None] * len(contexts))
        if len(contexts) > limit:
            pick = sorted(np.random.default_rng(seed).choice(len(contexts), limit, replace=False).tolist())
            contexts, titles = [contexts[i] for i in pick], [titles[i] for i in pick]
        texts = list(dict.fromkeys(q for qs in self.queries(contexts, titles) for q in qs))
        vectors = np.zeros((len(texts), self.index.dim), np.float32)
        with tqdm(total=len(texts), desc="encode hub background", unit="query", disable=not progress) as bar:
            for start in range(0, len(texts), 256):
                part = texts[start : start + 256]
                vectors[start : start + len(part)] = self.encode([part])
                bar.update(len(part))
        self._query_vectors.update(zip(texts, vectors))
        self.candidates.set_background(vectors)
        return 0 if self.candidates.background is None else len(texts)

    @classmethod
    def load(cls, index_dir: str | Path, *, graph: kg.C3KG | None = None, encoder: Encoder | None = None,
             config: RetrieverConfig | None = None, budget: KnowledgeBudget | None = None,
             verify: bool = True, trust_pickle: bool = False,
             on_notice: Callable[[str], None] | None = None, workers: int | None = 1) -> Retriever:
        """Open an index directory; the encoder and KG default to the ones named in its manifest.

        ``trust_pickle`` lets that KG be a ``C3KG.GRAPH`` pickle (see :func:`kg.load_kg`);
        ``on_notice`` hears of an interrupted index replacement restored on open; ``workers``:
        processes the named encoder encodes on (None: every usable core; see
        :func:`retrieval.encoders.open_encoder`); close them with ``retriever.encoder.close()``.
        """
        index = HeadIndex.load(index_dir, verify=verify, on_notice=on_notice)
        encoder = encoder or open_manifest_encoder(index.manifest["encoder"], workers)
        if graph is None:
            graph = kg.load_kg(_manifest_kg(index_dir, index.manifest["kg"]), trust_pickle=trust_pickle)
        return cls(index, graph, encoder, config, budget=budget)

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
        known = self._query_vectors
        if known and all(q in known for q in flat):
            return np.stack([known[q] for q in flat])
        return self.encoder.encode(flat, kind="query")

    # -- stage 2: vectors -> ranked heads
    @property
    def hub_corrected(self) -> bool:
        """Whether heads are ranked with the hub correction (asked for, and the index has it)."""
        return self.config.hub_correction and self.index.hub_penalty is not None

    def search_heads(self, queries: list[list[str]], vectors: np.ndarray) -> list[list[RetrievedHead]]:
        cfg = self.config
        if vectors.shape[0] == 0:  # only blank contexts: no query, no heads
            return [[] for _ in queries]
        # fetch a few extra so merging duplicate texts / per-turn hits still leaves top_k
        # (at most the index: memory asked for is bounded by the data, whatever top_k says)
        fetch = min(cfg.top_k * 2, len(self.index))
        weight = cfg.hub_weight if self.hub_corrected else None
        if cfg.per_family:
            parts = [self.index.search(vectors, fetch, family=f, hub_weight=weight) for f in self.index.families]
            scores = np.concatenate([p[0] for p in parts], axis=1)
            ids = np.concatenate([p[1] for p in parts], axis=1)
        else:
            scores, ids = self.index.search(vectors, fetch, hub_weight=weight)
        out, row = [], 0
        for qs in queries:
            # duplicate head texts and heads reached from several queries are merged
            hits = merge_hits(scores[row : row + len(qs)], ids[row : row + len(qs)], self._texts, cfg.min_score)
            row += len(qs)
            ranked = [RetrievedHead(self._ids[i], self._texts[i], self._kinds[i], self._families[i], s)
                      for i, s in hits]
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
        settings = (tuple(cfg.families), cfg.depth, cfg.fanout, tuple(cfg.relations), cfg.top_k_tails)
        items = []
        for h in heads:
            flows = self._flows.get((h.id, settings))
            if flows is None:
                flows = self._flows[h.id, settings] = self.graph.flows(
                    h.id, families=cfg.families, depth=cfg.depth, fanout=cfg.fanout, relations=cfg.relations,
                    top_k_tails=cfg.top_k_tails)
            items.append(flows)
        return kg.linearize(items, cfg.linearize, self.budget).text

    def retrieve_batch(self, contexts: Sequence[Sequence[str]],
                       titles: Sequence[str | None] | None = None) -> list[Retrieval]:
        queries = self.queries(contexts, titles)
        vectors = self.encode(queries)
        if self.scorer is None:
            heads = self.search_heads(queries, vectors)
            return [Retrieval(q, h, self.expand(h)) for q, h in zip(queries, heads)]
        return self.select(contexts, queries, vectors)

    def candidate_chunks(self, contexts: Sequence[Sequence[str]], chunk_size: int = 256
                         ) -> Iterator[tuple[int, list[Candidates | None]]]:
        """(start, the candidates of ``contexts[start : start + chunk_size]``) per chunk, one entry
        per context (None: blank): what selector training and evaluation score."""
        queries = self.queries(contexts)
        for start in range(0, len(contexts), chunk_size):
            part = slice(start, start + chunk_size)
            yield start, self.candidates.build(contexts[part], queries[part], self.encode(queries[part]))

    def select(self, contexts: Sequence[Sequence[str]], queries: list[list[str]],
               vectors: np.ndarray) -> list[Retrieval]:
        """The piece selection's segments (see :mod:`retrieval.selection`)."""
        batch = self.candidates.build(contexts, queries, vectors)
        present = [c for c in batch if c is not None]
        scored = self.scorer.score(present)
        decided = iter(zip(scored, self.scorer.abstains(present, scored)))
        rows = self._rows
        out = []
        for qs, c in zip(queries, batch):
            if c is None:
                out.append(Retrieval(qs, [], "", pieces=[], abstained=False))
                continue
            s, abstain = next(decided)
            pieces, abstained = choose(c, s, self.budget, bool(abstain), self.scorer.config.max_pieces)
            head_score = {p.head_id: float(c.head_score[i]) for i, p in enumerate(c.pieces)}
            heads = [RetrievedHead(h, self._texts[rows[h]], self._kinds[rows[h]], self._families[rows[h]],
                                   head_score[h]) for h in dict.fromkeys(p.head_id for p in pieces)]
            out.append(Retrieval(qs, heads, write_segment(pieces), pieces=pieces, abstained=abstained))
        return out

    def retrieve(self, context: Sequence[str], title: str | None = None) -> Retrieval:
        return self.retrieve_batch([context], [title])[0]
