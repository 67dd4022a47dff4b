"""Fixtures for retrieval tests: the sample KG, a weightless encoder, a built sample index."""

from __future__ import annotations

import numpy as np
import pytest

import kg
from retrieval.encoders import HashEncoder
from retrieval.index import build_head_index


class CountingEncoder(HashEncoder):
    """HashEncoder that counts the texts it encoded (to prove embeddings were reused)."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__(dim=dim)
        self.encoded = 0

    def encode(self, texts, kind="query") -> np.ndarray:
        self.encoded += len(texts)
        return super().encode(texts, kind)


@pytest.fixture(scope="session")
def sample_kg() -> kg.C3KG:
    return kg.load_kg("sample")


@pytest.fixture(scope="session")
def hash_encoder() -> HashEncoder:
    return HashEncoder(dim=32)


@pytest.fixture(scope="session")
def sample_index_dir(tmp_path_factory, sample_kg, hash_encoder):
    # the head text alone: these tests rely on a query equal to a head's text finding it first
    # (passage views are tested in test_views.py and test_hubness.py)
    out = tmp_path_factory.mktemp("index") / "sample-hash"
    build_head_index(sample_kg, hash_encoder, out, kg_source="sample", progress=False, views="text")
    return out


def assert_same_knn(scores, ids, ref_scores, ref_ids, rtol=1e-5) -> None:
    """Equal neighbours up to the order of exact ties (faiss's own tie-aware check)."""
    from faiss.contrib.evaluation import check_ref_knn_with_draws

    check_ref_knn_with_draws(np.asarray(ref_scores, dtype=np.float32), np.asarray(ref_ids),
                             np.asarray(scores, dtype=np.float32), np.asarray(ids), rtol=rtol)
