"""The typed schema of C3KG: ATOMIC relations, dialogue-flow edge types, their families.

C3KG (Findings of ACL 2022) is ATOMIC-2020 translated into Chinese plus dialogue-flow
edges mined from Chinese conversations. Every edge of the graph has a `type`; this module
says which family each type belongs to. Types outside the schema are kept under the
family ``unknown`` and reported by the converter, never dropped.
"""

from __future__ import annotations

from enum import Enum

FORMAT_VERSION = 1


class NodeKind(str, Enum):
    """What a node of the graph is. Ordered by precedence when a node plays several roles."""

    EVENT_HEAD = "event-head"  # ATOMIC head mentioning a person (head_shortSentence.csv)
    PHRASE_HEAD = "phrase-head"  # any other ATOMIC head (head_phrase.csv)
    EMOTION = "emotion"  # an emotion tail that starts an emotion flow
    ENTITY = "entity"  # a concept-flow node that is not an ATOMIC head
    TAIL = "tail"  # an ATOMIC tail

    def __str__(self) -> str:  # so f-strings and polars columns show the value
        return self.value


# ATOMIC-2020 relations, grouped as in the ATOMIC-2020 paper (Hwang et al., 2021).
SOCIAL_RELATIONS: tuple[str, ...] = (
    "xIntent", "xNeed", "xAttr", "xReact", "xWant", "xEffect",
    "oReact", "oWant", "oEffect",
)
EVENT_RELATIONS: tuple[str, ...] = (
    "isBefore", "isAfter", "HasSubEvent", "Causes", "xReason", "HinderedBy", "isFilledBy",
)
PHYSICAL_RELATIONS: tuple[str, ...] = (
    "ObjectUse", "AtLocation", "MadeUpOf", "HasProperty", "CapableOf", "Desires", "NotDesires",
)
ATOMIC_RELATIONS: tuple[str, ...] = SOCIAL_RELATIONS + EVENT_RELATIONS + PHYSICAL_RELATIONS

INTENT_TYPES: tuple[str, ...] = (
    "intent_ask", "intent_console", "intent_describe",
    "intent_opinion", "intent_advise", "intent_others",
)

# Flow families, in the canonical order used for output (event, concept, emotion).
FLOW_FAMILIES: dict[str, tuple[str, ...]] = {
    "event": ("next_utterance", "next_sentence"),
    "concept": ("next_entity",),
    "emotion": ("emotion_cause", "emotion_intent") + INTENT_TYPES,
}
FLOW_TYPES: tuple[str, ...] = tuple(t for types in FLOW_FAMILIES.values() for t in types)

# The nodes dialogue flows start from, by short name (``tiktalk index build --kinds``), with
# the node kind and the flow family each starts: event heads the event flow, phrase heads and
# entities the concept flow, emotion nodes the emotion flows. Order = precedence in listings.
FLOW_START_KINDS: dict[str, tuple[NodeKind, str]] = {
    "event": (NodeKind.EVENT_HEAD, "event"),
    "phrase": (NodeKind.PHRASE_HEAD, "concept"),
    "entity": (NodeKind.ENTITY, "concept"),
    "emotion": (NodeKind.EMOTION, "emotion"),
}

# Edge families: "atomic" for commonsense relations, the flow families, then "unknown".
ATOMIC_FAMILY = "atomic"
UNKNOWN_FAMILY = "unknown"
# Triples of a knowledge base (KB JSON, e.g. KdConv: entity -attribute-> value). Their types
# are the KB's own attribute names, so the family is set by the source file, not by the type.
ATTRIBUTE_FAMILY = "attribute"

# Relations whose tails feed the emotion flows (C3KG: emotion tail -> cause / intent tail).
EMOTION_SOURCE_RELATIONS: tuple[str, ...] = ("xReact", "oReact")

_FAMILY_OF: dict[str, str] = {r: ATOMIC_FAMILY for r in ATOMIC_RELATIONS}
_FAMILY_OF.update({t: fam for fam, types in FLOW_FAMILIES.items() for t in types})

# Canonical rank of each type, for deterministic ordering of output.
TYPE_ORDER: dict[str, int] = {t: i for i, t in enumerate(ATOMIC_RELATIONS + FLOW_TYPES)}


def family_of(edge_type: str) -> str:
    """Family of an edge type: ``atomic``, ``event``, ``concept``, ``emotion`` or ``unknown``."""
    return _FAMILY_OF.get(edge_type, UNKNOWN_FAMILY)


def is_known_type(edge_type: str) -> bool:
    return edge_type in _FAMILY_OF


def type_rank(edge_type: str) -> tuple[int, str]:
    """Sort key: schema order first, unknown types after, alphabetically."""
    return (TYPE_ORDER.get(edge_type, len(TYPE_ORDER)), edge_type)


# Chinese readings of the relations, used by the default knowledge linearisation.
# Our own wording (C3KG does not publish one); override with LinearizeConfig.relation_names.
RELATION_NAMES_ZH: dict[str, str] = {
    "xIntent": "目的是", "xNeed": "之前需要", "xAttr": "这个人", "xReact": "感到",
    "xWant": "接着想", "xEffect": "结果", "oReact": "别人感到", "oWant": "别人想",
    "oEffect": "别人会", "isBefore": "之后", "isAfter": "之前", "HasSubEvent": "包括",
    "Causes": "导致", "xReason": "因为", "HinderedBy": "受阻于", "isFilledBy": "可填",
    "ObjectUse": "用来", "AtLocation": "位于", "MadeUpOf": "由", "HasProperty": "特点是",
    "CapableOf": "能够", "Desires": "想要", "NotDesires": "不想要",
    "next_utterance": "接话", "next_sentence": "接着", "next_entity": "聊到",
    "emotion_cause": "起因", "emotion_intent": "于是",
    "intent_ask": "问", "intent_console": "安慰", "intent_describe": "描述",
    "intent_opinion": "认为", "intent_advise": "建议", "intent_others": "回应",
}

# Edge weights are counts stored as int64.
MAX_WEIGHT = 2**63 - 1
