"""Piece-level knowledge selection: candidates for a context, their features and scores.

For one context (issue 20):

1. **Candidate heads**: the top ``candidate_heads`` heads of the dense index (hub-corrected)
   merged with the ``named_heads`` heads the context names most recently (a head's text
   found verbatim in a turn: a KB's entities are usually named; :class:`NameMatcher`).
2. **Pieces**: each candidate head expands into its pieces (:mod:`retrieval.pieces`).
3. **Scores**: a strategy from :data:`SELECTIONS` scores every piece: ``dense`` (no
   training: the query's cosine to the piece's passage, hub-corrected, plus
   ``head_weight`` x its head's score) or ``learned`` (a selector trained on what responses
   used, :mod:`retrieval.selector`). ``paper`` is the head-major linearisation the paper's
   row reproduces (:meth:`retrieval.Retriever.expand`), not a piece scorer.
4. **Segment**: pieces best first while they fit the model's budget
   (:func:`retrieval.pieces.fill_segment`); a context whose best piece scores under the
   strategy's ``abstain_below`` gets no segment at all (no knowledge beats wrong knowledge).

Hubs: a head or piece near every query wins every context. A batch of contexts is its own
background (``set_background``: annotate and ``select train`` pass their whole input, up to
4,096 contexts), for heads and pieces alike; without one (a single ``retrieve``) the index's
stored head penalties apply when it was built with a background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kg.schema import RELATION_NAMES_ZH
from retrieval.hubness import DEFAULT_HUB_K, DEFAULT_HUB_WEIGHT, hub_penalty
from retrieval.pieces import PIECE_KINDS, Piece, PieceCatalog, PieceConfig
from tiktalk.errors import UsageError
from tiktalk.registry import Registry

# Chosen on KdConv's val split (docs/kdconv.md "Selection"): the gold entity is among the top 5
# dense heads or the 3 most recently named ones for ~99% of val responses with gold knowledge.
DEFAULT_CANDIDATE_HEADS = 5
DEFAULT_NAMED_HEADS = 3
MIN_BACKGROUND = 50  # fewer background queries than this give no batch hub correction


@dataclass(frozen=True)
class SelectionConfig:
    """``candidate_heads`` dense heads and ``named_heads`` named heads per context; ``head_weight``:
    the weight of a piece's head score in the ``dense`` score; ``hub_weight`` / ``hub_k``: the
    batch-background correction (weight x mean similarity to the ``hub_k`` nearest background
    queries); ``abstain_below``: a dense score under which a context gets no segment (None:
    never; a learned selector carries its own, chosen on validation)."""

    candidate_heads: int = DEFAULT_CANDIDATE_HEADS
    named_heads: int = DEFAULT_NAMED_HEADS
    head_weight: float = 0.5
    hub_weight: float = DEFAULT_HUB_WEIGHT
    hub_k: int = DEFAULT_HUB_K
    abstain_below: float | None = None
    max_pieces: int | None = None
    pieces: PieceConfig = field(default_factory=PieceConfig)

    def __post_init__(self) -> None:
        if self.candidate_heads < 0 or self.named_heads < 0 or self.candidate_heads + self.named_heads < 1:
            raise UsageError(f"candidate_heads ({self.candidate_heads}) and named_heads ({self.named_heads}) "
                             "must be >= 0 with at least one head in all")
        if not self.hub_weight >= 0 or self.hub_k < 1:
            raise UsageError(f"hub_weight ({self.hub_weight}) must be >= 0 and hub_k ({self.hub_k}) >= 1")

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "pieces"},
                "pieces": self.pieces.as_dict()}

    @classmethod
    def from_dict(cls, entry: dict) -> SelectionConfig:
        fields = dict(entry)
        pieces = PieceConfig.from_dict(fields.pop("pieces", None) or {})
        return cls(**fields, pieces=pieces)


class NameMatcher:
    """Which heads a context names: a head text (2+ characters) found verbatim in a turn.

    Every substring of a turn up to the longest head text is looked up in a set, so a turn
    costs O(len x longest) lookups, not one scan per head.
    """

    def __init__(self, texts: Sequence[str], min_chars: int = 2) -> None:
        self._rows: dict[str, int] = {}
        for row, text in enumerate(texts):
            if len(text) >= min_chars:
                self._rows.setdefault(text, row)
        self._longest = max((len(t) for t in self._rows), default=0)
        self.min_chars = min_chars

    def find(self, turns: Sequence[str]) -> dict[int, int]:
        """Head row -> how many turns ago it was last named (0: the last turn)."""
        found: dict[int, int] = {}
        for ago, turn in enumerate(reversed(turns)):
            for i in range(len(turn)):
                for j in range(i + self.min_chars, min(len(turn), i + self._longest) + 1):
                    row = self._rows.get(turn[i:j])
                    if row is not None and row not in found:
                        found[row] = ago
        return found


def bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)} or ({text} if text else set())


def containment(text: str, bag: set[str]) -> float:
    """Share of ``text``'s character bigrams that occur in ``bag`` (0 for an empty text)."""
    grams = bigrams(text)
    return len(grams & bag) / len(grams) if grams else 0.0


@dataclass
class Candidates:
    """One context's candidate pieces. ``head_rank``: rank among the dense hits (-1: named
    only); ``named_ago``: turns since the head was named (-1: not named)."""

    context: list[str]
    query: str
    query_vector: np.ndarray  # (dim,) unit
    pieces: list[Piece]
    vectors: np.ndarray  # (n_pieces, dim) piece passage vectors
    piece_penalty: np.ndarray  # (n_pieces,) batch-background hub penalty (zeros without one)
    head_score: np.ndarray  # (n_pieces,) the piece's head's (hub-corrected) cosine to the query
    head_rank: np.ndarray  # (n_pieces,) int
    named_ago: np.ndarray  # (n_pieces,) int
    named_order: np.ndarray  # (n_pieces,) recency rank among the named heads (-1: not named)


class PieceVectors:
    """Passage text -> unit vector, encoded once per distinct text (``kind="passage"``)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self._rows: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def preload(self, passages: Sequence[str], vectors: np.ndarray) -> None:
        """Start from vectors encoded earlier (an index built with ``--pieces``)."""
        if len(passages) != len(vectors):
            raise UsageError(f"{len(passages)} piece passages but {len(vectors)} vectors")
        self._rows = {p: i for i, p in enumerate(passages)}
        self._blocks, self._matrix = [np.asarray(vectors, dtype=np.float32)], None

    def rows(self, passages: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(p for p in passages if p not in self._rows))
        if missing:
            self._blocks.append(np.asarray(self.encoder.encode(missing, kind="passage"), dtype=np.float32))
            start = len(self._rows)
            self._rows.update({p: start + i for i, p in enumerate(missing)})
            self._matrix = None
        return np.fromiter((self._rows[p] for p in passages), dtype=np.int64, count=len(passages))

    @property
    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            self._matrix = (np.concatenate(self._blocks) if self._blocks
                            else np.zeros((0, self.encoder.dim), dtype=np.float32))
            self._blocks = [self._matrix]
        return self._matrix


class CandidateBuilder:
    """Builds :class:`Candidates` for a batch of contexts from a :class:`retrieval.Retriever`'s
    index, KG and encoder (held by the retriever; one per retriever)."""

    def __init__(self, retriever, config: SelectionConfig) -> None:
        self.retriever, self.config = retriever, config
        index = retriever.index
        self.texts: list[str] = index.heads["text"].to_list()
        self.ids: list[str] = index.heads["id"].to_list()
        self.matcher = NameMatcher(self.texts)
        self.catalog = PieceCatalog(retriever.graph, config.pieces)
        self.vectors = PieceVectors(retriever.encoder)
        built = index.manifest.get("pieces")
        if index.piece_passages is not None and built and built.get("config") == config.pieces.as_dict():
            self.vectors.preload(index.piece_passages, index.piece_embeddings)
        self.background: np.ndarray | None = None  # (m, dim) unit query vectors
        self._head_penalty: np.ndarray | None = None  # (n_heads,) from the batch background
        self._piece_penalty: dict[int, float] = {}

    # -- hubs
    def set_background(self, queries: np.ndarray | None) -> None:
        """Use these query vectors as the hub background (None or too few: none)."""
        if queries is None or len(queries) < MIN_BACKGROUND:
            self.background, self._head_penalty = None, None
        else:
            self.background = np.ascontiguousarray(queries, dtype=np.float32)
            emb = np.asarray(self.retriever.index.embeddings, dtype=np.float32)
            self._head_penalty = hub_penalty(emb, self.background, self.config.hub_k)
        self._piece_penalty = {}

    def head_penalty(self) -> np.ndarray | None:
        """The per-head penalty in use: the batch background's (the queries really asked), else
        the index's stored one (built with a background), else none."""
        if self._head_penalty is not None:
            return self._head_penalty
        return self.retriever.index.hub_penalty if self.retriever.hub_corrected else None

    def piece_penalty(self, rows: np.ndarray) -> np.ndarray:
        if self.background is None:
            return np.zeros(len(rows), dtype=np.float32)
        todo = [int(r) for r in dict.fromkeys(rows.tolist()) if int(r) not in self._piece_penalty]
        if todo:
            values = hub_penalty(self.vectors.matrix[todo], self.background, self.config.hub_k)
            self._piece_penalty.update(zip(todo, values.tolist()))
        return np.array([self._piece_penalty[int(r)] for r in rows], dtype=np.float32)

    # -- candidates
    def build(self, contexts: Sequence[Sequence[str]], queries: list[list[str]],
              vectors: np.ndarray) -> list[Candidates | None]:
        """One entry per context (None: a blank context, no query). ``vectors``: the
        retriever's query vectors, one row per query text (:meth:`Retriever.encode`)."""
        cfg = self.config
        index, penalty = self.retriever.index, self.head_penalty()
        weight = cfg.hub_weight if penalty is not None else 0.0
        qvecs, row, keep = [], 0, []
        for qs in queries:
            if qs:
                # a context's query vectors, averaged and renormalised (one query in the default mode)
                v = vectors[row : row + len(qs)].mean(axis=0)
                qvecs.append(v / max(float(np.linalg.norm(v)), 1e-12))
                keep.append(True)
            else:
                keep.append(False)
            row += len(qs)
        if not qvecs:
            return [None] * len(queries)
        q = np.stack(qvecs).astype(np.float32)
        emb = index.embeddings
        hits = np.full((len(q), 0), -1, dtype=np.int64)
        if cfg.candidate_heads and penalty is not None:
            from retrieval.search import search_penalized

            hits = search_penalized(index.index, q, cfg.candidate_heads, weight * penalty)[1]
        elif cfg.candidate_heads:
            hits = index.search(q, cfg.candidate_heads)[1]
        out: list[Candidates | None] = []
        qi = 0
        for context, qs, present in zip(contexts, queries, keep):
            if not present:
                out.append(None)
                continue
            turns = [t for t in context if t and t.strip()]
            ranked = [int(h) for h in hits[qi] if h >= 0]
            named = self.matcher.find(turns)
            recent = sorted(named, key=lambda r: (named[r], -len(self.texts[r]), r))[: cfg.named_heads]
            heads = list(dict.fromkeys(ranked + recent))
            # a named head's score is its own cosine, corrected as the dense hits are
            head_scores = np.asarray(emb[heads], dtype=np.float32) @ q[qi]
            if penalty is not None:
                head_scores = head_scores - weight * penalty[heads]
            pieces: list[Piece] = []
            per_piece: list[tuple[float, int, int, int]] = []
            for h, score in zip(heads, head_scores.tolist()):
                rank = ranked.index(h) if h in ranked else -1
                ago = named.get(h, -1)
                order = recent.index(h) if h in recent else -1
                for piece in self.catalog(self.ids[h]):
                    pieces.append(piece)
                    per_piece.append((score, rank, ago, order))
            rows = self.vectors.rows([p.passage for p in pieces])
            meta = np.array(per_piece, dtype=np.float64).reshape(-1, 4)
            out.append(Candidates(
                context=list(turns), query=" | ".join(qs), query_vector=q[qi], pieces=pieces,
                vectors=self.vectors.matrix[rows], piece_penalty=self.piece_penalty(rows),
                head_score=meta[:, 0].astype(np.float32), head_rank=meta[:, 1].astype(np.int64),
                named_ago=meta[:, 2].astype(np.int64), named_order=meta[:, 3].astype(np.int64)))
            qi += 1
        return out


# -- features of the learned selector (one row per piece; names in FEATURES order)
FEATURES = (
    "piece_cos", "piece_cos_corrected", "head_score", "head_rank_recip", "dense_hit",
    "named", "named_recency", "named_last_turn", "named_first", "content_in_context",
    "content_in_last_turn", "content_overlap_context", "content_overlap_last_turn", "label_overlap_last_turn",
    "is_part", "part_recip", "prev_part_in_context", "length", "piece_penalty",
    *(f"kind_{k}" for k in PIECE_KINDS),
    "named_turn_share", "named_turns", "named_in_first_turn", "named_inside_longer_name",
)


def label_text(piece: Piece) -> str:
    """How a piece's relation or attribute reads in Chinese (for overlap with the context)."""
    return RELATION_NAMES_ZH.get(piece.label, piece.label)


def piece_features(c: Candidates) -> np.ndarray:
    """(n_pieces, len(FEATURES)) float32 features of one context's candidates."""
    cos = c.vectors @ c.query_vector
    context_bag = bigrams("".join(c.context))
    last = c.context[-1] if c.context else ""
    last_bag = bigrams(last)
    whole_context = "".join(c.context)
    rows = []
    parts_seen: dict[tuple[str, str], float] = {}
    heads = _head_mentions(c)
    for i, p in enumerate(c.pieces):
        content = p.content if p.kind != "head" else ""
        is_part = p.part >= 0
        prev = parts_seen.get((p.head_id, p.value), 0.0) if is_part and p.part > 0 else 0.0
        overlap_context = containment(content, context_bag)
        if is_part:
            parts_seen[p.head_id, p.value] = overlap_context
        rows.append((
            cos[i], cos[i] - c.piece_penalty[i], c.head_score[i],
            1.0 / (1 + c.head_rank[i]) if c.head_rank[i] >= 0 else 0.0, float(c.head_rank[i] >= 0),
            float(c.named_ago[i] >= 0), 1.0 / (1 + c.named_ago[i]) if c.named_ago[i] >= 0 else 0.0,
            float(c.named_ago[i] == 0), float(c.named_order[i] == 0),
            float(len(content) >= 2 and content in whole_context), float(len(content) >= 2 and content in last),
            overlap_context, containment(content, last_bag), containment(label_text(p), last_bag),
            float(is_part), 1.0 / (1 + p.part) if is_part else 0.0, prev, len(p.text) / 40.0, c.piece_penalty[i],
            *(float(p.kind == k) for k in PIECE_KINDS),
            *heads[p.head_id],
        ))
    return np.asarray(rows, dtype=np.float32).reshape(-1, len(FEATURES))


def _head_mentions(c: Candidates) -> dict[str, tuple[float, float, float, float]]:
    """Per candidate head, how the context names it: the share of turns that do, their count
    (capped at 5, /5), whether the first turn does (a KdConv dialogue's topic), and whether
    every mention lies inside a longer named head's name (``圆明园`` inside ``圆明园皇家皮影戏苑``).
    Chosen by 5-fold CV on KdConv's training split: the right attribute of the wrong entity was
    the commonest miss (used whole value in the segment where it fits 0.895 -> 0.907, val
    0.908 -> 0.943)."""
    turns = c.context
    named = {p.head for p, ago in zip(c.pieces, c.named_ago) if ago >= 0}
    out: dict[str, tuple[float, float, float, float]] = {}
    for p in c.pieces:
        if p.head_id in out:
            continue
        count = sum(p.head in t for t in turns)
        longer = [o for o in named if o != p.head and p.head in o]
        inside = bool(count and longer) and all(t.count(p.head) <= sum(t.count(o) for o in longer)
                                                for t in turns if p.head in t)
        out[p.head_id] = (count / max(len(turns), 1), min(count, 5) / 5, float(bool(turns) and p.head in turns[0]),
                          float(inside))
    return out


# -- strategies
class DenseScorer:
    """No training: cosine(query, piece passage) - hub penalty + ``head_weight`` x head score."""

    name = "dense"

    def __init__(self, config: SelectionConfig) -> None:
        self.config = config
        self.abstain_below = config.abstain_below

    def describe(self) -> dict:
        return {"name": self.name, "head_weight": self.config.head_weight}

    def abstains(self, batch: Sequence[Candidates], scores: Sequence[np.ndarray]) -> np.ndarray:
        return below_threshold(scores, self.abstain_below)

    def never_abstain(self) -> None:
        self.abstain_below = None

    def score(self, batch: Sequence[Candidates]) -> list[np.ndarray]:
        cfg = self.config
        return [(c.vectors @ c.query_vector - cfg.hub_weight * c.piece_penalty + cfg.head_weight * c.head_score
                 ).astype(np.float32) for c in batch]


SELECTIONS: Registry = Registry("selection", {
    "paper": "retrieval.selection:PAPER",
    "dense": "retrieval.selection:DenseScorer",
    "learned": "retrieval.selector:LearnedScorer",
})
PAPER = None  # the head-major linearisation (Retriever.expand): no piece scorer
DEFAULT_SELECTION = "dense"


def below_threshold(scores: Sequence[np.ndarray], abstain_below: float | None) -> np.ndarray:
    """(c,) bool: the contexts whose best piece scores under ``abstain_below`` (None: none)."""
    if abstain_below is None:
        return np.zeros(len(scores), dtype=bool)
    return np.array([bool(len(s)) and float(np.max(s)) < abstain_below for s in scores], dtype=bool)


def choose(candidates: Candidates | None, scores: np.ndarray | None, budget, abstain: bool = False,
           max_pieces: int | None = None) -> tuple[list[Piece], bool]:
    """The pieces of one context's segment, best first, and whether it abstained (``abstain``:
    the scorer's decision, :meth:`abstains`)."""
    from retrieval.pieces import fill_segment

    if candidates is None or not candidates.pieces:
        return [], False
    if abstain:
        return [], True
    order = sorted(range(len(candidates.pieces)), key=lambda i: (-float(scores[i]), i))
    return fill_segment([candidates.pieces[i] for i in order], budget, max_pieces), False
