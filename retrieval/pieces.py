"""Pieces: the unit of knowledge selection, and the segment written from chosen pieces.

A head expands into *pieces*, each one fact a response might use (issue 20; the paper's
linearisation is head-major, :func:`kg.linearize`, and stays as the ``paper`` selection):

- the head itself                             kind ``head``       ``有人买披萨`` / ``故宫``
- each (relation, tail) of an ATOMIC head     kind ``relation``   ``目的是填饱肚子``
- each (attribute, value) of a KB entity      kind ``attribute``  ``门票：60元``; a value longer
  than ``split_over`` characters (KdConv's ``Information`` descriptions, median 246) becomes
  one piece per part (sentences, clauses packed up to ``part_chars``), written bare
- each dialogue-flow edge (family, target)    kind ``flow``       ``接话有人流口水了``

A piece is written into a segment after its head, as :func:`kg.linearize` writes it:
``head，piece，piece；head，piece``: the same separators (:data:`kg.PIECE_SEP`,
:data:`kg.HEAD_SEP`), so :func:`kg.fit_knowledge` still cuts at piece boundaries and a KB
segment reads like the gold one (``观复博物馆，门票：100元``). Its *passage* (what an encoder
reads) is the head followed by the piece.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from kg.graph import C3KG
from kg.linearize import DEFAULT_RELATIONS, HEAD_SEP, PIECE_SEP, LinearizeConfig
from kg.linearize import clean_piece as _clean
from kg.schema import FLOW_FAMILIES
from tiktalk.errors import UsageError
from tiktalk.types import KnowledgeBudget

PIECE_KINDS = ("head", "relation", "attribute", "flow")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")
_CLAUSE_END = re.compile(r"(?<=[，,、；;])")


@dataclass(frozen=True)
class Piece:
    """One fact of one head. ``content`` is what the piece adds (tail, value or part of one,
    flow target; the head text for a head piece); ``text`` is how a segment writes it."""

    head_id: str
    head: str
    kind: str  # one of PIECE_KINDS
    label: str  # relation type, attribute name or flow edge type; "" for the head piece
    content: str
    text: str
    value: str = ""  # the whole KB value a part comes from ("" unless split)
    part: int = -1  # index of the part within ``value``; -1 for an unsplit piece

    @property
    def passage(self) -> str:
        """The text an encoder reads for this piece: its head, then the piece."""
        return self.head if self.kind == "head" else f"{self.head}，{self.text}"

    def as_dict(self) -> dict:
        return {"head_id": self.head_id, "head": self.head, "kind": self.kind, "label": self.label,
                "content": self.content, "text": self.text, "value": self.value, "part": self.part}


@dataclass(frozen=True)
class PieceConfig:
    """Which pieces a head expands into. ``relations`` / ``top_k_tails`` / ``families`` /
    ``fanout``: as :class:`retrieval.RetrieverConfig` (the flows query); ``top_k_values``: KB
    values per attribute (``None``: all); ``split_over``: a KB value longer than this many
    characters is split into parts of at most ``part_chars``.

    ``top_k_values`` is all by default because a selection chooses among them: the flows
    query's 2 kept 2 of an entity's 5 nearby sights (``周边景点``, 14% of the used values in
    KdConv's training split), so the one a response named was no candidate for 40% of those (85 of 213).

    Chosen on KdConv's training split: a used value of up to 60 characters fits Maria's 69-token
    budget with its entity and attribute (47 of 49 of 41-60 characters do, 3 of 13 of 61-80), so
    it stays one piece a segment can hold whole; a longer one (descriptions) becomes parts of a
    sentence or so (40), which a response repeats one at a time."""

    relations: tuple[str, ...] = DEFAULT_RELATIONS
    top_k_tails: int | None = 2
    top_k_values: int | None = None
    families: tuple[str, ...] = tuple(FLOW_FAMILIES)
    fanout: int | None = 2
    split_over: int = 60
    part_chars: int = 40
    linearize: LinearizeConfig = field(default_factory=LinearizeConfig)

    def __post_init__(self) -> None:
        if self.top_k_values is not None and (isinstance(self.top_k_values, bool) or not isinstance(self.top_k_values, int)
                                              or self.top_k_values < 1):
            raise UsageError(f"top_k_values ({self.top_k_values!r}) must be a whole number of at least 1, or None for all")
        if self.part_chars < 4 or self.split_over < self.part_chars:
            raise UsageError(f"part_chars ({self.part_chars}) must be at least 4 characters and split_over "
                             f"({self.split_over}) at least part_chars")

    def as_dict(self) -> dict:
        """JSON-ready settings (an index's or a selector's manifest records them)."""
        return json.loads(json.dumps(asdict(self), ensure_ascii=False))

    @classmethod
    def from_dict(cls, entry: dict) -> PieceConfig:
        fields = dict(entry)
        # settings saved before top_k_values existed capped values as tails, so they still do
        fields.setdefault("top_k_values", fields.get("top_k_tails", 2))
        lin = fields.pop("linearize", None)
        for key in ("relations", "families"):
            if key in fields:
                fields[key] = tuple(fields[key])
        if lin and "relation_order" in lin:
            lin = {**lin, "relation_order": tuple(lin["relation_order"])}
        return cls(**fields, linearize=LinearizeConfig(**lin) if lin else LinearizeConfig())


def split_value(value: str, max_chars: int) -> list[str]:
    """A long value -> parts of at most ``max_chars`` characters, cut after sentence ends
    first, then after clause marks (packed greedily), a run without any mark cut hard.
    Joined back, the parts are ``value`` (stripped parts that are empty are dropped)."""
    if len(value) <= max_chars:
        return [value] if value.strip() else []
    parts: list[str] = []
    for sentence in _SENTENCE_END.split(value):
        if len(sentence) <= max_chars:
            parts.append(sentence)
            continue
        current = ""
        for clause in _CLAUSE_END.split(sentence):
            while len(clause) > max_chars:  # no mark inside: cut hard
                if current:
                    parts.append(current)
                    current = ""
                parts.append(clause[:max_chars])
                clause = clause[max_chars:]
            if len(current) + len(clause) > max_chars:
                parts.append(current)
                current = clause
            else:
                current += clause
        if current:
            parts.append(current)
    return [p for p in parts if p.strip()]


class PieceCatalog:
    """Head id -> its pieces, built once per head from the KG (heads recur across contexts)."""

    def __init__(self, graph: C3KG, config: PieceConfig | None = None) -> None:
        self.graph, self.config = graph, config or PieceConfig()
        self._pieces: dict[str, list[Piece]] = {}

    def __call__(self, head_id: str) -> list[Piece]:
        pieces = self._pieces.get(head_id)
        if pieces is None:
            pieces = self._pieces[head_id] = head_pieces(self.graph, head_id, self.config)
        return pieces


def head_pieces(graph: C3KG, head_id: str, config: PieceConfig | None = None) -> list[Piece]:
    """The pieces of one head: itself, then relation tails, attribute values (or their parts)
    and flow edges, each in the KG's rank order; repeated texts once."""
    cfg = config or PieceConfig()
    lin = cfg.linearize
    names = lin.relation_names
    flows = graph.flows(head_id, families=cfg.families, fanout=cfg.fanout,
                        relations=cfg.relations, top_k_tails=cfg.top_k_tails)
    head = _clean(lin.head_template.format(head=graph.text(head_id)))
    out = [Piece(head_id, head, "head", "", head, head)]
    seen = {head}

    def add(piece: Piece) -> None:
        if piece.text and piece.text not in seen:
            seen.add(piece.text)
            out.append(piece)

    order = {r: i for i, r in enumerate(lin.relation_order)}
    for rel in sorted(flows.relations, key=lambda r: order.get(r, len(order))):
        for tail in flows.relations[rel]:
            text = _clean(lin.relation_template.format(relation=names.get(rel, rel), relation_type=rel, tails=tail.text))
            add(Piece(head_id, head, "relation", rel, _clean(tail.text), text))
    attributes = flows.attributes if cfg.top_k_values == cfg.top_k_tails else graph.attributes(head_id, cfg.top_k_values)
    for attribute, values in attributes.items():
        for value in values:
            if len(value.text) <= cfg.split_over:
                text = _clean(lin.attribute_template.format(attribute=attribute, values=value.text))
                add(Piece(head_id, head, "attribute", attribute, _clean(value.text), text))
            else:
                for i, part in enumerate(split_value(value.text, cfg.part_chars)):
                    add(Piece(head_id, head, "attribute", attribute, _clean(part), _clean(part).strip(),
                              value=_clean(value.text), part=i))
    for family in [f for f in FLOW_FAMILIES if f in flows.flows]:
        for edge in flows.flows[family]:
            text = _clean(lin.flow_template.format(relation=names.get(edge.type, edge.type), relation_type=edge.type,
                                                   source=edge.source, target=edge.target))
            add(Piece(head_id, head, "flow", edge.type, _clean(graph.text(edge.target) if edge.target in graph
                                                                 else edge.target), text))
    return out


def write_segment(pieces: Iterable[Piece], tail_sep: str = LinearizeConfig.tail_sep) -> str:
    """Chosen pieces -> a segment: heads in order of their first piece, each head's pieces in
    the given order after it (a head piece adds only its head). Whole values of one attribute
    (or tails of one relation) of a head share its name, as ``kg.linearize`` writes them:
    ``周边景点：红砖美术馆、木木美术馆``, not the name again for each (5 tokens each of 69)."""
    groups: dict[str, list[str]] = {}
    heads: dict[str, str] = {}
    named: dict[tuple[str, str, str, str], int] = {}  # (head, kind, label, name) -> its entry
    for p in pieces:
        texts = groups.setdefault(p.head_id, [])
        heads.setdefault(p.head_id, p.head)
        if p.kind == "head" or p.text in texts:
            continue
        name = p.text[: len(p.text) - len(p.content)] if p.part < 0 and p.text.endswith(p.content) else ""
        key = (p.head_id, p.kind, p.label, name)
        if name and key in named:
            entry = texts[named[key]]
            if p.content not in entry[len(name):].split(tail_sep):
                texts[named[key]] = entry + tail_sep + p.content
            continue
        if name:
            named[key] = len(texts)
        texts.append(p.text)
    return HEAD_SEP.join(PIECE_SEP.join([heads[h], *texts]) for h, texts in groups.items())


def fill_segment(ranked: Sequence[Piece], budget: KnowledgeBudget | None,
                 max_pieces: int | None = None) -> list[Piece]:
    """Whole pieces, best first, while the segment fits ``budget``: a piece that does not fit
    (with its head, when the head is not in yet) is skipped and smaller ones still tried.
    Returns the pieces kept, in ``ranked`` order; ``write_segment`` of them fits the budget."""
    kept: list[Piece] = []
    for piece in ranked:
        if max_pieces is not None and len(kept) >= max_pieces:
            break
        trial = [*kept, piece]
        if budget is None or budget.count_tokens(write_segment(trial)) <= budget.max_tokens:
            kept = trial
    return kept
