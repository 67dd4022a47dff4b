"""Knowledge linearisation: (head, relations, flows) -> the knowledge-segment text.

The text is built from *pieces* in a fixed order and cut at piece boundaries when the
budget is reached, so the same inputs always give the same text:

for each head, in the given order (retrieval rank):
  1. the head itself                     ``head_template``      e.g. ``有人买披萨``
  2. each relation of ``relations``      ``relation_template``  e.g. ``目的是填饱肚子、解馋``
     (in that order; tails best first, at most ``max_tails`` of them)
  3. each flow family of ``families``    ``flow_template``      e.g. ``接话有人流口水了``
     (edges best first, at most ``max_flows`` per family)
Pieces of one head are joined by ``piece_sep``, heads by ``head_sep``.

Templates are ``str.format`` strings with the fields ``{head}``, ``{relation}`` (its name
from ``relation_names``), ``{relation_type}`` (the raw label), ``{tails}`` (joined by
``tail_sep``), ``{source}`` and ``{target}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kg.graph import HeadFlows
from kg.schema import FLOW_FAMILIES, PHYSICAL_RELATIONS, RELATION_NAMES_ZH
from tiktalk.errors import UsageError

# The 12 C3KG event-head relations (intent and need first: they read most like chat), then
# the physical-entity relations of phrase heads.
DEFAULT_RELATIONS: tuple[str, ...] = (
    "xIntent", "xNeed", "xReact", "xWant", "xEffect", "xAttr", "oReact", "oWant", "oEffect",
    "isBefore", "isAfter", "HasSubEvent",
) + PHYSICAL_RELATIONS


@dataclass
class LinearizeConfig:
    relations: Sequence[str] = DEFAULT_RELATIONS
    families: Sequence[str] = tuple(FLOW_FAMILIES)
    max_tails: int = 2
    max_flows: int = 2
    head_template: str = "{head}"
    relation_template: str = "{relation}{tails}"
    flow_template: str = "{relation}{target}"
    tail_sep: str = "、"
    piece_sep: str = "，"
    head_sep: str = "；"
    relation_names: dict[str, str] = field(default_factory=lambda: dict(RELATION_NAMES_ZH))
    max_chars: int | None = 256
    max_tokens: int | None = None  # needs ``count_tokens`` in :func:`linearize`

    def __post_init__(self) -> None:
        for name in ("max_tails", "max_flows"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} ({getattr(self, name)}) must be >= 0")
        for name in ("max_chars", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} ({value}) must be >= 1 or None")
        unknown = [f for f in self.families if f not in FLOW_FAMILIES]
        if unknown:
            raise UsageError(f"families {unknown} are not flow families {list(FLOW_FAMILIES)}")


@dataclass(frozen=True)
class KnowledgeText:
    text: str
    pieces: int  # pieces kept
    heads_used: int  # heads with at least their head piece kept
    truncated: bool  # True when the budget cut pieces off


def head_pieces(item: HeadFlows, config: LinearizeConfig) -> list[str]:
    """The ordered pieces of one head (see module docstring)."""
    name = config.relation_names
    pieces = [config.head_template.format(head=item.head)]
    for rel in config.relations:
        tails = item.relations.get(rel)
        if tails and config.max_tails:
            pieces.append(
                config.relation_template.format(
                    relation=name.get(rel, rel), relation_type=rel,
                    tails=config.tail_sep.join(t.text for t in tails[: config.max_tails]),
                )
            )
    for family in config.families:
        for edge in item.flows.get(family, [])[: config.max_flows]:
            pieces.append(
                config.flow_template.format(
                    relation=name.get(edge.type, edge.type), relation_type=edge.type,
                    source=edge.source, target=edge.target,
                )
            )
    return pieces


def linearize(
    items: Sequence[HeadFlows],
    config: LinearizeConfig | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> KnowledgeText:
    """Linearise ranked heads into one knowledge segment within the budget."""
    config = config or LinearizeConfig()
    if config.max_tokens is not None and count_tokens is None:
        raise UsageError("max_tokens is set but no count_tokens function was given")

    def fits(text: str) -> bool:
        if config.max_chars is not None and len(text) > config.max_chars:
            return False
        return config.max_tokens is None or count_tokens(text) <= config.max_tokens

    text, kept, heads_used, truncated = "", 0, 0, False
    for item in items:
        for j, piece in enumerate(head_pieces(item, config)):
            sep = config.piece_sep if j else (config.head_sep if text else "")
            candidate = text + sep + piece
            if not fits(candidate):
                truncated = True
                break
            text = candidate
            kept += 1
            if j == 0:
                heads_used += 1
        if truncated:
            break
    return KnowledgeText(text=text, pieces=kept, heads_used=heads_used, truncated=truncated)
