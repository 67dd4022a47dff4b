"""The GEMM batch path against the slow float64 reference (with ties), and the batch rule.

Nothing here times anything: the rule is derived from given timings, and the measurement
itself is replaced where a test would otherwise trigger it.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from faiss.contrib.evaluation import check_ref_knn_with_draws

import retrieval.batch_search as bs
from retrieval.batch_search import BatchRule, flat_vectors, gemm_topk, rule_from_timings
from retrieval.search import batch_path, build_index, exact_topk, search, search_penalized
from tiktalk.io import write_json

PATHS = ["faiss", "numpy", "torch"]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def tied_data(n: int, nq: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 vectors in 8 dims: dot products are small integers, exact in float32 whatever the
    kernel's summation order, and only 256 distinct rows: ties everywhere, also across k."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, size=(n, 8)).astype(np.float32), rng.integers(0, 2, size=(nq, 8)).astype(np.float32))


def penalized_reference(q: np.ndarray, db: np.ndarray, penalty: np.ndarray, k: int):
    """Float64 score - penalty for every row, full stable sort by (score desc, id asc), cut at k."""
    s = q.astype(np.float64) @ db.astype(np.float64).T - penalty.astype(np.float64)
    order = np.lexsort((np.broadcast_to(np.arange(s.shape[1]), s.shape), -s), axis=-1)[:, :k]
    scores, ids = np.take_along_axis(s, order, 1).astype(np.float32), order.astype(np.int64)
    pad = k - ids.shape[1]
    if pad > 0:
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    return scores, ids


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("k", [1, 10, 100, 2000, 2010])
def test_gemm_topk_equals_reference_with_ties(engine, k):
    db, q = tied_data(2000, 70, seed=k)
    scores, ids = gemm_topk(q, db, k, engine=engine, rows=32)  # 70 queries: three chunks, the last short
    ref_scores, ref_ids = exact_topk(q, db, k)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)


@pytest.mark.parametrize("path", PATHS)
def test_search_paths_agree_with_float64_reference(path):
    rng = np.random.default_rng(5)
    db, q = unit(rng.standard_normal((3000, 48))), unit(rng.standard_normal((40, 48)))
    index = build_index(db, "Flat")
    for id_range in (None, (700, 2100)):
        lo, hi = id_range or (0, 3000)
        scores, ids = search(index, q, 10, id_range=id_range, path=path)
        ref_scores, ref_ids = exact_topk(q, db[lo:hi], 10)
        check_ref_knn_with_draws(ref_scores, ref_ids + lo, scores, ids)
    tied_db, tied_q = tied_data(1500, 9, seed=1)
    tied = build_index(tied_db, "Flat")
    for k in (1, 10, 300):
        scores, ids = search(tied, tied_q, k, id_range=(100, 1200), path=path)
        ref_scores, ref_ids = exact_topk(tied_q, tied_db[100:1200], k)
        np.testing.assert_array_equal(ids, ref_ids + 100)
        np.testing.assert_array_equal(scores, ref_scores)


@pytest.mark.parametrize("path", PATHS)
def test_hub_corrected_paths_equal_reference_with_ties(path):
    db, q = tied_data(1200, 12, seed=2)
    penalty = np.random.default_rng(3).integers(0, 4, size=1200).astype(np.float32) / 4  # exact: ties survive
    index = build_index(db, "Flat")
    for k, id_range in ((1, None), (10, None), (50, (200, 900)), (800, (200, 900))):
        lo, hi = id_range or (0, 1200)
        scores, ids = search_penalized(index, q, k, penalty, id_range=id_range, path=path)
        ref_scores, ref_ids = penalized_reference(q, db[lo:hi], penalty[lo:hi], k)
        np.testing.assert_array_equal(ids, np.where(ref_ids >= 0, ref_ids + lo, -1))
        np.testing.assert_array_equal(scores, ref_scores)


def test_flat_vectors_is_a_view_of_flat_ip_only():
    db = unit(np.random.default_rng(0).standard_normal((300, 16)))
    index = build_index(db, "Flat")  # the view borrows the index's memory: keep it alive
    view = flat_vectors(index)
    np.testing.assert_array_equal(view, db)
    index.add(db[:1])  # a fresh view sees what was added since
    assert flat_vectors(index).shape == (301, 16)
    assert flat_vectors(build_index(db, "HNSW32")) is None
    assert flat_vectors(build_index(db, "SQfp16")) is None
    l2 = faiss.IndexFlatL2(16)
    l2.add(db)
    assert flat_vectors(l2) is None


def test_rule_from_timings_takes_the_crossover():
    ms = 1e-3
    timings = {
        2: {"faiss": 2 * ms, "numpy": 5 * ms, "torch": 6 * ms},
        16: {"faiss": 10 * ms, "numpy": 8 * ms, "torch": 9 * ms},  # a win that is not a crossover
        64: {"faiss": 30 * ms, "numpy": 31 * ms, "torch": 40 * ms},
        256: {"faiss": 100 * ms, "numpy": 60 * ms, "torch": 70 * ms},
    }
    rule = rule_from_timings(timings, 4096)
    assert (rule.engine, rule.gemm_min_queries, rule.faiss_database_bs) == ("numpy", 256, 4096)
    assert [rule.path_for(n) for n in (1, 2, 255, 256, 5000)] == ["faiss", "faiss", "faiss", "numpy", "numpy"]
    # within the margin is not a win: FAISS everywhere
    close = {n: {"faiss": t["faiss"], "numpy": t["faiss"] * 0.97, "torch": t["faiss"] * 2} for n, t in timings.items()}
    assert rule_from_timings(close, 1024).gemm_min_queries is None
    assert rule_from_timings(close, 1024).path_for(10_000) == "faiss"
    fast_torch = {n: {"faiss": 1.0, "numpy": 0.9, "torch": 0.5} for n in (2, 4, 16)}
    rule = rule_from_timings(fast_torch, 1024)
    assert (rule.engine, rule.gemm_min_queries) == ("torch", 2)
    with pytest.raises(ValueError, match=r"timings for 4 queries lack path\(s\) \['torch'\]"):
        rule_from_timings({4: {"faiss": 1.0, "numpy": 1.0}}, 1024)


def test_rule_round_trips_and_bad_fields_are_named(tmp_path):
    rule = rule_from_timings({8: {"faiss": 1.0, "numpy": 0.5, "torch": 0.7}}, 1024, {"cpu": "x"}, {"n": 5})
    assert BatchRule.from_dict(rule.as_dict(), "f.json") == rule
    bad = {**rule.as_dict(), "engine": "cupy"}
    with pytest.raises(ValueError, match=r"f\.json: field 'engine' is 'cupy'"):
        BatchRule.from_dict(bad, "f.json")
    with pytest.raises(ValueError, match=r"f\.json: field 'gemm_min_queries' is 1"):
        BatchRule.from_dict({**rule.as_dict(), "gemm_min_queries": 1}, "f.json")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty calibration cache, no override, and no rule held in this process."""
    monkeypatch.setenv("TIKTALK_CACHE", str(tmp_path))
    monkeypatch.delenv(bs.BATCH_ENV, raising=False)
    monkeypatch.setattr(bs, "_RULES", {})
    return tmp_path


def test_batch_rule_is_measured_once_then_read_from_its_file(cache, monkeypatch):
    calls = []

    def fake_measure():
        calls.append(1)
        return {4: {"faiss": 1.0, "numpy": 0.5, "torch": 0.9}}, 4096

    monkeypatch.setattr(bs, "measure_paths", fake_measure)
    rule = bs.batch_rule()
    file = bs.calibration_file()
    assert calls == [1] and file.parent == cache and file.is_file()
    assert (rule.engine, rule.gemm_min_queries, rule.machine) == ("numpy", 4, bs.machine_key())
    monkeypatch.setattr(bs, "_RULES", {})  # a new process: the file answers
    assert bs.batch_rule() == rule and calls == [1]
    # a file from another machine (or thread count) is measured anew and replaced
    write_json(file, {**rule.as_dict(), "machine": {"cpu": "elsewhere"}})
    monkeypatch.setattr(bs, "_RULES", {})
    assert bs.batch_rule().machine == bs.machine_key() and calls == [1, 1]
    write_json(file, {**rule.as_dict(), "faiss_database_bs": "big"})
    monkeypatch.setattr(bs, "_RULES", {})
    with pytest.raises(ValueError, match=r"search-batch-rule-.*\.json: field 'faiss_database_bs' is 'big'"):
        bs.batch_rule()


def test_batch_path_follows_rule_override_and_index_kind(cache, monkeypatch):
    rule = BatchRule(engine="torch", gemm_min_queries=8, faiss_database_bs=4096)
    monkeypatch.setattr(bs, "_RULES", {str(bs.calibration_file()): rule})
    db = unit(np.random.default_rng(0).standard_normal((500, 16)))
    flat, hnsw = build_index(db, "Flat"), build_index(db, "HNSW32")
    assert batch_path(flat, 1) == ("faiss", None)  # one query keeps its path
    assert batch_path(flat, 7) == ("faiss", 4096)
    assert batch_path(flat, 8) == ("torch", 4096)
    assert batch_path(hnsw, 100) == ("faiss", None)
    assert batch_path(hnsw, 100, "numpy") == ("faiss", None)  # no GEMM form for an ANN index
    monkeypatch.setenv(bs.BATCH_ENV, "numpy")
    assert batch_path(flat, 1) == ("numpy", None)
    assert batch_path(flat, 100, "faiss") == ("faiss", None)  # the argument beats the environment
    monkeypatch.setenv(bs.BATCH_ENV, "blas")
    with pytest.raises(ValueError, match=r"\$TIKTALK_SEARCH_BATCH is 'blas'; expected one of"):
        search(flat, db[:3], 2)


def test_single_query_never_measures(cache, monkeypatch):
    def refuse():
        raise AssertionError("one query must not trigger the calibration")

    monkeypatch.setattr(bs, "measure_paths", refuse)
    db = unit(np.random.default_rng(0).standard_normal((400, 16)))
    _scores, ids = search(build_index(db, "Flat"), db[:1], 3)
    assert ids[0, 0] == 0 and not any(cache.iterdir())


def test_unwritable_cache_keeps_the_rule_in_process(cache, monkeypatch):
    blocker = cache / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("TIKTALK_CACHE", str(blocker))  # mkdir under a file fails
    monkeypatch.setattr(bs, "measure_paths", lambda: ({4: {"faiss": 1.0, "numpy": 2.0, "torch": 2.0}}, 1024))
    rule = bs.batch_rule()
    assert rule.gemm_min_queries is None and bs.batch_rule() is rule
