"""Retrieval scaling: how each FAISS factory's build time, memory, latency and recall grow with N.

Synthetic heads (seeded, d = 384, unit rows) from a Gaussian mixture whose within-cluster
spread lies in a low-dimensional subspace, as sentence embeddings do (uniform noise is the
worst case for ANN and says little about real heads); queries are fresh draws from the
same mixture. For each N (quick: 10k, 50k; full: 10k, 100k, 1M) exact Flat search of the
1,000 queries runs first and is checked against the numpy reference (``exact_topk``) on a
few queries; it is the ground truth for every other factory's recall@10. Then per factory
(Flat, HNSW32, IVF{nlist},Flat, IVF{nlist},PQ48np with nlist = 4 sqrt(N) capped at 2048;
``np``: no polysemous training, which the plain ``PQ48`` factory string turns on and which
took 160 s of a 165 s IVF400,PQ48 build at N = 10k here; it only renumbers each codebook's
centroids for a Hamming pre-filter (``polysemous_ht``) that is off, so search is the same):

- build seconds (IVF: k-means on a 40-per-list sample, then add everything);
- memory: bytes of ``faiss.serialize_index`` (what the index directory stores) and the
  process RSS growth while building (allocator reuse makes it approximate);
- single-query p50 / p99 ms through ``retrieval.search.search`` (1 thread, the
  single-query path) and batch-of-1,000 queries/s on the configured threads;
- recall@10 against Flat, with the search parameters used (library defaults: nprobe 32,
  efSearch 128).

HNSW beyond 100k is built only when its build time, extrapolated from the largest N built
(N log N), stays under 3 minutes; otherwise it is listed under ``skipped`` with the reason.

Ratios: ``hnsw_speedup_vs_flat_at_<N>``, ``ivf_speedup_vs_flat_at_<N>``,
``ivfpq_speedup_vs_flat_at_<N>`` (single-query p50, Flat / factory),
``memory_ratio_pq_vs_flat_at_<N>`` (serialized bytes, PQ / Flat) and
``recall_at_10_<factory>_at_<N>``.

    TIKTALK_BENCH_QUICK=1 .venv/bin/pytest benchmarks/bench_scaling.py --benchmark-enable -m ""
    (or: tiktalk bench scaling [--quick]); results in $TIKTALK_BENCH_OUT (default benchmarks/results/)
"""

from __future__ import annotations

import math
import os

import faiss
import numpy as np
import pytest

from benchmarks.common import best_time, is_quick, pyplot, save_plot, write_result
from retrieval.search import (
    SearchParams,
    apply_params,
    build_index,
    configure_threads,
    exact_topk,
    make_index,
    recall_at_k,
    search,
)

QUICK = is_quick()
SEED = 0
D = 384
K = 10
SIZES = [10_000, 50_000] if QUICK else [10_000, 100_000, 1_000_000]
N_BATCH = 1000  # queries per batch, also the recall set
N_CHECK = 8  # queries checked against the numpy reference (a full sort over N each)
NLIST_CAP = 2048  # k-means with more lists on 1M rows takes minutes on one thread
TRAIN_PER_LIST = 40  # FAISS warns below 39 training points per list
HNSW_ALWAYS_UP_TO = 100_000
HNSW_BUILD_LIMIT_S = 180.0
PARAMS = SearchParams()  # the library's defaults, stored in every index manifest
LABELS = {"Flat": "flat", "HNSW32": "hnsw32", "IVF,Flat": "ivf_flat", "IVF,PQ48": "ivf_pq48"}
STYLES = [{"marker": "o", "linestyle": "--"}, {"marker": "s"}, {"marker": "^"}, {"marker": "D"}]  # Flat and IVF,Flat overlap in size
RESULTS: dict[int, dict[str, dict]] = {}  # N -> factory label -> row
SKIPPED: list[dict] = []


def nlist_for(n: int) -> int:
    """The usual rule of thumb, ~4 sqrt(N) lists, capped so k-means fits the time budget."""
    return min(NLIST_CAP, int(4 * math.sqrt(n)))


def n_label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def mixture_rows(n: int, d: int, seed: int, stream: int = 0, clusters: int = 1024, latent: int = 48,
                 spread: float = 0.5, noise: float = 0.1, chunk: int = 10_000) -> np.ndarray:
    """(n, d) float32 unit rows: ``clusters`` centres (fixed by ``seed``), spread along a shared
    ``latent``-dim subspace plus a little isotropic noise. Rows come in whole chunks seeded by
    (seed, stream, chunk number), so the first m rows are the same for every n >= m (the sizes
    are nested) and another ``stream`` draws fresh points from the same mixture (queries)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d), dtype=np.float32)
    basis = rng.standard_normal((latent, d), dtype=np.float32) / np.sqrt(latent)  # z @ basis: unit variance / coord
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        r = np.random.default_rng([seed, stream, start // chunk])
        x = centres[r.integers(0, clusters, chunk)]  # (chunk, d)
        x += spread * (r.standard_normal((chunk, latent), dtype=np.float32) @ basis)
        x += noise * r.standard_normal((chunk, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + chunk] = x[: n - start]
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_trained(db: np.ndarray, factory: str, n_train: int, seed: int) -> faiss.Index:
    """``build_index``'s steps (make_index, seeded k-means, add, apply_params) with training
    on a random sample of ``n_train`` rows instead of all of them."""
    rng = np.random.default_rng(seed)
    sample = db[np.sort(rng.choice(len(db), size=n_train, replace=False))]
    index = make_index(factory, db.shape[1], n_train=n_train)
    faiss.try_extract_index_ivf(index).cp.seed = seed
    index.train(sample)
    index.add(db)
    apply_params(index, PARAMS)
    return index


def single_query_ms(index: faiss.Index, queries: np.ndarray) -> list[float]:
    search(index, queries[:1], K)  # warm up (page in, allocate)
    return [best_time(lambda q=q: search(index, q[None], K))[0] * 1e3 for q in queries]


def batch_seconds(index: faiss.Index, queries: np.ndarray, first: float | None = None) -> float:
    """Best of up to 3 runs, stopping once one took over 2 s (the big Flat batches)."""
    times = [] if first is None else [first]
    while len(times) < 3 and (not times or min(times) < 2.0):
        times.append(best_time(lambda: search(index, queries, K))[0])
    return min(times)


def measure(index: faiss.Index, build_s: float, rss_delta: int, queries: np.ndarray,
            single: np.ndarray, reference: np.ndarray, params: dict, batch_first: float | None = None,
            batch_ids: np.ndarray | None = None) -> dict:
    ms = single_query_ms(index, single)
    t_batch = batch_seconds(index, queries, batch_first)
    ids = batch_ids if batch_ids is not None else search(index, queries, K)[1]
    return {
        "build_s": round(build_s, 3),
        "serialized_bytes": int(faiss.serialize_index(index).size),
        "rss_delta_bytes": int(rss_delta),
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "single_queries": len(ms),
        "batch_qps": round(len(queries) / t_batch, 1),
        "recall_at_10": round(recall_at_k(ids, reference, K), 4),
        "params": params,
    }


def hnsw_plan(n: int) -> tuple[bool, float | None]:
    """Build HNSW at ``n``? Always up to 100k; beyond, only if the N log N extrapolation
    from the largest N built so far stays under the limit. Returns (build, extrapolated s)."""
    if n <= HNSW_ALWAYS_UP_TO:
        return True, None
    built = [(m, rows["hnsw32"]["build_s"]) for m, rows in RESULTS.items() if "hnsw32" in rows]
    if not built:
        return False, None
    m, t = max(built)
    estimate = t * (n * math.log(n)) / (m * math.log(m))
    return estimate < HNSW_BUILD_LIMIT_S, round(estimate, 1)


@pytest.fixture(scope="module")
def data():
    threads = configure_threads()
    db = mixture_rows(max(SIZES), D, SEED)
    queries = mixture_rows(N_BATCH, D, SEED, stream=1)  # fresh draws from the same mixture
    return {"threads": threads, "db": db, "queries": queries}


@pytest.fixture(scope="module", autouse=True)
def _write_at_end():
    yield
    if not RESULTS:
        return
    ratios: dict[str, float] = {}
    for n, rows in sorted(RESULTS.items()):
        at = n_label(n)
        flat = rows["flat"]
        for key, label in (("hnsw", "hnsw32"), ("ivf", "ivf_flat"), ("ivfpq", "ivf_pq48")):
            if label in rows:
                ratios[f"{key}_speedup_vs_flat_at_{at}"] = flat["p50_ms"] / rows[label]["p50_ms"]
        if "ivf_pq48" in rows:
            ratios[f"memory_ratio_pq_vs_flat_at_{at}"] = rows["ivf_pq48"]["serialized_bytes"] / flat["serialized_bytes"]
        for label, row in rows.items():
            if label != "flat":
                ratios[f"recall_at_10_{label}_at_{at}"] = row["recall_at_10"]
    data = {
        "d": D, "k": K, "batch_queries": N_BATCH, "sizes": SIZES, "threads": faiss.omp_get_max_threads(),
        "single_query_threads": 1, "search_params": PARAMS.as_dict(),
        "nlist": {str(n): nlist_for(n) for n in SIZES}, "train_per_list": TRAIN_PER_LIST,
        "pq_factory_note": "PQ48np = PQ48 without polysemous training (the factory default), which only a "
                           "polysemous_ht Hamming filter uses; it cost ~160 s per build at any N on 1 thread",
        "data": "Gaussian mixture: 1024 centres, spread in a 48-dim subspace, unit rows; queries from the same mixture",
        "results": {str(n): rows for n, rows in sorted(RESULTS.items())},
        "skipped": SKIPPED,
    }
    plots = [_plot_vs_n("p50_ms", "single-query p50 (ms, 1 thread)", "scaling_latency_vs_n.png"),
             _plot_vs_n("serialized_bytes", "index size (bytes, serialized)", "scaling_memory_vs_n.png"),
             _plot_vs_n("build_s", "build time (s)", "scaling_build_vs_n.png"),
             _plot_recall_latency()]
    write_result("scaling", ratios, data, plots)


def _series(label: str, key: str) -> tuple[list[int], list[float]]:
    points = [(n, rows[label][key]) for n, rows in sorted(RESULTS.items()) if label in rows]
    return [p[0] for p in points], [p[1] for p in points]


def _plot_vs_n(key: str, ylabel: str, name: str) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, style in zip(LABELS.values(), STYLES):
        ns, ys = _series(label, key)
        if ns:
            ax.plot(ns, ys, label=label, **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"N heads (d = {D})")
    ax.set_ylabel(ylabel)
    ax.set_title(f"retrieval scaling: {ylabel.split(' (')[0]} vs N")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return save_plot(fig, name, dpi=120)


def _plot_recall_latency() -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, style in zip(LABELS.values(), STYLES):
        ns, lat = _series(label, "p50_ms")
        _, rec = _series(label, "recall_at_10")
        if ns:
            ax.plot(lat, rec, label=label, **style)
            for n, x, y in zip(ns, lat, rec):
                ax.annotate(n_label(n), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("single-query p50 (ms, 1 thread)")
    ax.set_ylabel("recall@10 vs Flat")
    ax.set_title(f"recall vs latency (nprobe {PARAMS.nprobe}, efSearch {PARAMS.ef_search})")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return save_plot(fig, "scaling_recall_vs_latency.png", dpi=120)


@pytest.mark.parametrize("n", SIZES, ids=[n_label(n) for n in SIZES])
def test_scaling(benchmark, data, n):
    db = data["db"][:n]  # a prefix view: the sizes are nested
    queries = data["queries"]
    single = queries[: 200 if n <= 100_000 else 50]  # a 1M Flat query scans 1.5 GB
    rows: dict[str, dict] = {}
    RESULTS[n] = rows

    # the reference first: exact Flat search of every query, checked against numpy
    rss0 = rss_bytes()
    t_build, flat = best_time(lambda: build_index(db, "Flat", PARAMS, use_gpu=False))
    rss_flat = rss_bytes() - rss0
    benchmark.extra_info.update({"n": n, "d": D, "queries": N_BATCH})
    # pytest-benchmark records this run; timed here too, as stats are absent when disabled
    t_first, (_scores, reference) = best_time(
        lambda: benchmark.pedantic(search, args=(flat, queries, K), rounds=1, iterations=1))
    np.testing.assert_array_equal(reference[:N_CHECK], exact_topk(queries[:N_CHECK], db, K)[1])
    rows["flat"] = {"factory": "Flat", **measure(flat, t_build, rss_flat, queries, single, reference, {},
                                                 batch_first=t_first, batch_ids=reference)}
    flat = None  # free it (1.5 GB at 1M) before the other builds

    nlist = nlist_for(n)
    n_train = min(n, TRAIN_PER_LIST * nlist)
    builders = {
        "hnsw32": ("HNSW32", lambda: build_index(db, "HNSW32", PARAMS, use_gpu=False),
                   {"ef_search": PARAMS.ef_search, "ef_construction": 40}),
        "ivf_flat": (f"IVF{nlist},Flat", lambda: build_trained(db, f"IVF{nlist},Flat", n_train, SEED),
                     {"nlist": nlist, "nprobe": PARAMS.nprobe, "train": n_train}),
        "ivf_pq48": (f"IVF{nlist},PQ48np", lambda: build_trained(db, f"IVF{nlist},PQ48np", n_train, SEED),
                     {"nlist": nlist, "nprobe": PARAMS.nprobe, "train": n_train}),
    }
    for label, (factory, build, params) in builders.items():
        if label == "hnsw32":
            ok, estimate = hnsw_plan(n)
            if not ok:
                SKIPPED.append({"factory": factory, "n": n, "extrapolated_build_s": estimate,
                                "reason": f"HNSW build at this N, extrapolated (N log N) from the largest N built, "
                                          f"is {estimate} s > {HNSW_BUILD_LIMIT_S:.0f} s on "
                                          f"{faiss.omp_get_max_threads()} thread(s)"})
                continue
        rss0 = rss_bytes()
        t_build, index = best_time(build)
        rss_delta = rss_bytes() - rss0
        rows[label] = {"factory": factory, **measure(index, t_build, rss_delta, queries, single, reference, params)}
        del index

    assert rows["flat"]["recall_at_10"] == 1.0
    # sanity floors: a broken build (wrong metric, untrained lists) falls far below these
    if "hnsw32" in rows:
        assert rows["hnsw32"]["recall_at_10"] >= 0.8, rows["hnsw32"]
    assert rows["ivf_flat"]["recall_at_10"] >= 0.5, rows["ivf_flat"]
    assert rows["ivf_pq48"]["serialized_bytes"] < rows["flat"]["serialized_bytes"] / 4, rows["ivf_pq48"]
