"""C3KG's own matcher as a named retrieval configuration (retrieval/c3kg_match.py)."""

from __future__ import annotations

import kg
from kg.schema import PHYSICAL_RELATIONS, RELATION_NAMES_ZH
from retrieval.c3kg_match import C3KG_EVENT_RELATIONS, C3KG_MATCH_KINDS, c3kg_match_config
from retrieval.index import HeadIndex, build_head_index
from retrieval.retriever import Retriever


def test_the_configuration_states_c3kgs_matcher():
    config = c3kg_match_config()
    assert len(C3KG_EVENT_RELATIONS) == 12 and set(C3KG_EVENT_RELATIONS) <= set(kg.DEFAULT_RELATIONS)
    assert not set(C3KG_EVENT_RELATIONS) & set(PHYSICAL_RELATIONS)
    assert (config.families, config.relations, config.hub_correction, config.selection) == (
        ("event",), C3KG_EVENT_RELATIONS, False, "paper")
    assert (config.query.mode, config.query.last_turns, config.top_k) == ("per-turn", 2, 2)
    assert c3kg_match_config(turns=3, min_score=0.1).top_k == 3


def test_over_an_event_index_it_retrieves_event_heads_and_event_relations(tmp_path, sample_kg, hash_encoder):
    out = tmp_path / "events"
    build_head_index(sample_kg, hash_encoder, out, kg_source="sample", progress=False, views="text",
                     kinds=list(C3KG_MATCH_KINDS))
    retriever = Retriever(HeadIndex.load(out), sample_kg, hash_encoder, c3kg_match_config())
    result = retriever.retrieve(["有人买披萨", "今天好冷"])
    assert 1 <= len(result.heads) <= 2
    assert all("event" in str(h.kind) for h in result.heads), [h.kind for h in result.heads]
    assert result.knowledge and len(result.queries) == 2  # one query per turn
    physical = [RELATION_NAMES_ZH[r] for r in PHYSICAL_RELATIONS if r in RELATION_NAMES_ZH]
    assert not any(name in result.knowledge for name in physical)
