"""Pieces: splitting long values, a head's pieces from the KG, the segment written from chosen
pieces and the greedy fill against a literal replay."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest

import kg
from kg.linearize import DEFAULT_RELATIONS, HEAD_SEP, PIECE_SEP, clean_piece
from kg.schema import FLOW_FAMILIES
from retrieval.pieces import (
    Piece,
    PieceCatalog,
    PieceConfig,
    fill_segment,
    head_pieces,
    split_value,
    write_segment,
)
from tests.kdconv_mini import mini_kb
from tiktalk.errors import UsageError
from tiktalk.types import KnowledgeBudget

SENTENCE_MARKS = "。！？!?；;\n"
CLAUSE_MARKS = "，,、；;"


# ------------------------------------------------------------------ split_value


def first_clause(text: str) -> str:
    """``text`` up to and including its first mark (sentence or clause), else all of it."""
    for i, ch in enumerate(text):
        if ch in SENTENCE_MARKS or ch in CLAUSE_MARKS:
            return text[: i + 1]
    return text


def test_split_value_examples():
    assert split_value("门票60元", 40) == ["门票60元"]  # short: itself
    assert split_value("   ", 40) == []  # blank: nothing
    # sentences first: each sentence that fits is a part of its own, even when two would fit together
    assert split_value("甲乙丙。丁戊己！庚辛", 5) == ["甲乙丙。", "丁戊己！", "庚辛"]
    # a sentence too long: its clauses packed greedily up to the limit
    assert split_value("一二，三四，五六七八，九。", 6) == ["一二，三四，", "五六七八，", "九。"]
    # no mark at all: cut hard every max_chars characters
    assert split_value("字" * 10, 4) == ["字" * 4, "字" * 4, "字" * 2]
    # a mark-less run inside a sentence is cut hard, the clause before it kept whole
    assert split_value("短，" + "长" * 9 + "，尾", 4) == ["短，", "长" * 4, "长" * 4, "长，尾"]


def test_split_value_properties_on_random_values():
    rng = np.random.default_rng(0)
    alphabet = list("甲乙丙丁戊己庚辛壬癸ab12") * 3 + list(SENTENCE_MARKS + CLAUSE_MARKS) + [" "]
    for case in range(600):
        value = "".join(rng.choice(alphabet, size=int(rng.integers(0, 120))))
        max_chars = int(rng.integers(4, 30))
        parts = split_value(value, max_chars)
        where = f"case {case}: {value!r} at {max_chars}"
        assert all(0 < len(p) <= max_chars and p.strip() for p in parts), where
        # joined back: the value, less the blank parts that were dropped (compare without whitespace)
        assert "".join("".join(parts).split()) == "".join(value.split()), where
        if not any(ch.isspace() for ch in value):
            assert "".join(parts) == value, where
        if len(value) <= max_chars:
            assert parts == ([value] if value.strip() else []), where
            continue
        for p in parts:  # sentence ends first: a part never holds a sentence end before its last character
            assert not any(ch in SENTENCE_MARKS for ch in p[:-1]), (where, p)
        for a, b in pairwise(parts):
            # a part ends at a mark, or is a hard cut of a run without marks (exactly max_chars long)
            assert a[-1] in SENTENCE_MARKS + CLAUSE_MARKS or len(a) == max_chars, (where, a)
            # packed greedily: a part ending at a clause mark could not take the next clause too
            if a[-1] in CLAUSE_MARKS and a[-1] not in SENTENCE_MARKS:
                assert len(a) + len(first_clause(b)) > max_chars, (where, a, b)


def test_piece_config_round_trip_and_refusal():
    config = PieceConfig(top_k_tails=3, families=("event",), split_over=25, part_chars=20)
    entry = json.loads(json.dumps(config.as_dict()))
    back = PieceConfig.from_dict(entry)
    assert back.as_dict() == entry and back.families == ("event",) and back.split_over == 25 and back.part_chars == 20
    assert head_pieces(kg.load_kg("sample"), "KTV", back) == head_pieces(kg.load_kg("sample"), "KTV", config)
    with pytest.raises(UsageError, match=r"part_chars \(3\) must be at least 4"):
        PieceConfig(part_chars=3)
    with pytest.raises(UsageError, match=r"split_over \(30\) at least part_chars"):
        PieceConfig(split_over=30, part_chars=40)


# ------------------------------------------------------------------ head_pieces


@pytest.fixture(scope="module")
def kb_graph(tmp_path_factory) -> kg.C3KG:
    """The mini KdConv KB, read as `tiktalk kg convert kb_travel.json` reads it."""
    path = tmp_path_factory.mktemp("kb") / "kb_travel.json"
    path.write_text(json.dumps(mini_kb(), ensure_ascii=False), encoding="utf-8")
    return kg.load_kg(path)


def sample_heads(graph: kg.C3KG) -> list[str]:
    kinds = ("event-head", "phrase-head", "emotion", "entity")
    return graph.nodes.filter(graph.nodes["kind"].is_in(kinds))["id"].to_list()


def test_head_pieces_of_the_sample_kg(sample_kg):
    config = PieceConfig()
    names = config.linearize.relation_names
    heads = sample_heads(sample_kg)
    assert len(heads) > 100
    kinds_seen = set()
    for head in heads:
        pieces = head_pieces(sample_kg, head, config)
        text = clean_piece(sample_kg.text(head))
        assert pieces[0] == Piece(head, text, "head", "", text, text)  # the head itself first
        assert all(p.head_id == head and p.head == text for p in pieces)
        assert [p.kind for p in pieces[1:]].count("head") == 0
        texts = [p.text for p in pieces]
        assert len(texts) == len(set(texts)), head  # no repeated texts
        assert all(p.passage == (text if p.kind == "head" else f"{text}，{p.text}") for p in pieces)
        kinds_seen |= {p.kind for p in pieces}
        # relation pieces: the KG's top-2 tails of each relation, relations in the linearisation's order
        tails = sample_kg.tails(head, DEFAULT_RELATIONS, top_k=2)
        expected = [(rel, clean_piece(t.text), clean_piece(f"{names.get(rel, rel)}{t.text}"))
                    for rel in sorted(tails, key=DEFAULT_RELATIONS.index) for t in tails[rel]]
        expected = [e for i, e in enumerate(expected) if e[2] not in {x[2] for x in expected[:i]} and e[2] != text]
        assert [(p.label, p.content, p.text) for p in pieces if p.kind == "relation"] == expected, head
        # flow pieces: each family's edges (fanout 2) in family order
        flows = sample_kg.flows(head, families=FLOW_FAMILIES, fanout=2, relations=DEFAULT_RELATIONS, top_k_tails=2)
        edges = [(e.type, clean_piece(f"{names.get(e.type, e.type)}{e.target}"))
                 for f in FLOW_FAMILIES for e in flows.flows.get(f, [])]
        seen = {p.text for p in pieces if p.kind != "flow"}
        unique = []
        for edge in edges:
            if edge[1] not in seen:
                seen.add(edge[1])
                unique.append(edge)
        assert [(p.label, p.text) for p in pieces if p.kind == "flow"] == unique, head
    assert kinds_seen == {"head", "relation", "flow"}


def test_head_pieces_of_a_kdconv_kb(kb_graph):
    kb = mini_kb()
    config = PieceConfig(split_over=40, part_chars=40)
    for place, triples in kb.items():
        pieces = head_pieces(kb_graph, place, config)
        assert pieces[0].kind == "head" and pieces[0].text == place
        texts = [p.text for p in pieces]
        assert len(texts) == len(set(texts))
        short = {(a, v) for _, a, v in triples if len(v) <= 40}
        assert {(p.label, p.content) for p in pieces if p.kind == "attribute" and p.part < 0} == short
        assert all(p.text == f"{p.label}：{p.content}" for p in pieces if p.kind == "attribute" and p.part < 0)
        # the long Information value: one piece per part, each naming the whole value and its part
        info = next(v for _, a, v in triples if a == "Information")
        assert len(info) > 40
        parts = [p for p in pieces if p.part >= 0]
        raw = split_value(info, 40)
        assert len(raw) > 1 and parts and parts[0].part == 0
        assert all(p.label == "Information" and p.value == clean_piece(info) for p in parts)
        assert all(p.content == clean_piece(raw[p.part]) and p.text == p.content.strip() for p in parts)
        assert [p.part for p in parts] == sorted(p.part for p in parts)
        # every distinct part text is there once (repeats of a part are dropped as repeated texts)
        assert {p.text for p in parts} == {clean_piece(r).strip() for r in raw}
        assert not any(p.kind in ("relation", "flow") for p in pieces)


def test_a_value_up_to_split_over_stays_whole_and_a_longer_one_splits_into_part_chars(kb_graph):
    kb = mini_kb()
    place, triples = next(iter(kb.items()))
    info = next(v for _, a, v in triples if a == "Information")
    shortest_split = min(len(p) for p in split_value(info, 20))
    # split_over at the value's length: one whole piece; one below it: parts of at most part_chars
    whole = head_pieces(kb_graph, place, PieceConfig(split_over=len(info), part_chars=20))
    assert [p.content for p in whole if p.label == "Information"] == [clean_piece(info)]
    assert all(p.part < 0 for p in whole)
    split = head_pieces(kb_graph, place, PieceConfig(split_over=len(info) - 1, part_chars=20))
    parts = [p for p in split if p.label == "Information"]
    assert len(parts) > 1 and all(p.part >= 0 and len(p.content) <= 20 for p in parts) and shortest_split <= 20


def test_every_value_of_an_attribute_is_a_piece_unless_top_k_values_caps_them(tmp_path):
    """An entity's five nearby sights are five pieces (the flows query's top_k_tails=2 used to
    drop three of them); ``top_k_values`` caps them in the KG's rank order; settings saved before
    the field existed read back with values capped as tails."""
    sights = ["红砖美术馆", "木木美术馆", "三度半艺术空间", "白盒子艺术馆", "中国铁道博物馆东郊馆"]
    kb = {"观复博物馆": [["观复博物馆", "周边景点", s] for s in sights] + [["观复博物馆", "门票", "100元"]]}
    path = tmp_path / "kb_travel.json"
    path.write_text(json.dumps(kb, ensure_ascii=False), encoding="utf-8")
    graph = kg.load_kg(path)
    ranked = [t.text for t in graph.attributes("观复博物馆")["周边景点"]]
    assert sorted(ranked) == sorted(sights)

    def nearby(config):
        return [p.content for p in head_pieces(graph, "观复博物馆", config) if p.label == "周边景点"]

    assert nearby(PieceConfig()) == ranked
    assert nearby(PieceConfig(top_k_values=2)) == ranked[:2]
    assert nearby(PieceConfig(top_k_tails=1, top_k_values=3)) == ranked[:3]  # tails cap ATOMIC relations only
    legacy = {k: v for k, v in PieceConfig().as_dict().items() if k != "top_k_values"}
    assert PieceConfig.from_dict(legacy).top_k_values == 2
    assert PieceConfig.from_dict(PieceConfig().as_dict()) == PieceConfig()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UsageError, match=rf"top_k_values \({bad!r}\) must be a whole number"):
            PieceConfig(top_k_values=bad)


def test_catalog_builds_each_head_once(sample_kg, monkeypatch):
    import retrieval.pieces as pieces_module

    calls = []
    real = pieces_module.head_pieces
    monkeypatch.setattr(pieces_module, "head_pieces", lambda g, h, c=None: calls.append(h) or real(g, h, c))
    catalog = PieceCatalog(sample_kg)
    head = sample_heads(sample_kg)[0]
    first = catalog(head)
    assert catalog(head) is first and calls == [head]
    assert first == real(sample_kg, head, PieceConfig())


# ------------------------------------------------------------------ write_segment / fill_segment


def piece(head: str, text: str, kind: str = "relation") -> Piece:
    return Piece(head, head, kind, "" if kind == "head" else "r", text, text)


def test_write_segment_format():
    a1, a2, b1 = piece("甲", "甲一"), piece("甲", "甲二"), piece("乙", "乙一")
    # heads in order of their first piece, each head's pieces in the given order after it
    assert write_segment([a1, b1, a2]) == f"甲{PIECE_SEP}甲一{PIECE_SEP}甲二{HEAD_SEP}乙{PIECE_SEP}乙一"
    assert write_segment([b1, a2, a1]) == "乙，乙一；甲，甲二，甲一"
    # a head piece adds its head only; a repeated text is written once
    assert write_segment([piece("丙", "丙", "head"), a1, a1]) == "丙；甲，甲一"
    assert write_segment([a1, piece("甲", "甲", "head")]) == "甲，甲一"
    assert write_segment([]) == ""


def test_write_segment_names_an_attribute_once_for_its_values():
    def value(head, label, content, part=-1):
        text = content if part >= 0 else f"{label}：{content}"
        return Piece(head, head, "attribute", label, content, text, value=content, part=part)

    near_a, near_b, ticket = value("甲", "周边景点", "红砖美术馆"), value("甲", "周边景点", "木木美术馆"), value("甲", "门票", "60元")
    # as kg.linearize writes the values of one attribute: its name once, values joined by tail_sep
    assert write_segment([near_a, ticket, near_b]) == "甲，周边景点：红砖美术馆、木木美术馆，门票：60元"
    assert write_segment([near_a, ticket, near_b], tail_sep="/") == "甲，周边景点：红砖美术馆/木木美术馆，门票：60元"
    # other heads, description parts and pieces whose text does not end in their content stay apart
    other = value("乙", "周边景点", "木木美术馆")
    parts = [value("甲", "Information", "第一句。", 0), value("甲", "Information", "第二句。", 1)]
    assert write_segment([near_a, other, *parts]) == "甲，周边景点：红砖美术馆，第一句。，第二句。；乙，周边景点：木木美术馆"
    odd = Piece("甲", "甲", "attribute", "周边景点", "木木美术馆", "木木美术馆在周边")
    assert write_segment([near_a, odd]) == "甲，周边景点：红砖美术馆，木木美术馆在周边"
    # the same relation's tails share the relation's phrase too
    goal = [Piece("丙", "丙", "relation", "xIntent", t, f"目的是{t}") for t in ("填饱肚子", "解馋")]
    assert write_segment(goal) == "丙，目的是填饱肚子、解馋"


def ranked_pieces(graph: kg.C3KG, rng: np.random.Generator, n_heads: int) -> list[Piece]:
    heads = sample_heads(graph)
    chosen = [heads[int(i)] for i in rng.choice(len(heads), n_heads, replace=False)]
    pieces = [p for h in chosen for p in head_pieces(graph, h)]
    return [pieces[int(i)] for i in rng.permutation(len(pieces))]


@pytest.mark.parametrize("count", [len, lambda t: len(t.encode("utf-8"))], ids=["chars", "utf8-bytes"])
def test_fill_segment_against_a_literal_replay(sample_kg, count):
    rng = np.random.default_rng(1)
    for case in range(150):
        ranked = ranked_pieces(sample_kg, rng, int(rng.integers(1, 5)))
        budget = KnowledgeBudget(int(rng.integers(1, 90)), count_tokens=count)
        max_pieces = None if case % 3 else int(rng.integers(1, 6))
        kept = fill_segment(ranked, budget, max_pieces)
        segment = write_segment(kept)
        assert count(segment) <= budget.max_tokens  # fits
        assert kg.fit_knowledge(segment, budget) == segment  # and a model keeps it whole
        # kept pieces come in ranked order
        positions = [ranked.index(p) for p in kept]
        assert positions == sorted(positions)
        if max_pieces is not None:
            assert len(kept) <= max_pieces
        # literal replay: every piece skipped before the cap did not fit beside the pieces kept before it
        stop = len(ranked) if max_pieces is None or len(kept) < max_pieces else positions[-1] + 1
        for i, p in enumerate(ranked[:stop]):
            before = [k for k, pos in zip(kept, positions) if pos < i]
            fits = count(write_segment([*before, p])) <= budget.max_tokens
            assert fits == (p in kept[len(before) : len(before) + 1]), (case, i, p)


def test_fill_segment_without_budget_keeps_all_and_skips_a_misfit():
    pieces = [piece("甲", "短"), piece("甲", "很长很长很长的一句"), piece("乙", "小")]
    assert fill_segment(pieces, None) == pieces
    # the long piece does not fit, a later shorter one still does (its head counted with it)
    assert fill_segment(pieces, KnowledgeBudget(7)) == [pieces[0], pieces[2]]  # 甲，短；乙，小
    assert fill_segment(pieces, KnowledgeBudget(5)) == [pieces[0]]
    assert fill_segment(pieces, KnowledgeBudget(1)) == []
    assert fill_segment(pieces, None, max_pieces=2) == pieces[:2]
