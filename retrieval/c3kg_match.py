"""C3KG's own matcher (``SBert_match.py`` of the C3KG release) as a named retrieval configuration.

C3KG links a dialogue to its graph with Sentence-BERT over **event heads only**, taking the
**top-1 head per clause** and expanding the **12 event-head relations** (the social nine and
``isBefore`` / ``isAfter`` / ``HasSubEvent``), with no hub correction. This module states that
as a :class:`~retrieval.retriever.RetrieverConfig` so the Maria+C3KG row can be run the way
C3KG retrieves, beside the paper's head-major default (docs/deviations.md, "The knowledge
segment"). Use it over an index of event heads (``tiktalk index build --kinds event``)::

    from retrieval.c3kg_match import c3kg_match_config
    config = c3kg_match_config()            # RetrieverConfig(...), passed to annotate_with_index

What our retriever cannot say exactly: C3KG splits each utterance into clauses and keeps the
best head of every clause; here each turn is one query (``QueryConfig(mode="per-turn")``),
hits are merged by best score and ``top_k`` heads kept over all turns, so ``top_k`` is the
number of turns read (one head per turn when their best heads differ).
"""

from __future__ import annotations

from typing import Any

import kg
from retrieval.query import QueryConfig
from retrieval.retriever import RetrieverConfig

C3KG_MATCH_NAME = "c3kg-match"
C3KG_MATCH_KINDS: tuple[str, ...] = ("event",)  # the index's head kinds (``index build --kinds``)
C3KG_EVENT_RELATIONS: tuple[str, ...] = tuple(kg.DEFAULT_RELATIONS[:12])  # the 12 event-head relations
C3KG_MATCH_TURNS = 2  # TikTalk contexts average 2.25 turns: the two latest, one head each


def c3kg_match_config(turns: int = C3KG_MATCH_TURNS, **overrides: Any) -> RetrieverConfig:
    """C3KG's matcher as a RetrieverConfig: event flows only, the 12 event relations, one query
    per turn (``turns`` latest), ``top_k = turns`` heads, plain cosine (no hub correction),
    the paper's head-major segment. ``overrides``: other RetrieverConfig fields."""
    fields: dict[str, Any] = {
        "top_k": turns,
        "hub_correction": False,
        "query": QueryConfig(last_turns=turns, mode="per-turn"),
        "families": ("event",),
        "relations": C3KG_EVENT_RELATIONS,
        "selection": "paper",
    }
    return RetrieverConfig(**{**fields, **overrides})
