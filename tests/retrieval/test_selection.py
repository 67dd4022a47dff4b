"""Piece selection: named heads vs a brute-force scan, candidates with precomputed vs lazy piece
vectors, the batch hub background vs literal numpy, the dense score vs its formula, the segment
and abstention, and the paper's head-major path left as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kg
from retrieval.hubness import hub_penalty
from retrieval.index import build_head_index
from retrieval.pieces import PieceConfig, fill_segment, write_segment
from retrieval.retriever import Retriever, RetrieverConfig
from retrieval.search import exact_topk
from retrieval.selection import (
    DEFAULT_SELECTION,
    MIN_BACKGROUND,
    SELECTIONS,
    DenseScorer,
    NameMatcher,
    SelectionConfig,
)
from tests.retrieval.conftest import CountingEncoder, assert_same_knn
from tests.retrieval.test_hubness import literal_csls_topk, literal_penalty
from tiktalk.dataset import load_dataset
from tiktalk.errors import UsageError
from tiktalk.types import KnowledgeBudget


@pytest.fixture(scope="module")
def contexts() -> list[list[str]]:
    """The sample dataset's contexts (161, more than MIN_BACKGROUND) and a few that name heads."""
    sample = [list(c) for c in load_dataset("sample").dialogues["context"].to_list()]
    assert len(sample) >= MIN_BACKGROUND
    return [["我想吃披萨", "好啊"], ["今天去了故宫", "门票多少钱？"], *sample]


@pytest.fixture(scope="module")
def indexes(sample_kg):
    """The sample KG indexed with its pieces encoded, and without."""
    encoder = CountingEncoder(dim=32)
    with_pieces = build_head_index(sample_kg, encoder, None, progress=False, views="text", pieces=PieceConfig())
    without = build_head_index(sample_kg, encoder, None, progress=False, views="text")
    assert with_pieces.piece_passages and without.piece_passages is None
    return with_pieces, without


def dense(index, graph, config: SelectionConfig | None = None, budget=None) -> Retriever:
    encoder = CountingEncoder(dim=32)
    return Retriever(index, graph, encoder, RetrieverConfig(selection="dense", piece_selection=config or SelectionConfig()),
                     budget=budget)


def build(retriever: Retriever, contexts):
    queries = retriever.queries(contexts)
    return retriever.candidates.build(contexts, queries, retriever.encode(queries))


# ------------------------------------------------------------------ configuration


def test_registry_default_and_config_checks():
    assert DEFAULT_SELECTION == "dense" and RetrieverConfig().selection == DEFAULT_SELECTION
    assert {"paper", "dense", "learned"} <= set(SELECTIONS.names())
    with pytest.raises(UsageError, match=r"selection 'bogus' is not one of"):
        RetrieverConfig(selection="bogus")
    with pytest.raises(UsageError, match="selection 'learned' needs a selector"):
        RetrieverConfig(selection="learned")
    with pytest.raises(UsageError, match="selection 'learned' needs a selector"):
        RetrieverConfig(selection="dense", selector="somewhere")
    with pytest.raises(UsageError, match=r"candidate_heads \(0\) and named_heads \(0\)"):
        SelectionConfig(candidate_heads=0, named_heads=0)
    with pytest.raises(UsageError, match=r"hub_k \(0\)"):
        SelectionConfig(hub_k=0)
    config = SelectionConfig(candidate_heads=2, named_heads=1, abstain_below=0.3,
                             pieces=PieceConfig(split_over=20, part_chars=20))
    back = SelectionConfig.from_dict(config.as_dict())
    assert back.as_dict() == config.as_dict() and back.pieces.split_over == 20


# ------------------------------------------------------------------ named heads


def brute_force_named(texts: list[str], turns: list[str], min_chars: int = 2) -> dict[int, int]:
    """Every head text tested against every turn, newest turn first; a text's first row counts."""
    first: dict[str, int] = {}
    for row, text in enumerate(texts):
        if len(text) >= min_chars and text not in first:
            first[text] = row
    found: dict[int, int] = {}
    for ago, turn in enumerate(reversed(turns)):
        for text, row in first.items():
            if text in turn and row not in found:
                found[row] = ago
    return found


def test_name_matcher_against_a_brute_force_scan(indexes):
    texts = indexes[0].heads["text"].to_list() + ["披萨", "x"]  # a repeated text and a too-short one
    matcher = NameMatcher(texts)
    rng = np.random.default_rng(0)
    filler = list("的了我你他是在有人看吃去好啊吗呢，。！")
    named_any = 0
    for case in range(300):
        turns = []
        for _ in range(int(rng.integers(0, 5))):
            bits = []
            for _ in range(int(rng.integers(0, 5))):
                if rng.random() < 0.5:  # a head text, whole or cut
                    t = texts[int(rng.integers(len(texts)))]
                    start = int(rng.integers(0, 2)) if len(t) > 2 else 0
                    bits.append(t[start:])
                else:
                    bits.append("".join(rng.choice(filler, size=int(rng.integers(1, 6)))))
            turns.append("".join(bits))
        got = matcher.find(turns)
        assert got == brute_force_named(texts, turns), (case, turns)
        named_any += bool(got)
    assert named_any > 100  # the contexts really name heads
    assert matcher.find([]) == {} and NameMatcher([]).find(["披萨"]) == {}


# ------------------------------------------------------------------ candidates


def test_precomputed_piece_vectors_equal_lazy_encoding(indexes, sample_kg, contexts):
    with_pieces, without = indexes
    pre, lazy = dense(with_pieces, sample_kg), dense(without, sample_kg)
    assert len(pre.candidates.vectors) == len(with_pieces.piece_passages) and len(lazy.candidates.vectors) == 0
    before = pre.encoder.encoded
    a, b = build(pre, contexts[:40]), build(lazy, contexts[:40])
    assert pre.encoder.encoded - before == 40  # the queries only: no piece encoded per context
    assert lazy.encoder.encoded > 40
    for x, y in zip(a, b):
        assert x.pieces == y.pieces and x.query == y.query
        np.testing.assert_allclose(x.vectors, y.vectors, atol=1e-6)
        for name in ("head_score", "piece_penalty", "head_rank", "named_ago", "named_order"):
            np.testing.assert_allclose(getattr(x, name), getattr(y, name), atol=1e-6)
    for sa, sb in zip(pre.scorer.score(a), lazy.scorer.score(b)):
        np.testing.assert_allclose(sa, sb, atol=1e-6)
    # a selection with other piece settings than the index's encodes its own (no stale vectors)
    other = dense(with_pieces, sample_kg, SelectionConfig(pieces=PieceConfig(top_k_tails=1)))
    assert len(other.candidates.vectors) == 0


def test_candidates_are_dense_hits_and_named_heads(indexes, sample_kg, contexts):
    index = indexes[0]
    config = SelectionConfig(candidate_heads=4, named_heads=2)
    retriever = dense(index, sample_kg, config)
    texts, ids = index.heads["text"].to_list(), index.heads["id"].to_list()
    emb = np.asarray(index.embeddings, dtype=np.float64)
    for context, c in zip(contexts[:30], build(retriever, contexts[:30])):
        q = retriever.encoder.encode(retriever.queries([context])[0], kind="query").mean(0)
        q = q / np.linalg.norm(q)
        np.testing.assert_allclose(c.query_vector, q, atol=1e-6)
        # the dense hits, by their rank: the exact top 4 (up to the order of float32 ties)
        hits = sorted({ids.index(p.head_id): int(r) for p, r in zip(c.pieces, c.head_rank) if r >= 0}.items(),
                      key=lambda kv: kv[1])
        assert [r for _, r in hits] == list(range(4))
        hit_rows = [row for row, _ in hits]
        ref_scores, ref_ids = exact_topk(q[None].astype(np.float32), index.embeddings, 4)
        assert_same_knn([[emb[row] @ q for row in hit_rows]], [hit_rows], ref_scores, ref_ids)
        named = brute_force_named(texts, [t for t in context if t.strip()])
        recent = sorted(named, key=lambda r: (named[r], -len(texts[r]), r))[:2]
        heads = list(dict.fromkeys(p.head_id for p in c.pieces))
        assert heads == [ids[r] for r in dict.fromkeys([*hit_rows, *recent])]
        for i, p in enumerate(c.pieces):
            row = ids.index(p.head_id)
            assert c.head_rank[i] == (hit_rows.index(row) if row in hit_rows else -1)
            assert c.named_ago[i] == named.get(row, -1)
            assert c.named_order[i] == (recent.index(row) if row in recent else -1)
            assert c.head_score[i] == pytest.approx(emb[row] @ q, abs=1e-5)  # no background: plain cosine
        assert not c.piece_penalty.any()
    pizza = build(retriever, [contexts[0]])[0]
    i = next(i for i, p in enumerate(pizza.pieces) if p.head == "披萨")
    assert pizza.named_ago[i] == 1 and pizza.named_order[i] == 0  # named one turn ago, the latest named
    assert build(retriever, [["   "], []]) == [None, None]  # blank contexts: no query, no candidates


def test_batch_background_penalties_are_the_literal_ones(indexes, sample_kg, contexts):
    index = indexes[0]
    config = SelectionConfig(hub_k=7, hub_weight=0.6, head_weight=0.4, candidate_heads=3)
    retriever = dense(index, sample_kg, config)
    assert retriever.prepare_background(contexts[: MIN_BACKGROUND - 1]) == 0  # too few: none
    assert retriever.candidates.background is None
    used = retriever.prepare_background(contexts)
    background = retriever.candidates.background
    assert used == len(background) >= MIN_BACKGROUND
    assert retriever.selection_settings["hub_background"] == f"batch ({used} queries)"
    texts = list(dict.fromkeys(q for qs in retriever.queries(contexts) for q in qs))
    np.testing.assert_allclose(background, retriever.encoder.encode(texts, kind="query"), atol=1e-6)
    # the background's query vectors are reused: encoding those contexts again encodes nothing
    before = retriever.encoder.encoded
    batch = build(retriever, contexts[:25])
    assert retriever.encoder.encoded == before
    emb = np.asarray(index.embeddings)
    head_penalty = literal_penalty(emb, background, 7)
    np.testing.assert_allclose(retriever.candidates.head_penalty(), head_penalty, atol=1e-5)
    np.testing.assert_allclose(retriever.candidates.head_penalty(), hub_penalty(emb, background, 7), atol=1e-6)
    rows = {h: i for i, h in enumerate(index.heads["id"].to_list())}
    scorer = DenseScorer(config)
    for c, scores in zip(batch, scorer.score(batch)):
        # the dense hits are the literal hub-corrected top 3
        q = c.query_vector.astype(np.float64)
        ref_scores, ref_ids = literal_csls_topk(q[None], emb, 0.6 * head_penalty, 3)
        hits = sorted({rows[p.head_id]: int(r) for p, r in zip(c.pieces, c.head_rank) if r >= 0}.items(),
                      key=lambda kv: kv[1])
        hit_rows = [row for row, _ in hits]
        assert len(hit_rows) == 3
        assert_same_knn([[emb[row] @ q - 0.6 * head_penalty[row] for row in hit_rows]], [hit_rows],
                        ref_scores, ref_ids)
        for i, p in enumerate(c.pieces):
            vector = retriever.encoder.encode([p.passage], kind="passage")[0].astype(np.float64)
            sims = np.sort(background.astype(np.float64) @ vector)[::-1]
            penalty = sims[:7].mean()  # the piece's mean similarity to its 7 nearest background queries
            assert c.piece_penalty[i] == pytest.approx(penalty, abs=1e-5)
            row = rows[p.head_id]
            head = emb[row].astype(np.float64) @ q - 0.6 * head_penalty[row]
            assert c.head_score[i] == pytest.approx(head, abs=1e-5)
            # DenseScorer: cosine - hub_weight x piece penalty + head_weight x head score
            assert scores[i] == pytest.approx(vector @ q - 0.6 * penalty + 0.4 * head, abs=1e-5)
    retriever.candidates.set_background(None)
    assert retriever.candidates.background is None and retriever.candidates.head_penalty() is None


# ------------------------------------------------------------------ segments


def test_dense_segment_is_the_greedy_fill_of_the_ranked_pieces(indexes, sample_kg, contexts):
    index = indexes[0]
    budget = KnowledgeBudget(40)
    retriever = dense(index, sample_kg, budget=budget)
    results = retriever.retrieve_batch(contexts[:30])
    batch = build(retriever, contexts[:30])
    for r, c, scores in zip(results, batch, retriever.scorer.score(batch)):
        assert r.pieces and not r.abstained
        assert r.knowledge == write_segment(r.pieces) and len(r.knowledge) <= 40
        assert kg.fit_knowledge(r.knowledge, budget) == r.knowledge
        ranked = [c.pieces[i] for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i))]
        assert r.pieces == fill_segment(ranked, budget)
        assert r.pieces[0] == ranked[0] or len(write_segment([ranked[0]])) > 40  # the best piece first when it fits
        assert [h.id for h in r.heads] == list(dict.fromkeys(p.head_id for p in r.pieces))
        d = r.as_dict()
        assert d["pieces"] == [p.passage for p in r.pieces] and d["abstained"] is False
    blank = retriever.retrieve(["  "])
    assert blank.knowledge == "" and blank.pieces == [] and not blank.abstained


def test_abstain_gives_an_empty_segment(indexes, sample_kg, contexts):
    retriever = dense(indexes[0], sample_kg, SelectionConfig(abstain_below=1e9), budget=KnowledgeBudget(69))
    for r in retriever.retrieve_batch(contexts[:10]):
        assert r.abstained and r.knowledge == "" and r.pieces == [] and r.heads == []
    never = dense(indexes[0], sample_kg, SelectionConfig(abstain_below=-1e9), budget=KnowledgeBudget(69))
    assert all(not r.abstained and r.knowledge for r in never.retrieve_batch(contexts[:10]))


def test_paper_selection_is_the_head_major_text(indexes, sample_kg, contexts):
    index = indexes[0]
    budget = KnowledgeBudget(69)
    paper = Retriever(index, sample_kg, CountingEncoder(32), RetrieverConfig(selection="paper", top_k=3),
                      budget=budget)
    assert paper.scorer is None and paper.candidates is None and paper.selection_settings == {"name": "paper"}
    ids = index.heads["id"].to_list()
    for context, r in zip(contexts[:20], paper.retrieve_batch(contexts[:20])):
        q = paper.encoder.encode(paper.queries([context])[0], kind="query")
        ref_scores, ref_ids = exact_topk(q, index.embeddings, 3)
        assert_same_knn([[h.score for h in r.heads]], [[ids.index(h.id) for h in r.heads]], ref_scores, ref_ids)
        items = [sample_kg.flows(h.id, families=kg.FLOW_FAMILIES, depth=1, fanout=2, relations=kg.DEFAULT_RELATIONS,
                                 top_k_tails=2) for h in r.heads]
        assert r.knowledge == kg.linearize(items, budget=budget).text
        assert r.pieces is None and "pieces" not in r.as_dict()


# ------------------------------------------------------------------ an index built with its pieces


def test_index_stores_every_piece_passage_and_its_vector(tmp_path, sample_kg, capsys):
    from retrieval.index import PIECE_EMB_FILE, PIECE_PASSAGES_FILE, HeadIndex, IndexFileError
    from retrieval.pieces import head_pieces
    from tiktalk.commands.main import main

    encoder = CountingEncoder(dim=32)
    config = PieceConfig(split_over=30, part_chars=30)
    built = build_head_index(sample_kg, encoder, tmp_path / "idx", kg_source="sample", progress=False,
                             views="text", pieces=config)
    loaded = HeadIndex.load(tmp_path / "idx")
    passages = list(dict.fromkeys(p.passage for h in loaded.heads["id"].to_list()
                                  for p in head_pieces(sample_kg, h, config)))
    assert loaded.piece_passages == built.piece_passages == passages
    np.testing.assert_allclose(loaded.piece_embeddings, encoder.encode(passages, kind="passage"), atol=1e-6)
    assert loaded.manifest["pieces"] == {"config": config.as_dict(), "count": len(passages)}
    assert {PIECE_PASSAGES_FILE, PIECE_EMB_FILE} <= set(loaded.manifest["files"])
    # its vectors serve a selection with the same piece settings only
    same = dense(loaded, sample_kg, SelectionConfig(pieces=config))
    assert len(same.candidates.vectors) == len(passages)
    assert len(dense(loaded, sample_kg).candidates.vectors) == 0  # default settings: not these pieces
    # the piece files are covered by the sha256 check, and their shape by the reader
    np.save(tmp_path / "idx" / PIECE_EMB_FILE, np.zeros((3, 32), np.float32))
    with pytest.raises(IndexFileError, match="sha256"):
        HeadIndex.load(tmp_path / "idx")
    with pytest.raises(IndexFileError, match=rf"shape \(3, 32\) float32, expected \({len(passages)}, 32\) float32"):
        HeadIndex.load(tmp_path / "idx", verify=False)
    # from the command line: --pieces
    assert main(["index", "build", "--kg", "sample", "--out", str(tmp_path / "cli"), "--encoder", "hash:32",
                 "--background", "none", "--pieces", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["pieces"]["config"] == PieceConfig().as_dict() and manifest["pieces"]["count"] > len(loaded)
    assert main(["index", "build", "--kg", "sample", "--out", str(tmp_path / "none"), "--encoder", "hash:32",
                 "--background", "none", "--json"]) == 0
    assert "pieces" not in json.loads(capsys.readouterr().out)
    assert HeadIndex.load(tmp_path / "none").piece_passages is None
