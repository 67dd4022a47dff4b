"""FAISS search against the slow obvious numpy reference; ANN recall against Flat."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from retrieval.search import (
    SearchParams,
    build_index,
    configure_threads,
    exact_topk,
    gemv_topk,
    make_index,
    recall_at_k,
    search,
    use_huge_pages,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("k", [1, 7, 64, 300, 500])
def test_flat_equals_brute_force(k):
    rng = np.random.default_rng(k)
    db, q = unit(rng.standard_normal((300, 24))), unit(rng.standard_normal((40, 24)))
    scores, ids = search(build_index(db, "Flat"), q, k)
    ref_scores, ref_ids = exact_topk(q, db, k)
    assert ids.shape == (40, k)
    np.testing.assert_array_equal(ids, ref_ids)
    finite = np.isfinite(ref_scores)
    np.testing.assert_allclose(scores[finite], ref_scores[finite], atol=1e-5)
    if k > 300:  # k larger than the index: padded with -1 / -inf
        assert (ids[:, 300:] == -1).all() and np.isneginf(scores[:, 300:]).all()


@pytest.mark.parametrize("batch", [1, 3, 200])
def test_flat_ties_break_by_lower_id(batch):
    # integer vectors: dot products are exact, so ties are real ties whatever the summation order
    rng = np.random.default_rng(0)
    db = rng.integers(0, 2, size=(2000, 8)).astype(np.float32)  # only 256 distinct rows: many ties
    q = rng.integers(0, 2, size=(batch, 8)).astype(np.float32)
    for k in (1, 10, 100):
        scores, ids = search(build_index(db, "Flat"), q, k)
        ref_scores, ref_ids = exact_topk(q, db, k)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(scores, ref_scores)


def test_id_range_restricts_rows():
    rng = np.random.default_rng(1)
    db, q = unit(rng.standard_normal((500, 16))), unit(rng.standard_normal((5, 16)))
    index = build_index(db, "Flat")
    scores, ids = search(index, q, 10, id_range=(100, 180))
    ref_scores, ref_ids = exact_topk(q, db[100:180], 10)
    np.testing.assert_array_equal(ids, ref_ids + 100)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    with pytest.raises(ValueError, match=r"id_range \(400, 600\) is outside the index's 500 rows"):
        search(index, q, 3, id_range=(400, 600))


def clustered(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, d))
    db = unit(centres[rng.integers(0, 64, n)] + 0.3 * rng.standard_normal((n, d)))
    q = unit(db[rng.integers(0, n, 100)] + 0.1 * rng.standard_normal((100, d)))
    return db, q


@pytest.mark.parametrize(
    "factory, params, floor",
    [("HNSW32", SearchParams(ef_search=128), 0.95), ("IVF64,Flat", SearchParams(nprobe=16), 0.9),
     ("IVF64,Flat", SearchParams(nprobe=64), 1.0),
     # PQ training took 27-70 s on the shared 2-core machine: slow tier
     pytest.param("IVF32,PQ16x4", SearchParams(nprobe=32), 0.4, marks=pytest.mark.slow)],
)
def test_ann_recall_against_flat(factory, params, floor):
    db, q = clustered(5000, 32, seed=3)
    _, ref = search(build_index(db, "Flat"), q, 10)
    _, ids = search(build_index(db, factory, params), q, 10)
    recall = recall_at_k(ids, ref, 10)
    assert recall >= floor, f"{factory} {params}: recall@10 {recall:.3f} < {floor}"


def test_recall_at_k_counts_overlap():
    ref = np.array([[1, 2, 3, 4]])
    assert recall_at_k(np.array([[4, 3, 9, 8]]), ref, 4) == 0.5
    assert recall_at_k(ref, ref, 2) == 1.0


def test_factory_errors_name_the_values():
    with pytest.raises(ValueError, match=r"'IVF4096,Flat' needs at least 4096 training vectors.*there are 300"):
        build_index(np.eye(300, 16, dtype=np.float32), "IVF4096,Flat")
    with pytest.raises(ValueError, match=r"PQ48 does not divide the dimension 512"):
        make_index("IVF16,PQ48", 512)
    with pytest.raises(ValueError, match=r"FAISS cannot build factory 'Bogus7'"):
        make_index("Bogus7", 16)


def test_query_errors_name_the_values():
    index = build_index(np.eye(4, 8, dtype=np.float32), "Flat")
    with pytest.raises(ValueError, match=r"queries have dimension 5, the index has 8"):
        search(index, np.zeros((1, 5), np.float32), 1)
    with pytest.raises(ValueError, match=r"k \(0\) must be at least 1"):
        search(index, np.zeros((1, 8), np.float32), 0)
    with pytest.raises(ValueError, match=r"must be 2-D"):
        search(index, np.zeros(8, np.float32), 1)


def test_configure_threads_sets_faiss():
    import faiss

    before = faiss.omp_get_max_threads()
    try:
        assert configure_threads(1) == 1 and faiss.omp_get_max_threads() == 1
        with pytest.raises(ValueError, match=r"threads \(0\)"):
            configure_threads(0)
    finally:
        faiss.omp_set_num_threads(before)


@pytest.mark.parametrize("k", [1, 10, 2000, 2500])
def test_gemv_path_equals_brute_force_with_ties(k):
    rng = np.random.default_rng(k)
    db = rng.integers(0, 2, size=(2000, 8)).astype(np.float32)
    q = rng.integers(0, 2, size=(2, 8)).astype(np.float32)
    scores, ids = gemv_topk(db, q, k)
    ref_scores, ref_ids = exact_topk(q, db, k)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)
    np.testing.assert_array_equal(ids, search(build_index(db, "Flat"), q, k)[1])


def _anon_huge_kb(address: int) -> int | None:
    """AnonHugePages (kB) of the mapping holding ``address``, from /proc/self/smaps."""
    current = False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                current = lo <= address < hi
            elif current and head == "AnonHugePages:":
                return int(line.split()[1])
    return None


def test_huge_pages_change_no_result():
    rng = np.random.default_rng(3)
    x = unit(rng.standard_normal((20_000, 384)))  # 30 MB: several 2 MiB pages
    q = unit(rng.standard_normal((50, 384)))
    index = faiss.IndexFlatIP(384)
    index.add(x)
    before = index.search(q, 10)
    applied = use_huge_pages(index)
    after = index.search(q, 10)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    if applied:  # the vectors now sit on huge pages (where the kernel has MADV_COLLAPSE)
        assert _anon_huge_kb(int(index.codes.data()) + (4 << 20)) >= 2048
    # nothing to do: too small for two huge pages, or vectors not stored flat
    assert not use_huge_pages(build_index(x[:100], "Flat"))
    assert not use_huge_pages(build_index(x[:4096], "IVF16,Flat"))


@pytest.mark.parametrize("d", [384, 896])
def test_blas_path_from_a_query_count_whatever_d(d):
    """FAISS compares nq * d with its threshold; search() makes the choice a query count, so a
    single query at the ensemble's d = 896 stays on the direct scan (the BLAS path took 3.5x as
    long), and both paths agree with numpy."""
    import faiss

    from retrieval.search import BLAS_MIN_QUERIES

    rng = np.random.default_rng(d)
    db, q = unit(rng.standard_normal((3000, d))), unit(rng.standard_normal((9, d)))
    index = build_index(db, "Flat")
    for nq in (1, BLAS_MIN_QUERIES - 1, BLAS_MIN_QUERIES, 9):  # direct scan below, BLAS from BLAS_MIN_QUERIES
        scores, ids = search(index, q[:nq], 10)
        assert faiss.cvar.distance_compute_blas_threshold == BLAS_MIN_QUERIES * d
        ref_scores, ref_ids = exact_topk(q[:nq], db, 10)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
