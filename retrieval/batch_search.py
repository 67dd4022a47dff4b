"""Exact batch search by GEMM, and the measured rule that picks it over FAISS per batch.

A batch of queries against a Flat index is one matrix product and a top-k per row. FAISS
does both in one pass (its BLAS blocks plus heaps); a plain GEMM (numpy's BLAS or torch's)
followed by ``torch.topk`` can be faster, depending on the CPU and its BLAS: on an Intel
Xeon with AVX-512, FAISS Flat took 3.5x as long as torch for 1,000 queries over 20k x 384
(issue 24); on the AMD EPYC of the shared machine FAISS was the faster. So the choice is not
guessed: :func:`batch_rule` measures the three paths once per machine on synthetic data
(:func:`measure_paths`, about a second), turns the timings into a rule
(:func:`rule_from_timings`) and caches it as JSON (:func:`calibration_file`). The override
is ``$TIKTALK_SEARCH_BATCH`` (``faiss``, ``numpy``, ``torch``; ``auto`` or unset: the rule).

Every path returns the same thing: ``scores (nq, k) float32`` and ``ids (nq, k) int64``,
best first, ties broken by the lower id, ``-1`` / ``-inf`` where fewer than ``k`` rows exist
(the conventions of :mod:`retrieval.search`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from tiktalk.errors import FormatError, UsageError

PATHS = ("faiss", "numpy", "torch")  # who computes the batch; numpy / torch name the GEMM engine
GEMM_ENGINES = ("numpy", "torch")
BATCH_ENV = "TIKTALK_SEARCH_BATCH"
CALIBRATION_VERSION = 1
# The score block of one GEMM chunk: big enough that BLAS runs at full speed, small enough to
# stay near the caches; rows are clamped so a huge index still gets a usable GEMM height.
SCORE_BLOCK_BYTES = 32 << 20
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 32, 512
# Calibration: synthetic unit rows of this shape; query counts tried; FAISS database blocks tried.
CALIBRATION_N, CALIBRATION_D = 16_384, 384
CALIBRATION_QUERIES = (2, 4, 16, 64, 256)
CALIBRATION_ROUNDS = 3
FAISS_DATABASE_BS = (1024, 4096, 16384)
# GEMM must beat FAISS by this share to be chosen: within it the timings are noise on a shared
# machine, and FAISS is the path with the longer record.
GEMM_MARGIN = 0.05


# ----------------------------------------------------------------------------- the GEMM path


def flat_vectors(index: faiss.Index) -> np.ndarray | None:
    """A zero-copy (ntotal, d) float32 view of a CPU inner-product Flat index's vectors, or
    None for any other index (IVF, HNSW, SQ, L2, a GPU index). Valid while the index lives
    and nothing is added to it."""
    flat = faiss.downcast_index(index)
    if type(flat) not in (faiss.IndexFlatIP, faiss.IndexFlat) or flat.metric_type != faiss.METRIC_INNER_PRODUCT:
        return None
    if flat.ntotal == 0:
        return np.zeros((0, flat.d), dtype=np.float32)
    return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)


def chunk_rows(n: int) -> int:
    """Queries per GEMM chunk over ``n`` database rows (see :data:`SCORE_BLOCK_BYTES`)."""
    return int(np.clip(SCORE_BLOCK_BYTES // (4 * max(n, 1)), MIN_CHUNK_ROWS, MAX_CHUNK_ROWS))


def gemm_topk(queries: np.ndarray, database: np.ndarray, k: int, *, penalty: np.ndarray | None = None,
              engine: str = "numpy", rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` of ``queries @ database.T - penalty`` by chunked GEMM and ``torch.topk``.

    queries (nq, d) float32, database (n, d) float32, penalty (n,) float32 or None ->
    (scores (nq, k), ids (nq, k)). ``engine`` runs the GEMM (numpy's BLAS or torch's); the
    selection is ``torch.topk`` of ``k + 1`` per row: when the (k+1)-th score is strictly
    below the k-th, the first k are exactly the rows scoring >= the k-th and are ordered by
    (score desc, id asc); otherwise a tie straddles the cut and that row is settled from its
    full score row (every row scoring >= the k-th, sorted, cut at k). ``rows``: queries per
    chunk (default :func:`chunk_rows`).
    """
    import torch

    if engine not in GEMM_ENGINES:
        raise UsageError(f"GEMM engine {engine!r} is not one of {list(GEMM_ENGINES)}")
    nq, n = queries.shape[0], database.shape[0]
    if penalty is not None and penalty.shape != (n,):
        raise UsageError(f"penalty has shape {penalty.shape}, the database has {n} rows")
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    if n == 0 or nq == 0:
        return scores, ids
    kk = min(k, n)
    take = min(n, kk + 1)  # one past the cut shows whether a tie straddles it
    step = rows or chunk_rows(n)
    with warnings.catch_warnings():  # a read-only (memory-mapped) array is only ever read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        db_t = torch.from_numpy(database) if engine == "torch" else None
        pen_t = None if penalty is None else torch.from_numpy(np.ascontiguousarray(penalty, dtype=np.float32))
        for start in range(0, nq, step):
            q = queries[start : start + step]
            if db_t is not None:
                block = torch.from_numpy(q) @ db_t.T  # (c, n)
            else:
                block = torch.from_numpy(q @ database.T)
            if pen_t is not None:
                block -= pen_t
            top = torch.topk(block, take, dim=1)  # sorted, descending
            vals, idx = top.values.numpy(), top.indices.numpy().astype(np.int64)
            block_np = block.numpy()
            order = np.lexsort((idx[:, :kk], -vals[:, :kk].astype(np.float64)), axis=-1)
            out_s, out_i = scores[start : start + len(q)], ids[start : start + len(q)]
            out_s[:, :kk] = np.take_along_axis(vals[:, :kk], order, 1)
            out_i[:, :kk] = np.take_along_axis(idx[:, :kk], order, 1)
            if take > kk:
                for r in np.flatnonzero(vals[:, kk] >= vals[:, kk - 1]):
                    row = block_np[r]
                    cand = np.flatnonzero(row >= vals[r, kk - 1])  # the whole tie at the k-th score
                    best = cand[np.lexsort((cand, -row[cand].astype(np.float64)))[:kk]]
                    out_s[r, :kk], out_i[r, :kk] = row[best], best
    return scores, ids


# ----------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class BatchRule:
    """Which path answers a batch of ``nq`` queries on this machine, and what it was measured on.

    ``gemm_min_queries``: from this many queries on, the GEMM ``engine`` beats FAISS (by
    :data:`GEMM_MARGIN`) at every measured count; None: FAISS at every count.
    ``faiss_database_bs``: FAISS's BLAS database block that measured fastest.
    """

    engine: str
    gemm_min_queries: int | None
    faiss_database_bs: int
    machine: dict = field(default_factory=dict)
    timings_ms: dict = field(default_factory=dict)  # str(nq) -> path -> best ms
    measured_on: dict = field(default_factory=dict)  # n, d, k, rounds, load average, date

    def path_for(self, nq: int) -> str:
        """``faiss`` or the GEMM engine for a batch of ``nq``; one query always stays on FAISS
        (its single-query path runs at 1.06x the memory-read floor)."""
        if nq < 2 or self.gemm_min_queries is None or nq < self.gemm_min_queries:
            return "faiss"
        return self.engine

    def as_dict(self) -> dict:
        return {"version": CALIBRATION_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: object, source: str) -> BatchRule:
        """Parse a stored rule; a malformed one raises FormatError naming ``source`` and the field."""
        if not isinstance(data, dict):
            raise FormatError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if data.get("version") != CALIBRATION_VERSION:
            raise FormatError(f"{source}: field 'version' is {data.get('version')!r}, expected {CALIBRATION_VERSION}")
        if data.get("engine") not in GEMM_ENGINES:
            raise FormatError(f"{source}: field 'engine' is {data.get('engine')!r}, expected one of {list(GEMM_ENGINES)}")
        low = data.get("gemm_min_queries")
        if low is not None and (type(low) is not int or low < 2):
            raise FormatError(f"{source}: field 'gemm_min_queries' is {low!r}, expected null or an integer >= 2")
        bs = data.get("faiss_database_bs")
        if type(bs) is not int or bs < 1:
            raise FormatError(f"{source}: field 'faiss_database_bs' is {bs!r}, expected a positive integer")
        for key in ("machine", "timings_ms", "measured_on"):
            if not isinstance(data.get(key, {}), dict):
                raise FormatError(f"{source}: field {key!r} is not an object")
        return cls(engine=data["engine"], gemm_min_queries=low, faiss_database_bs=bs,
                   machine=data.get("machine", {}), timings_ms=data.get("timings_ms", {}),
                   measured_on=data.get("measured_on", {}))


def rule_from_timings(timings: dict[int, dict[str, float]], faiss_database_bs: int,
                      machine: dict | None = None, measured_on: dict | None = None) -> BatchRule:
    """The rule the measured ``timings`` (query count -> path -> seconds) imply.

    The engine is the faster GEMM engine summed over all counts; ``gemm_min_queries`` is the
    smallest count from which that engine beats FAISS by :data:`GEMM_MARGIN` at every larger
    measured count too (a crossover, so a single lucky point in the middle does not count).
    """
    counts = sorted(timings)
    if not counts:
        raise UsageError("no timings to derive a batch rule from")
    for nq in counts:
        missing = [p for p in PATHS if p not in timings[nq]]
        if missing:
            raise UsageError(f"timings for {nq} queries lack path(s) {missing}")
    engine = min(GEMM_ENGINES, key=lambda e: (sum(timings[nq][e] for nq in counts), GEMM_ENGINES.index(e)))
    low = None
    for nq in reversed(counts):
        if timings[nq][engine] < (1 - GEMM_MARGIN) * timings[nq]["faiss"]:
            low = nq
        else:
            break
    if low is not None:
        low = max(low, 2)
    return BatchRule(engine=engine, gemm_min_queries=low, faiss_database_bs=int(faiss_database_bs),
                     machine=machine or {},
                     timings_ms={str(nq): {p: round(t * 1e3, 3) for p, t in timings[nq].items()} for nq in counts},
                     measured_on=measured_on or {})


def _faiss_topk(index: faiss.Index, queries: np.ndarray, k: int, database_bs: int) -> None:
    """What :func:`retrieval.search.search` does on the FAISS path, for timing: BLAS from 4
    queries on (its threshold), the given database block, ``k + 8`` fetched, then sorted."""
    faiss.cvar.distance_compute_blas_threshold = 4 * index.d
    faiss.cvar.distance_compute_blas_database_bs = database_bs
    d, i = index.search(queries, k + 8)
    np.lexsort((i, -d.astype(np.float64)), axis=-1)


def measure_paths(n: int = CALIBRATION_N, d: int = CALIBRATION_D, counts: tuple[int, ...] = CALIBRATION_QUERIES,
                  k: int = 10, rounds: int = CALIBRATION_ROUNDS, seed: int = 0) -> tuple[dict, int]:
    """Best-of-``rounds`` seconds per (query count, path) on seeded unit rows, and the fastest
    FAISS database block. Paths alternate inside each round, so a burst of other work on a
    shared machine hits them alike. Returns (timings, faiss_database_bs)."""
    rng = np.random.default_rng(seed)
    db = rng.standard_normal((n, d), dtype=np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    queries = db[rng.integers(0, n, max(counts))] + 0.1 * rng.standard_normal((max(counts), d), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(d)
    index.add(db)
    saved = faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_database_bs
    try:
        big = queries[: max(counts)]
        bs_time = {bs: float("inf") for bs in FAISS_DATABASE_BS}
        for _ in range(rounds):
            for bs in FAISS_DATABASE_BS:
                t0 = time.perf_counter()
                _faiss_topk(index, big, k, bs)
                bs_time[bs] = min(bs_time[bs], time.perf_counter() - t0)
        best_bs = min(FAISS_DATABASE_BS, key=lambda bs: bs_time[bs])
        paths = {"faiss": lambda q: _faiss_topk(index, q, k, best_bs),
                 **{e: (lambda q, e=e: gemm_topk(q, db, k, engine=e)) for e in GEMM_ENGINES}}
        for fn in paths.values():  # warm up: first calls page in code and buffers
            fn(queries[:2])
        timings = {nq: {p: float("inf") for p in paths} for nq in counts}
        for _ in range(rounds):
            for nq in counts:
                for name, fn in paths.items():
                    t0 = time.perf_counter()
                    fn(queries[:nq])
                    timings[nq][name] = min(timings[nq][name], time.perf_counter() - t0)
    finally:
        faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_database_bs = saved
    return timings, best_bs


def machine_key() -> dict:
    """What a rule depends on: CPU, usable cores, FAISS / torch threads and library versions."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"cpu": cpu, "cores": cores, "faiss_threads": faiss.omp_get_max_threads(),
            "torch_threads": torch.get_num_threads(),
            "versions": {"faiss": faiss.__version__, "numpy": np.__version__, "torch": torch.__version__}}


def calibration_file(machine: dict | None = None) -> Path:
    """``$TIKTALK_CACHE`` (default ``$TMPDIR/tiktalk-cache``) ``/search-batch-rule-<key>.json``,
    one file per machine key (another thread count is another file)."""
    from tiktalk.io import canonical_json

    machine = machine if machine is not None else machine_key()
    root = Path(os.environ.get("TIKTALK_CACHE", os.path.join(tempfile.gettempdir(), "tiktalk-cache")))
    return root / f"search-batch-rule-{hashlib.sha256(canonical_json(machine).encode()).hexdigest()[:12]}.json"


_RULES: dict[str, BatchRule] = {}  # per process: calibration file -> rule


def batch_rule(recalibrate: bool = False) -> BatchRule:
    """This machine's rule: from this process's memory, else its calibration file, else
    measured now (:func:`measure_paths`) and written atomically (where the cache directory
    cannot be written, the rule lives for this process). ``recalibrate`` measures anew."""
    from tiktalk.io import read_json, write_json

    machine = machine_key()
    file = calibration_file(machine)
    key = str(file)
    if not recalibrate and key in _RULES:
        return _RULES[key]
    if not recalibrate and file.is_file():
        rule = BatchRule.from_dict(read_json(file), str(file))
        if rule.machine == machine:
            _RULES[key] = rule
            return rule
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    timings, bs = measure_paths()
    rule = rule_from_timings(timings, bs, machine, {
        "n": CALIBRATION_N, "d": CALIBRATION_D, "k": 10, "rounds": CALIBRATION_ROUNDS,
        "load_avg_1min": None if load is None else round(load, 2), "unix_time": int(time.time())})
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        write_json(file, rule.as_dict())
    except OSError:  # an unwritable cache costs a measurement per process, not the search
        pass
    _RULES[key] = rule
    return rule


def requested_path(override: str | None = None) -> str:
    """``override`` or ``$TIKTALK_SEARCH_BATCH`` or ``auto``, validated."""
    source = "batch_path"
    if override is None:
        override, source = os.environ.get(BATCH_ENV) or "auto", f"${BATCH_ENV}"
    if override not in ("auto", *PATHS):
        raise UsageError(f"{source} is {override!r}; expected one of {['auto', *PATHS]}")
    return override
