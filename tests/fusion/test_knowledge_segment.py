"""The knowledge Maria reads is exactly the segment kg.linearize produced for its budget."""

from __future__ import annotations

import pytest

import kg
from fusion.configuration_maria import KNOWLEDGE
from fusion.modeling_maria import MariaForDialogue
from kg.linearize import split_pieces
from tiktalk.models.modalities import parse_modalities
from tiktalk.types import DialogueExample, KnowledgeBudget

HEADS = ("有人买披萨", "有人带狗去公园", "火锅", "有人养仓鼠", "有人吃榴莲")


@pytest.fixture(scope="module")
def model() -> MariaForDialogue:
    return MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+K"))


@pytest.fixture(scope="module")
def items() -> list[kg.HeadFlows]:
    graph = kg.load_kg("sample")
    return [graph.flows(h, fanout=2, top_k_tails=2) for h in HEADS if h in graph]


def knowledge_seen(model: MariaForDialogue, knowledge: str) -> tuple[list[int], str]:
    """(knowledge token ids, their decoded text) of the batch the collator builds."""
    batch = model.collate([DialogueExample("x", ["这披萨看着好香"], knowledge=knowledge)], train=False)
    ids = batch["input_ids"][0][batch["segment_ids"][0, : batch["input_ids"].shape[1]] == KNOWLEDGE].tolist()
    assert ids[-1] == model.special_ids.sep
    return ids[:-1], model.text_encoder.decode(ids[:-1])


def test_the_collator_sees_exactly_the_linearised_segment(model, items):
    budget = model.knowledge_budget()
    assert budget.max_tokens == model.config.knowledge_tokens == 69
    full = kg.linearize(items).text
    assert len(full) > 2 * budget.max_tokens  # a segment much longer than the budget
    cut = kg.linearize(items, budget=budget)
    assert cut.truncated and 0 < budget.count_tokens(cut.text) <= budget.max_tokens
    ids, text = knowledge_seen(model, cut.text)
    assert text == cut.text and ids == model.text_encoder.encode(cut.text)
    # cut at a piece boundary: the text is whole leading pieces of the full segment
    pieces = split_pieces(full)
    assert cut.text == "".join(pieces[: cut.pieces])
    assert budget.count_tokens("".join(pieces[: cut.pieces + 1])) > budget.max_tokens


@pytest.mark.parametrize("other", [None, 120, 40])
def test_a_segment_made_under_another_budget_loses_whole_pieces_only(model, items, other):
    budget = model.knowledge_budget()
    made = kg.linearize(items, budget=None if other is None else KnowledgeBudget(other)).text
    _, text = knowledge_seen(model, made)
    if len(made) <= budget.max_tokens:
        assert text == made  # it fits: taken as it is
    else:
        assert text == kg.linearize(items, budget=budget).text  # same as linearising for this budget
    assert made.startswith(text) and (made == text or made[len(text)] in (kg.PIECE_SEP, kg.HEAD_SEP))
