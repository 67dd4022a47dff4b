"""GPU paths, run only where FAISS sees a GPU (faiss-gpu installed and a device present)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from retrieval.search import build_index, exact_topk, search, to_gpu

pytestmark = pytest.mark.skipif(
    faiss.get_num_gpus() == 0, reason="FAISS sees no GPU here (faiss-cpu, or no device): the GPU path is not testable"
)


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_gpu_flat_equals_cpu_flat_and_brute_force() -> None:
    db, queries = _unit(20_000, 384, 0), _unit(64, 384, 1)
    cpu = build_index(db, "Flat", use_gpu=False)
    gpu = to_gpu(build_index(db, "Flat", use_gpu=False))
    assert type(gpu).__name__.startswith("Gpu")
    cpu_scores, cpu_ids = search(cpu, queries, 10)
    gpu_scores, gpu_ids = search(gpu, queries, 10)
    ref_scores, ref_ids = exact_topk(queries, db, 10)
    np.testing.assert_array_equal(gpu_ids, cpu_ids)
    np.testing.assert_array_equal(gpu_ids, ref_ids)
    np.testing.assert_allclose(gpu_scores, cpu_scores, atol=1e-4)
    np.testing.assert_allclose(gpu_scores, ref_scores, atol=1e-4)


def test_gpu_built_ivf_is_written_as_a_cpu_index_with_good_recall() -> None:
    db, queries = _unit(20_000, 64, 2), _unit(64, 64, 3)
    index = build_index(db, "IVF64,Flat")  # trains and adds on the GPU, copied back
    assert not type(index).__name__.startswith("Gpu")
    faiss.extract_index_ivf(index).nprobe = 64  # every list: exact
    _, ids = search(index, queries, 10)
    np.testing.assert_array_equal(ids, exact_topk(queries, db, 10)[1])
