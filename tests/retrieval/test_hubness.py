"""Hub correction: penalties, the corrected search and the hubness measures vs literal numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrieval.encoders import HashEncoder
from retrieval.hubness import (
    DEFAULT_HUB_K,
    DEFAULT_HUB_WEIGHT,
    Background,
    hub_penalty,
    hubness,
    read_background,
)
from retrieval.index import HUB_FILE, HeadIndex, IndexFileError, build_head_index
from retrieval.retriever import Retriever, RetrieverConfig
from retrieval.search import build_index, search_penalized
from tests.conftest import shared_path
from tests.retrieval.conftest import assert_same_knn
from tiktalk.errors import UsageError


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def literal_penalty(heads: np.ndarray, background: np.ndarray, k: int) -> np.ndarray:
    """For each head, the mean of its k largest similarities, one head at a time."""
    out = []
    for h in heads.astype(np.float64):
        sims = sorted((float(h @ b) for b in background.astype(np.float64)), reverse=True)
        out.append(np.mean(sims[:k]))
    return np.array(out)


def literal_csls_topk(queries, heads, penalty, k, lo=0, hi=None):
    """score - penalty for every head in [lo, hi), sorted by (score desc, row asc), cut at k."""
    hi = len(heads) if hi is None else hi
    scores, ids = [], []
    for q in queries.astype(np.float64):
        rows = sorted(((float(q @ heads[j].astype(np.float64)) - float(penalty[j]), j) for j in range(lo, hi)),
                      key=lambda t: (-t[0], t[1]))[:k]
        rows += [(-np.inf, -1)] * (k - len(rows))
        scores.append([s for s, _ in rows])
        ids.append([j for _, j in rows])
    return np.array(scores, dtype=np.float32), np.array(ids)


@pytest.mark.parametrize("k", [1, 5, 40])
def test_penalty_matches_literal(k):
    heads, background = unit(30, 16, 0), unit(25, 16, 1)
    np.testing.assert_allclose(hub_penalty(heads, background, k), literal_penalty(heads, background, k), atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_corrected_search_matches_literal(seed, k):
    heads, queries = unit(300, 12, seed), unit(20, 12, seed + 100)
    # a wide spread of penalties: the plain top rows are often not the corrected ones
    penalty = np.random.default_rng(seed).uniform(-0.5, 0.8, 300).astype(np.float32)
    index = build_index(heads, "Flat", use_gpu=False)
    got = search_penalized(index, queries, k, penalty)
    ref = literal_csls_topk(queries, heads, penalty, k)
    assert_same_knn(*got, *ref)
    got = search_penalized(index, queries, k, penalty, id_range=(50, 120))
    assert_same_knn(*got, *literal_csls_topk(queries, heads, penalty, k, 50, 120))


def test_corrected_search_ties_and_short_ranges():
    heads = unit(10, 4, 3)
    heads = np.concatenate([heads, heads])  # every score tied with a twin row
    penalty = np.zeros(20, dtype=np.float32)
    queries = unit(3, 4, 4)
    index = build_index(heads, "Flat", use_gpu=False)
    scores, ids = search_penalized(index, queries, 6, penalty)
    _, ref_ids = literal_csls_topk(queries, heads, penalty, 6)
    np.testing.assert_array_equal(ids, ref_ids)  # ties broken by the lower row, as search() does
    scores, ids = search_penalized(index, queries, 5, penalty, id_range=(17, 20))
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    with pytest.raises(UsageError, match=r"penalty has shape \(19,\), the index has 20 rows"):
        search_penalized(index, queries, 2, penalty[:19])


def literal_hubness(ids: np.ndarray, n: int):
    wins = [0] * n
    occ = [0] * n
    for row in ids:
        wins[row[0]] += 1
        for j in row:
            occ[j] += 1
    occ = np.array(occ, dtype=np.float64)
    skew = ((occ - occ.mean()) ** 3).mean() / occ.std() ** 3
    return max(wins) / len(ids), skew


def test_hubness_measures():
    rng = np.random.default_rng(0)
    ids = np.stack([rng.permutation(50)[:10] for _ in range(200)])
    ids[:30, 0] = 7  # a hub
    h = hubness(ids, 50)
    share, skew = literal_hubness(ids, 50)
    assert h.hub_share == pytest.approx(share) and h.k_occurrence_skew == pytest.approx(skew)
    assert h.top_hubs[0][0] == 7 and h.top_hubs[0][1] >= 30
    with pytest.raises(UsageError, match="at least one query"):
        hubness(np.zeros((0, 3), dtype=int), 5)


def test_correction_removes_a_planted_hub():
    """A head placed at the centre of the queries wins them all plainly, few once corrected."""
    rng = np.random.default_rng(1)
    centre = rng.standard_normal(16)
    heads = unit(200, 16, 2)
    heads[0] = centre / np.linalg.norm(centre)
    spread = centre + 1.5 * rng.standard_normal((600, 16))
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    background, queries = spread[:300].astype(np.float32), spread[300:].astype(np.float32)
    index = build_index(heads, "Flat", use_gpu=False)
    plain = hubness(index.search(queries, 10)[1], 200)
    corrected = hubness(search_penalized(index, queries, 10, hub_penalty(heads, background, 10))[1], 200)
    assert plain.top_hubs[0][0] == 0 and plain.hub_share > 0.1
    assert corrected.hub_share < plain.hub_share / 2 and corrected.k_occurrence_skew < plain.k_occurrence_skew


def test_index_stores_and_retriever_applies(tmp_path, sample_kg, hash_encoder):
    background = read_background("sample")
    out = tmp_path / "idx"
    built = build_head_index(sample_kg, hash_encoder, out, kg_source="sample", progress=False, background=background)
    entry = built.manifest["hub_correction"]
    assert entry["file"] == HUB_FILE and entry["k"] == DEFAULT_HUB_K and entry["queries"] == len(background.queries())
    assert built.manifest["files"][HUB_FILE]  # covered by the sha256 check
    loaded = HeadIndex.load(out)
    np.testing.assert_array_equal(loaded.hub_penalty, built.hub_penalty)
    texts = loaded.heads["text"].to_list()
    vectors = hash_encoder.encode(background.queries(), kind="query")
    np.testing.assert_allclose(loaded.hub_penalty, literal_penalty(np.asarray(loaded.embeddings), vectors, DEFAULT_HUB_K),
                               atol=1e-5)

    context = ["深夜来了个意式大饼，芝士拉丝拉老长", "看得我口水直流"]
    on = Retriever(loaded, sample_kg, hash_encoder, RetrieverConfig(hub_weight=0.7, selection="paper"))
    off = Retriever(loaded, sample_kg, hash_encoder, RetrieverConfig(hub_correction=False, selection="paper"))
    assert on.hub_corrected and not off.hub_corrected
    q = hash_encoder.encode(on.queries([context])[0], kind="query")
    penalty = 0.7 * loaded.hub_penalty
    ref_scores, ref_ids = literal_csls_topk(q, np.asarray(loaded.embeddings), penalty, 3)
    got = on.retrieve(context).heads
    assert [h.text for h in got] == [texts[i] for i in ref_ids[0]]
    np.testing.assert_allclose([h.score for h in got], ref_scores[0], atol=1e-5)
    plain = off.retrieve(context).heads
    assert [h.score for h in plain] == sorted((h.score for h in plain), reverse=True)

    # per family: each family's own corrected top k
    per = Retriever(loaded, sample_kg, hash_encoder, RetrieverConfig(per_family=True, top_k=2, hub_weight=0.7, selection="paper"))
    per = per.retrieve(context)
    for family, (lo, hi) in loaded.families.items():
        ref = literal_csls_topk(q, np.asarray(loaded.embeddings), penalty, 2, lo, hi)[1][0]
        assert [h.text for h in per.heads if h.family == family] == [texts[i] for i in ref]

    # an index without statistics: plain search, and asking for the correction names the fix
    plain_index = build_head_index(sample_kg, hash_encoder, None, progress=False)
    assert not Retriever(plain_index, sample_kg, hash_encoder).hub_corrected
    with pytest.raises(UsageError, match="--background"):
        plain_index.search(q, 3, hub_weight=0.5)

    np.save(out / HUB_FILE, np.zeros(3, dtype=np.float32))
    with pytest.raises(IndexFileError, match="sha256"):
        HeadIndex.load(out)
    with pytest.raises(IndexFileError, match=r"shape \(3,\)"):
        HeadIndex.load(out, verify=False)


def test_read_background(tmp_path):
    sample = read_background("sample")
    assert sample.splits is None and len(sample.contexts) > 0 and all(isinstance(t, str) for c in sample.contexts
                                                                       for t in c)
    assert len(read_background("sample", ["train"]).contexts) < len(sample.contexts)
    jsonl = tmp_path / "ctx.jsonl"
    jsonl.write_text(json.dumps({"dialogue_id": "a", "context": ["你好", "吃了吗"]}, ensure_ascii=False) + "\n"
                     + json.dumps({"dialogue_id": "b", "context": ["你好", "吃了吗"]}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    bg = read_background(jsonl)
    assert bg.contexts == [["你好", "吃了吗"]] * 2 and bg.queries() == ["你好。吃了吗"]  # repeats count once
    with pytest.raises(UsageError, match="without splits"):
        read_background(jsonl, ["train"])
    with pytest.raises(UsageError, match=r"splits \['dev'\]"):
        read_background("sample", ["dev"])
    with pytest.raises(Exception, match="does not exist"):
        read_background(tmp_path / "missing.json")
    assert Background([["a"]], "x", None).queries() == ["a"]


def test_read_lccc_background():
    path = shared_path("lccc_toy", "toy_data.json")
    train = read_background(path, ["train"])
    held_out = read_background(path, ["val", "test"])
    raw = json.loads(path.read_text(encoding="utf-8"))
    # every prefix of every dialogue: context and context + response of each expanded turn
    assert len(train.contexts) == 2 * sum(len(d) - 1 for d in raw["train"])
    assert len(held_out.contexts) == 2 * sum(len(d) - 1 for d in raw["valid"] + raw["test"])
    first = [["".join(u.split()) for u in raw["train"][0][:n]] for n in range(1, len(raw["train"][0]) + 1)]
    assert {tuple(c) for c in train.contexts[: 2 * (len(first) - 1)]} == {tuple(c) for c in first}


def test_background_jsonl_errors(tmp_path):
    from tiktalk.errors import FormatError

    bad = tmp_path / "bg.jsonl"
    bad.write_text('{"context": ["好"]}\n{"context": "不是列表"}\n', encoding="utf-8")
    with pytest.raises(FormatError, match=r"bg.jsonl:2: field 'context' must be a list of strings"):
        read_background(bad)


def test_cli_build_with_background_and_retrieve(tmp_path, capsys):
    from tiktalk.commands.main import main

    out = tmp_path / "idx"
    assert main(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32", "--workers", "2",
                 "--background", "sample", "--hub-k", "7", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["hub_correction"]["k"] == 7 and HUB_FILE in manifest["files"]
    turns = ["深夜来了个意式大饼", "看得我口水直流"]
    scores = {}
    for flag in ([], ["--no-hub-correction"]):
        assert main(["retrieve", "--index", str(out), "--top-k", "3", "--selection", "paper", *flag, "--json", *turns]) == 0
        scores[bool(flag)] = [h["score"] for h in json.loads(capsys.readouterr().out)["heads"]]
    index = HeadIndex.load(out)
    q = HashEncoder(32).encode(["。".join(turns)])
    plain = literal_csls_topk(q, np.asarray(index.embeddings), np.zeros(len(index), np.float32), 3)[0][0]
    corrected = literal_csls_topk(q, np.asarray(index.embeddings), DEFAULT_HUB_WEIGHT * index.hub_penalty, 3)[0][0]
    np.testing.assert_allclose(scores[True], plain, atol=1e-5)
    np.testing.assert_allclose(scores[False], corrected, atol=1e-5)
    assert main(["index", "build", "--kg", "sample", "--out", str(tmp_path / "plain"), "--encoder", "hash:32",
                 "--workers", "1", "--background", "none", "--json"]) == 0
    assert "hub_correction" not in json.loads(capsys.readouterr().out)
