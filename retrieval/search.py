"""Pure search functions over arrays: FAISS indexes by factory string, exact top-k, threads.

Everything here takes and returns arrays; the :mod:`retrieval.index` directory format and
the :mod:`retrieval.retriever` sit on top. Conventions:

- vectors are float32 ``(n, d)`` with unit rows, metric is inner product (= cosine);
- results are ``scores (nq, k) float32`` and ``ids (nq, k) int64``, best first, ties broken
  by the lower id (FAISS's own heap keeps an arbitrary member of a tie), ``-1`` / ``-inf``
  where fewer than ``k`` rows exist.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

# Each of torch and FAISS loads its own OpenMP runtime; spinning workers of one starve the
# other on a small machine. PASSIVE measured faster here (issue 3). Must precede the import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
import numpy as np

from retrieval.batch_search import batch_rule, flat_vectors, gemm_topk, requested_path
from tiktalk.errors import UsageError
from tiktalk.options import POSITIVE_INT, bounded, check_fields

# FAISS 1.15 takes its BLAS path when nq * d >= faiss.cvar.distance_compute_blas_threshold
# (default 128,000, so a batch of 256 queries at d = 384 scanned directly, 7x slower: issue
# 3). The crossover is a query count: over 100k heads, 1 thread, the direct scan / BLAS took
# 4.9 / 27 ms for 1 query at d = 384 (11.6 / 41 ms at d = 896, the default ensemble), 20 / 25
# ms for 4 (45 / 37 at d = 896) and 40 / 27 ms for 8 (88 / 44). So :func:`search` sets the
# threshold to this many queries times the index's d before every call.
BLAS_MIN_QUERIES = 4


@dataclass(frozen=True)
class SearchParams:
    """Search-time knobs, stored in the index manifest. ``nprobe`` for IVF, ``ef_search`` for HNSW."""

    nprobe: int = field(default=32, metadata=bounded(POSITIVE_INT))
    ef_search: int = field(default=128, metadata=bounded(POSITIVE_INT))

    def __post_init__(self) -> None:
        check_fields(self)

    def as_dict(self) -> dict:
        return {"nprobe": self.nprobe, "ef_search": self.ef_search}


def configure_threads(threads: int | None = None) -> int:
    """Set FAISS's and torch's thread counts to ``threads`` and lower FAISS's BLAS threshold.

    Default: half the usable cores (at least 1). FAISS parallelises over queries and its
    BLAS may thread again inside, so all cores oversubscribe: on the shared 2-core machine
    a 200-query batch took 0.74 s with 2 threads and 0.076 s with 1 (benchmarks). Returns
    the count set; torch is only touched when it is already imported.
    """
    import sys

    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // 2)
    if threads < 1:
        raise UsageError(f"threads ({threads}) must be at least 1")
    faiss.omp_set_num_threads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES * 384  # search() sets it per index
    return threads


def check_vectors(x: np.ndarray, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """(n, d) float32 C-contiguous, or a ValueError naming the shape / dim / dtype at fault."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise UsageError(f"{what} must be 2-D (n, d), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise UsageError(f"{what} have dimension {x.shape[1]}, the index has {dim}")
    if not np.issubdtype(x.dtype, np.floating):
        raise UsageError(f"{what} must be floating point, got {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


_IVF = re.compile(r"IVF(\d+)")
_PQ = re.compile(r"PQ(\d+)")


def make_index(factory: str, dim: int, n_train: int | None = None) -> faiss.Index:
    """A fresh inner-product index from a FAISS factory string; ValueError when it cannot work."""
    m = _IVF.search(factory)
    if m and n_train is not None and n_train < int(m.group(1)):
        raise UsageError(
            f"factory {factory!r} needs at least {m.group(1)} training vectors (one per list); "
            f"there are {n_train} (use Flat or HNSW32, or fewer lists)"
        )
    m = _PQ.search(factory)
    if m and dim % int(m.group(1)):
        raise UsageError(f"factory {factory!r}: PQ{m.group(1)} does not divide the dimension {dim}")
    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise UsageError(f"FAISS cannot build factory {factory!r} at dim {dim}: {str(err).splitlines()[0]}") from None


def apply_params(index: faiss.Index, params: SearchParams) -> None:
    """Set nprobe / efSearch on whatever kind of index this is (no-op for Flat)."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = params.nprobe
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = params.ef_search


def build_index(vectors: np.ndarray, factory: str = "Flat", params: SearchParams | None = None,
                seed: int = 0, use_gpu: bool = True) -> faiss.Index:
    """Train (when needed) and fill an index with ``vectors`` (n, d); row i gets id i.

    With a GPU visible to FAISS (and ``use_gpu``), training and adding run there and the
    result is copied back, so what is written is always a CPU index. HNSW has no GPU form.
    """
    vectors = check_vectors(vectors)
    index = make_index(factory, vectors.shape[1], n_train=vectors.shape[0])
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.cp.seed = seed  # deterministic k-means
    if use_gpu and faiss.get_num_gpus() > 0 and "HNSW" not in factory:
        gpu = to_gpu(index)
        if not gpu.is_trained:
            gpu.train(vectors)
        gpu.add(vectors)
        index = faiss.index_gpu_to_cpu(gpu)
    else:
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
    apply_params(index, params or SearchParams())
    use_huge_pages(index)
    return index


# Linux madvise advice values (asm-generic/mman-common.h)
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25
_HUGE_PAGE = 2 << 20


def use_huge_pages(index: faiss.Index) -> bool:
    """Back a CPU flat index's stored vectors with 2 MiB pages (Linux transparent huge pages).

    A single-query Flat scan reads every vector once; on 4 KiB pages it stalls on TLB misses.
    Over 100k x 384 here it ran at 1.66-1.74x the single-thread read floor, and at 1.06x
    once its vectors sat on huge pages (benchmarks ``flat1_vs_floor``); collapsing 150 MB took
    36 ms. FAISS allocates the vectors itself, so they are collapsed in place
    (``MADV_HUGEPAGE`` then ``MADV_COLLAPSE``, Linux 6.1+). Advice only: no value changes.
    Returns whether it applied; False (and nothing done) for other index types, a GPU index,
    less than two huge pages of vectors, or a system without the call or with THP off.
    """
    import ctypes
    import sys

    flat = faiss.downcast_index(index)
    codes = getattr(flat, "codes", None)
    if not sys.platform.startswith("linux") or on_gpu(index) or codes is None or not hasattr(codes, "data"):
        return False
    start_ptr, size = int(codes.data()), int(codes.size())
    start = (start_ptr + _HUGE_PAGE - 1) // _HUGE_PAGE * _HUGE_PAGE  # whole huge pages inside the buffer
    end = (start_ptr + size) // _HUGE_PAGE * _HUGE_PAGE
    if end - start < 2 * _HUGE_PAGE:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        length = ctypes.c_size_t(end - start)
        return (libc.madvise(ctypes.c_void_p(start), length, _MADV_HUGEPAGE) == 0
                and libc.madvise(ctypes.c_void_p(start), length, _MADV_COLLAPSE) == 0)
    except (OSError, AttributeError):
        return False


def to_gpu(index: faiss.Index) -> faiss.Index:
    """Move ``index`` to GPU 0 when FAISS sees a GPU; otherwise return it unchanged."""
    if faiss.get_num_gpus() <= 0:
        return index
    resources = faiss.StandardGpuResources()
    gpu = faiss.index_cpu_to_gpu(resources, 0, index)
    gpu.referenced_resources = resources  # keep the resources alive with the index
    return gpu


def on_gpu(index: faiss.Index) -> bool:
    return type(index).__name__.startswith("Gpu")


def _sort_rows(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each row by (score desc, id asc); missing (-1) entries last."""
    key_id = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    key_score = np.where(ids < 0, np.inf, -scores.astype(np.float64))
    order = np.lexsort((key_id, key_score), axis=-1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def _range_params(index: faiss.Index, lo: int, hi: int):
    """FAISS search parameters restricting ids to [lo, hi) (per-family search on contiguous rows)."""
    sel = faiss.IDSelectorRange(lo, hi)
    if faiss.try_extract_index_ivf(index) is not None:
        ivf = faiss.try_extract_index_ivf(index)
        params = faiss.SearchParametersIVF(sel=sel, nprobe=ivf.nprobe)
    elif getattr(faiss.downcast_index(index), "hnsw", None) is not None:
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=faiss.downcast_index(index).hnsw.efSearch)
    else:
        params = faiss.SearchParameters(sel=sel)
    params.referenced_selector = sel  # the selector must outlive the call
    return params


def batch_path(index: faiss.Index, nq: int, override: str | None = None) -> tuple[str, int | None]:
    """(who answers a batch of ``nq`` queries on ``index``, FAISS's database block or None).

    ``faiss`` for any index but a CPU inner-product Flat; for a Flat index the override
    (``override`` or ``$TIKTALK_SEARCH_BATCH``: ``faiss``, ``numpy``, ``torch``) or, by
    default (``auto``), this machine's measured rule (:func:`retrieval.batch_search.batch_rule`);
    one query never triggers the measurement and stays on FAISS.
    """
    wanted = requested_path(override)
    if on_gpu(index) or flat_vectors(index) is None:
        return "faiss", None
    if wanted != "auto":
        return wanted, None
    if nq < 2:
        return "faiss", None
    rule = batch_rule()
    return rule.path_for(nq), rule.faiss_database_bs


def search(index: faiss.Index, queries: np.ndarray, k: int, *, id_range: tuple[int, int] | None = None,
           single_query_threads: int | None = 1, path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``queries`` (nq, d) -> (scores (nq, k), ids (nq, k)), ties by lower id.

    ``id_range=(lo, hi)`` restricts the search to rows lo..hi-1. On a CPU Flat index a batch
    goes to FAISS or to a chunked GEMM (:func:`retrieval.batch_search.gemm_topk`) as
    :func:`batch_path` decides (``path`` overrides: ``auto``, ``faiss``, ``numpy``,
    ``torch``); both are exact with the same tie rule. Exactness of ties on FAISS: the
    index is asked for more than ``k`` until the k-th score is strictly above the last one
    fetched (or everything was fetched), so a tie that straddles ``k`` is seen whole.
    One query runs on ``single_query_threads`` threads (1 measured fastest: FAISS splits
    work by query, not by database).
    """
    queries = check_vectors(queries, index.d, "queries")
    if k < 1:
        raise UsageError(f"k ({k}) must be at least 1")
    lo, hi = (0, index.ntotal) if id_range is None else id_range
    if not 0 <= lo <= hi <= index.ntotal:
        raise UsageError(f"id_range ({lo}, {hi}) is outside the index's {index.ntotal} rows")
    n = hi - lo
    nq = queries.shape[0]
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    if n == 0 or nq == 0:
        return scores, ids
    chosen, database_bs = batch_path(index, nq, path)
    if chosen != "faiss":
        scores, ids = gemm_topk(queries, flat_vectors(index)[lo:hi], k, engine=chosen)
        ids[ids >= 0] += lo
        return scores, ids
    params = None if id_range is None or (lo, hi) == (0, index.ntotal) else _range_params(index, lo, hi)
    if params is not None and on_gpu(index):
        raise UsageError("per-range search is not supported on a GPU index; search the CPU copy")

    faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES * index.d  # BLAS from 4 queries on
    if database_bs is not None:
        faiss.cvar.distance_compute_blas_database_bs = database_bs
    saved_threads = None
    if nq == 1 and single_query_threads is not None and not on_gpu(index):
        saved_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(single_query_threads)
    try:
        todo = np.arange(nq)
        fetch = min(n, k + 8)
        while todo.size:
            d, i = index.search(queries[todo], fetch, params=params)
            i = i.astype(np.int64, copy=False)
            d = np.where(i < 0, -np.inf, d).astype(np.float32)
            d, i = _sort_rows(d, i)
            kk = min(k, fetch)
            # a row is settled when everything was fetched or its k-th score beats the last fetched
            settled = (fetch >= n) | (d[:, kk - 1] > d[:, fetch - 1]) | (i[:, fetch - 1] < 0)
            scores[todo[settled], :kk] = d[settled, :kk]
            ids[todo[settled], :kk] = i[settled, :kk]
            todo = todo[~settled]
            fetch = min(n, fetch * 2)
    finally:
        if saved_threads is not None:
            faiss.omp_set_num_threads(saved_threads)
    return scores, ids


def search_penalized(index: faiss.Index, queries: np.ndarray, k: int, penalty: np.ndarray, *,
                     id_range: tuple[int, int] | None = None, path: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` by ``score - penalty[row]`` (hub correction, :mod:`retrieval.hubness`), exactly.

    queries (nq, d), penalty (ntotal,) -> (scores (nq, k) = inner product - penalty, ids
    (nq, k)), same order, tie rule and ``-1`` padding as :func:`search`. The index is asked
    for the best ``fetch`` rows by plain score, re-ranked, and asked again (twice as many)
    until the k-th corrected score beats what any row not fetched could reach: its score is
    at most the last fetched score, its penalty at least the range's smallest. Exact for Flat;
    an approximate index (IVF, HNSW) is re-ranked over what its own search returns. A batch
    that :func:`batch_path` (``path``: the override) gives to a GEMM is answered in one
    exact pass: every row's corrected score, then the top ``k`` (same tie rule).
    """
    queries = check_vectors(queries, index.d, "queries")
    penalty = np.asarray(penalty, dtype=np.float32)
    if penalty.shape != (index.ntotal,):
        raise UsageError(f"penalty has shape {penalty.shape}, the index has {index.ntotal} rows")
    if k < 1:
        raise UsageError(f"k ({k}) must be at least 1")
    lo, hi = (0, index.ntotal) if id_range is None else id_range
    if not 0 <= lo <= hi <= index.ntotal:
        raise UsageError(f"id_range ({lo}, {hi}) is outside the index's {index.ntotal} rows")
    n, nq = hi - lo, queries.shape[0]
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    if n <= 0 or nq == 0:
        return scores, ids
    chosen, _ = batch_path(index, nq, path)
    if chosen != "faiss":
        scores, ids = gemm_topk(queries, flat_vectors(index)[lo:hi], k, penalty=penalty[lo:hi], engine=chosen)
        ids[ids >= 0] += lo
        return scores, ids
    floor = float(penalty[lo:hi].min())
    kk = min(k, n)
    todo, fetch = np.arange(nq), min(n, 2 * k + 16)
    while todo.size:
        d, i = search(index, queries[todo], fetch, id_range=id_range, path="faiss")
        last = d[:, -1].astype(np.float64)
        adjusted = np.where(i < 0, -np.inf, d - penalty[np.maximum(i, 0)])
        adjusted, i = _sort_rows(adjusted.astype(np.float32), i)
        # a row not fetched scores at most last - floor: settled when the k-th is strictly above it
        settled = (fetch >= n) | (adjusted[:, kk - 1] > last - floor)
        scores[todo[settled], :kk] = adjusted[settled, :kk]
        ids[todo[settled], :kk] = i[settled, :kk]
        todo = todo[~settled]
        fetch = min(n, fetch * 2)
    return scores, ids


def exact_topk(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The slow obvious reference: float64 scores, then a full stable sort (score desc, id asc).

    Scores are exact in float64, so a tie is a real tie whatever BLAS kernel runs; a float32
    matmul rounds differently per kernel (SkylakeX vs Haswell) and could split a tie. Compare a
    float32 search with it tie-aware (``faiss.contrib.evaluation.check_ref_knn_with_draws``).
    """
    queries, database = check_vectors(queries), check_vectors(database)
    s = queries.astype(np.float64) @ database.astype(np.float64).T  # (nq, n)
    order = np.lexsort((np.broadcast_to(np.arange(s.shape[1]), s.shape), -s), axis=-1)[:, :k]
    scores, ids = np.take_along_axis(s, order, 1), order.astype(np.int64)
    if k > s.shape[1]:
        pad = k - s.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    return scores.astype(np.float32), ids


def recall_at_k(ids: np.ndarray, reference_ids: np.ndarray, k: int) -> float:
    """Mean share of the reference's top-k ids that ``ids``' top-k contains (ANN vs Flat)."""
    hits = [len(set(a[:k]) & set(b[:k]) - {-1}) / max(1, len(set(b[:k]) - {-1})) for a, b in zip(ids, reference_ids)]
    return float(np.mean(hits)) if hits else 0.0


def gemv_topk(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k for a few queries by one BLAS pass over ``database`` (n, d).

    Single-query Flat search is memory bound; BLAS gemv streams the rows at the read
    bandwidth, then ``argpartition`` picks the top k in O(n). Same results and tie rule as
    :func:`search` on a Flat index (everything scoring >= the k-th score is sorted by
    (score desc, id asc) and cut at k).
    """
    scores_all = queries @ database.T  # (nq, n)
    nq, n = scores_all.shape
    kk = min(k, n)
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    for r in range(nq):
        row = scores_all[r]
        part = np.argpartition(-row, kk - 1)[:kk]
        cand = np.flatnonzero(row >= row[part].min())  # the whole tie at the k-th score
        order = np.lexsort((cand, -row[cand].astype(np.float64)))[:kk]
        ids[r, :kk] = cand[order]
        scores[r, :kk] = row[cand[order]]
    return scores, ids
