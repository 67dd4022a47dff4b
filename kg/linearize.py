"""Knowledge linearisation: (head, relations, flows) -> the knowledge-segment text.

The one place a knowledge segment is cut. What it formats was already chosen by the flows
query (:meth:`kg.C3KG.flows`: which relations and families, ``top_k_tails`` tails per
relation, ``fanout`` edges per node); linearisation only orders, formats, deduplicates and
cuts to a :class:`~tiktalk.types.KnowledgeBudget` (the model's tokens, default characters).

The text is a sequence of *pieces*, for each head in the given order (retrieval rank):

1. the head itself                    ``head_template``      e.g. ``有人买披萨``
2. each relation it has, in ``relation_order`` (others after, in schema order)
                                      ``relation_template``  e.g. ``目的是填饱肚子、解馋``
3. each KB attribute of an entity (a KB such as KdConv's), shortest piece first
                                      ``attribute_template`` e.g. ``门票：免费开放。``
4. each flow edge, family by family (event, concept, emotion), best first
                                      ``flow_template``      e.g. ``接话有人流口水了``

A KB entity therefore reads ``故宫，电话：010-85007938，门票：60元；天坛，...``: the triple
(entity, attribute, value) is the head piece plus an ``attribute：value`` piece, so ``，``
keeps separating pieces and ``：`` never does. Attribute names are the KB's own (no
schema order); shortest first lets a budget keep the most facts, and a long description
(KdConv's ``Information``, median 246 characters) comes last, where a budget cuts it first.

A flow piece already in the segment is not repeated: an emotion flow reached from several
heads (through the same xReact emotion) appears once, under the first of them.

Separators: pieces of one head are joined by :data:`PIECE_SEP` (``，``), heads by
:data:`HEAD_SEP` (``；``). A piece never contains either (a separator character in KG text
becomes a space; templates and names may not contain one), so any holder of the text can
find the piece boundaries again: :func:`fit_knowledge` is what a model's collator calls to
drop whole trailing pieces of a segment made under another budget, never part of one.
The cut keeps the longest run of leading pieces that fits: the first piece that does not
fit ends the segment, so :func:`fit_knowledge` of the uncut text equals the cut text.

Templates are ``str.format`` strings with the fields ``{head}``, ``{relation}`` (its name
from ``relation_names``), ``{relation_type}`` (the raw label), ``{tails}`` (joined by
``tail_sep``), ``{source}`` and ``{target}``; ``attribute_template`` has ``{attribute}`` and
``{values}`` (joined by ``tail_sep``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from kg.graph import HeadFlows
from kg.schema import FLOW_FAMILIES, PHYSICAL_RELATIONS, RELATION_NAMES_ZH, type_rank
from tiktalk.errors import UsageError
from tiktalk.types import KnowledgeBudget

PIECE_SEP = "，"  # between the pieces of one head
HEAD_SEP = "；"  # between heads
SEPARATORS = (PIECE_SEP, HEAD_SEP)
_BOUNDARY = re.compile(f"(?=[{''.join(SEPARATORS)}])")  # just before each separator
_SEPARATOR_CHARS = str.maketrans({s: " " for s in SEPARATORS})

# The 12 C3KG event-head relations (intent and need first: they read most like chat), then
# the physical-entity relations of phrase heads. Also the relations the retriever queries.
DEFAULT_RELATIONS: tuple[str, ...] = (
    "xIntent", "xNeed", "xReact", "xWant", "xEffect", "xAttr", "oReact", "oWant", "oEffect",
    "isBefore", "isAfter", "HasSubEvent",
) + PHYSICAL_RELATIONS


@dataclass
class LinearizeConfig:
    """How pieces are written (the budget is an argument of :func:`linearize`, not config)."""

    relation_order: Sequence[str] = DEFAULT_RELATIONS
    head_template: str = "{head}"
    relation_template: str = "{relation}{tails}"
    flow_template: str = "{relation}{target}"
    attribute_template: str = "{attribute}：{values}"
    tail_sep: str = "、"
    relation_names: dict[str, str] = field(default_factory=lambda: dict(RELATION_NAMES_ZH))

    def __post_init__(self) -> None:
        fixed = {"head_template": self.head_template, "relation_template": self.relation_template,
                 "flow_template": self.flow_template, "attribute_template": self.attribute_template,
                 "tail_sep": self.tail_sep}
        fixed.update({f"relation_names[{k!r}]": v for k, v in self.relation_names.items()})
        for name, value in fixed.items():
            if any(s in value for s in SEPARATORS):
                raise UsageError(f"{name} ({value!r}) contains a piece separator {list(SEPARATORS)}; "
                                 "pieces may not, so that a segment can be cut between them")


@dataclass(frozen=True)
class KnowledgeText:
    text: str
    pieces: int  # pieces kept
    heads_used: int  # heads with at least their head piece kept
    truncated: bool  # True when the budget cut pieces off


def clean_piece(text: str) -> str:
    """KG text as a segment writes it: a separator character becomes a space."""
    return text.translate(_SEPARATOR_CHARS)


_clean = clean_piece


def head_pieces(item: HeadFlows, config: LinearizeConfig, seen_flows: set[str] | None = None) -> list[str]:
    """The ordered pieces of one head (see module docstring), without separators.

    ``seen_flows``: flow pieces already written for earlier heads (skipped, then extended).
    """
    name = config.relation_names
    pieces = [_clean(config.head_template.format(head=item.head))]
    order = {r: i for i, r in enumerate(config.relation_order)}
    relations = sorted(item.relations, key=lambda r: (order.get(r, len(order)), type_rank(r)))
    for rel in relations:
        tails = item.relations[rel]
        if tails:
            pieces.append(_clean(config.relation_template.format(
                relation=name.get(rel, rel), relation_type=rel,
                tails=config.tail_sep.join(t.text for t in tails),
            )))
    attribute_pieces = [
        _clean(config.attribute_template.format(attribute=attribute, values=config.tail_sep.join(t.text for t in values)))
        for attribute, values in item.attributes.items() if values
    ]
    pieces += sorted(attribute_pieces, key=lambda piece: (len(piece), piece))
    families = [f for f in FLOW_FAMILIES if f in item.flows] + [f for f in item.flows if f not in FLOW_FAMILIES]
    seen = set() if seen_flows is None else seen_flows
    for family in families:
        for edge in item.flows[family]:
            piece = _clean(config.flow_template.format(
                relation=name.get(edge.type, edge.type), relation_type=edge.type,
                source=edge.source, target=edge.target,
            ))
            if piece not in seen:
                seen.add(piece)
                pieces.append(piece)
    return pieces


def _fitting_prefix(parts: Sequence[str], budget: KnowledgeBudget | None) -> int:
    """How many leading parts (each with its leading separator) fit: the first misfit ends it."""
    if budget is None or budget.count_tokens("".join(parts)) <= budget.max_tokens:
        return len(parts)
    text = ""
    for n, part in enumerate(parts):
        text += part
        if budget.count_tokens(text) > budget.max_tokens:
            return n
    return len(parts)


def linearize(
    items: Sequence[HeadFlows],
    config: LinearizeConfig | None = None,
    budget: KnowledgeBudget | None = None,
) -> KnowledgeText:
    """Linearise ranked heads into one knowledge segment, cut at a piece boundary to ``budget``
    (None: no cut)."""
    config = config or LinearizeConfig()
    parts: list[str] = []
    head_starts: list[int] = []
    seen_flows: set[str] = set()
    for item in items:
        for j, piece in enumerate(head_pieces(item, config, seen_flows)):
            if j == 0:
                head_starts.append(len(parts))
            sep = PIECE_SEP if j else (HEAD_SEP if parts else "")
            parts.append(sep + piece)
    kept = _fitting_prefix(parts, budget)
    return KnowledgeText(text="".join(parts[:kept]), pieces=kept,
                         heads_used=sum(start < kept for start in head_starts), truncated=kept < len(parts))


def split_pieces(text: str) -> list[str]:
    """A segment -> its pieces, each but the first with its leading separator (joined back: ``text``)."""
    return [part for part in _BOUNDARY.split(text) if part]


def fit_knowledge(text: str, budget: KnowledgeBudget) -> str:
    """``text`` if it fits ``budget``, else its longest run of whole leading pieces that does
    (possibly empty): what a model does with a segment linearised under another budget."""
    parts = split_pieces(text)
    return "".join(parts[: _fitting_prefix(parts, budget)])
