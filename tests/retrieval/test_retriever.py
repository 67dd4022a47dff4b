"""Query construction and the retriever's ranking, dedupe, min score and expansion."""

from __future__ import annotations

import numpy as np
import pytest

import kg
from retrieval.index import HeadIndex
from retrieval.query import QueryConfig, build_queries
from retrieval.retriever import Retriever, RetrieverConfig, merge_hits
from retrieval.search import exact_topk
from tiktalk.types import KnowledgeBudget

from .conftest import assert_same_knn


def test_build_queries():
    ctx = ["第一句", "  ", "第二句", "第三句"]
    assert build_queries(ctx, config=QueryConfig(last_turns=2)) == ["第二句。第三句"]
    assert build_queries(ctx, config=QueryConfig(last_turns=None, joiner=" ")) == ["第一句 第二句 第三句"]
    assert build_queries(ctx, "标题", QueryConfig(last_turns=1, use_title=True)) == ["标题：第三句"]
    assert build_queries(ctx, "标题", QueryConfig(last_turns=1)) == ["第三句"]
    assert build_queries(ctx, config=QueryConfig(last_turns=2, mode="per-turn")) == ["第二句", "第三句"]
    assert build_queries([], "标题", QueryConfig(use_title=True)) == ["标题"]
    with pytest.raises(ValueError, match=r"last_turns \(0\) must be at least 1"):
        QueryConfig(last_turns=0)
    with pytest.raises(TypeError, match="list of turns"):
        build_queries("一句话")


def test_retrieve_matches_brute_force_and_kg(sample_index_dir, sample_kg, hash_encoder):
    index = HeadIndex.load(sample_index_dir)
    config = RetrieverConfig(top_k=4, query=QueryConfig(last_turns=2), selection="paper")
    r = Retriever(index, sample_kg, hash_encoder, config)
    ctx = ["昨天", "这披萨看着好香", "半夜看饿了"]
    out = r.retrieve(ctx)
    q = hash_encoder.encode(["这披萨看着好香。半夜看饿了"])
    ref_scores, ref_ids = exact_topk(q, np.asarray(index.embeddings), 4)
    rows = index.heads["id"].to_list()
    got_rows = np.array([[rows.index(h.id) for h in out.heads]])
    assert_same_knn([[h.score for h in out.heads]], got_rows, ref_scores, ref_ids)
    # the flows query is the one place tails and edges are trimmed; linearize only formats
    items = [sample_kg.flows(h.id, depth=1, fanout=2, top_k_tails=2, relations=kg.DEFAULT_RELATIONS)
             for h in out.heads]
    assert out.knowledge == kg.linearize(items).text
    assert out.knowledge.startswith(out.heads[0].text)
    batch = r.retrieve_batch([ctx, ["我家猫天天拆家"]])
    assert batch[0].as_dict() == out.as_dict()
    # with a budget: the same text cut between pieces
    cut = Retriever(index, sample_kg, hash_encoder, config, budget=KnowledgeBudget(40)).retrieve(ctx)
    assert cut.heads == out.heads and len(cut.knowledge) <= 40
    assert cut.knowledge == kg.fit_knowledge(out.knowledge, KnowledgeBudget(40)) != out.knowledge


def test_merge_hits_against_a_literal_merge():
    rng = np.random.default_rng(0)
    keys = [f"t{i % 7}" for i in range(20)]  # 20 rows, 7 distinct texts
    for _ in range(50):
        q, k = rng.integers(1, 4), rng.integers(1, 6)
        scores = rng.choice([0.1, 0.2, 0.3, 0.5], size=(q, k))  # ties on purpose
        ids = rng.integers(-1, 20, size=(q, k))
        got = merge_hits(scores, ids, keys, min_score=0.2)
        # slow obvious version: every valid hit, best per key (lowest row on ties), then sort
        hits = sorted((float(s), int(i)) for row_s, row_i in zip(scores, ids)
                      for s, i in zip(row_s, row_i) if i >= 0 and s >= 0.2)
        best = {}
        for s, i in hits:
            if keys[i] not in best or (s, -i) > (best[keys[i]][1], -best[keys[i]][0]):
                best[keys[i]] = (i, s)
        assert got == sorted(best.values(), key=lambda h: (-h[1], h[0]))
        assert len({keys[i] for i, _ in got}) == len(got)
    assert merge_hits(np.array([[0.9, 0.8]]), np.array([[3, 3]])) == [(3, 0.9)]  # no keys: by row


def test_min_score_per_family_and_dedupe(sample_index_dir, sample_kg, hash_encoder):
    index = HeadIndex.load(sample_index_dir)
    ctx = ["这披萨看着好香"]
    base = Retriever(index, sample_kg, hash_encoder, RetrieverConfig(top_k=5, selection="paper")).retrieve(ctx)
    cut = base.heads[2].score
    kept = Retriever(index, sample_kg, hash_encoder, RetrieverConfig(top_k=5, min_score=cut, selection="paper")).retrieve(ctx)
    assert all(h.score >= cut for h in kept.heads) and len(kept.heads) < 5
    fam = Retriever(index, sample_kg, hash_encoder, RetrieverConfig(top_k=2, per_family=True, selection="paper")).retrieve(ctx)
    per = {f: [h for h in fam.heads if h.family == f] for f in index.families}
    assert all(len(v) == 2 for v in per.values())
    assert [h.score for h in fam.heads] == sorted((h.score for h in fam.heads), reverse=True)
    # per-turn queries: the same head reached from two turns appears once, with its best score
    turns = Retriever(index, sample_kg, hash_encoder,
                      RetrieverConfig(top_k=6, query=QueryConfig(mode="per-turn"), selection="paper")).retrieve(["披萨", "披萨好吃"])
    texts = [h.text for h in turns.heads]
    assert len(texts) == len(set(texts)) and texts[0] == "披萨"


def test_retriever_refuses_other_kg(sample_index_dir, hash_encoder):
    other = kg.C3KG(kg.load_kg("sample").nodes.head(50), kg.load_kg("sample").edges.head(0))
    with pytest.raises(ValueError, match=r"built from KG [0-9a-f]{64}, the KG in use is"):
        Retriever(HeadIndex.load(sample_index_dir), other, hash_encoder)
    r = Retriever.load(sample_index_dir)  # encoder and KG from the manifest
    assert r.encoder.name == "hash:32" and r.graph.content_sha256 == r.index.manifest["kg"]["content_sha256"]


def test_title_cleaned_before_it_joins_the_query():
    config = QueryConfig(last_turns=1, use_title=True)
    title = "今天做红烧肉哈哈哈哈[赞]#美食 #家常菜@抖音小助手"
    assert build_queries(["好香"], title, config) == ["今天做红烧肉哈哈 美食 家常菜：好香"]
    assert build_queries(["好香"], "@某人 [赞]", config) == ["好香"]  # cleans to nothing: no prefix
    assert build_queries(["好香"], title, QueryConfig(last_turns=1)) == ["好香"]  # titles off


def test_expand_reuses_flows_but_follows_the_config(sample_index_dir, sample_kg, hash_encoder):
    r = Retriever(HeadIndex.load(sample_index_dir), sample_kg, hash_encoder, RetrieverConfig(top_k=3))
    heads = r.retrieve(["这披萨看着好香", "半夜看饿了"]).heads
    def direct(cfg):
        items = [sample_kg.flows(h.id, families=cfg.families, depth=cfg.depth, fanout=cfg.fanout,
                                 relations=cfg.relations, top_k_tails=cfg.top_k_tails) for h in heads]
        return kg.linearize(items, cfg.linearize).text
    assert r.expand(heads) == r.expand(heads) == direct(r.config)
    r.config.top_k_tails = 1  # a changed setting is not served from the cache
    assert r.expand(heads) == direct(r.config) != direct(RetrieverConfig())
