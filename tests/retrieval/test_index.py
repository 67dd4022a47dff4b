"""Head index directory: contents, round trip, embedding reuse, refusals, corrupt files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

from retrieval.encoders import HashEncoder
from retrieval.index import (
    HeadIndex,
    IndexFileError,
    IndexMismatchError,
    build_head_index,
    head_table,
)
from retrieval.search import exact_topk
from retrieval.views import PassageViews

from .conftest import CountingEncoder, assert_same_knn


def test_head_table_kinds_and_families(sample_kg):
    table = head_table(sample_kg)
    counts = dict(table.group_by("kind").len().iter_rows())
    assert counts == {k: int((sample_kg.nodes["kind"] == k).sum()) for k in ("event-head", "phrase-head", "entity", "emotion")}
    # rows grouped by family in canonical order, so each family is one id range
    fams = table["family"].to_list()
    assert fams == sorted(fams, key=["event", "concept", "emotion"].index)
    assert set(table.filter(pl.col("kind") == "entity")["family"]) == {"concept"}
    only_events = head_table(sample_kg, "event")
    assert set(only_events["kind"]) == {"event-head"} and only_events.height == counts["event-head"]
    with pytest.raises(ValueError, match=r"kinds \['events'\]: each must be one of"):
        head_table(sample_kg, "events")


def test_round_trip(sample_index_dir, sample_kg, hash_encoder):
    index = HeadIndex.load(sample_index_dir, encoder=hash_encoder, kg_sha256=sample_kg.content_sha256)
    assert len(index) == head_table(sample_kg).height
    np.testing.assert_array_equal(index.heads["id"].to_numpy(), head_table(sample_kg)["id"].to_numpy())
    fresh = hash_encoder.encode(index.heads["text"].to_list(), kind="passage")
    np.testing.assert_allclose(np.asarray(index.embeddings), fresh, atol=1e-6)
    queries = hash_encoder.encode(["这披萨好香", "我家猫又拆家了"])
    scores, ids = index.search(queries, 5)
    assert_same_knn(scores, ids, *exact_topk(queries, fresh, 5))
    m = index.manifest
    assert m["encoder"] == {"name": "hash:32", "fingerprint": hash_encoder.fingerprint, "dim": 32}
    assert m["kg"]["source"] == "sample" and m["factory"] == "Flat"
    assert {"faiss", "numpy", "polars", "python"} <= set(m["versions"])


def test_per_family_search_stays_in_family(sample_index_dir, hash_encoder):
    index = HeadIndex.load(sample_index_dir)
    q = hash_encoder.encode(["好开心啊"])
    for family, (lo, hi) in index.families.items():
        scores, ids = index.search(q, 4, family=family)
        assert ((ids >= lo) & (ids < hi)).all()
        assert set(index.heads[ids[0].tolist()]["family"]) == {family}
        ref_scores, ref_ids = exact_topk(q, np.asarray(index.embeddings[lo:hi]), 4)
        assert_same_knn(scores, ids, ref_scores, ref_ids + lo)
    with pytest.raises(ValueError, match=r"family 'weather' is not in this index"):
        index.search(q, 1, family="weather")


def test_other_factory_reuses_embeddings(tmp_path, sample_kg):
    encoder = CountingEncoder(dim=32)
    out = tmp_path / "idx"
    first = build_head_index(sample_kg, encoder, out, progress=False)
    encoded = encoder.encoded
    views = PassageViews.parse(None)
    distinct = {t for texts in views.texts(sample_kg, head_table(sample_kg)).values() for t in texts}
    assert encoded == len(distinct) and first.manifest["reused_embeddings"] is False  # each distinct text once
    second = build_head_index(sample_kg, encoder, out, factory="HNSW32", overwrite=True, progress=False)
    assert encoder.encoded == encoded, "a new factory must not re-encode"
    assert second.manifest["reused_embeddings"] is True and second.manifest["factory"] == "HNSW32"
    np.testing.assert_array_equal(np.asarray(HeadIndex.load(out).embeddings), np.asarray(first.embeddings))
    # other views must re-encode, and so must another encoder (other fingerprint)
    plain = build_head_index(sample_kg, encoder, tmp_path / "plain", reuse_from=out, views="text", progress=False)
    assert plain.manifest["reused_embeddings"] is False and plain.manifest["views"] == {"text": 1.0}
    assert encoder.encoded == encoded + len(first)
    build_head_index(sample_kg, HashEncoder(dim=32), tmp_path / "other", reuse_from=out, progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        build_head_index(sample_kg, encoder, out, progress=False)


def test_mismatch_refusals_name_both_values(sample_index_dir, hash_encoder):
    fp = hash_encoder.fingerprint
    other_dim = HashEncoder(dim=48)
    with pytest.raises(IndexMismatchError, match=r"index dimension 32 \(hash:32\) differs from encoder hash:48's dimension 48"):
        HeadIndex.load(sample_index_dir, encoder=other_dim)

    class Renamed(HashEncoder):
        @property
        def fingerprint(self) -> str:
            return "f" * 64

    with pytest.raises(IndexMismatchError, match=rf"fingerprint {fp} \(hash:32\).*has f{{64}}"):
        HeadIndex.load(sample_index_dir, encoder=Renamed(dim=32))
    with pytest.raises(IndexMismatchError, match=r"built from KG [0-9a-f]{64}, the KG in use is abc123"):
        HeadIndex.load(sample_index_dir, kg_sha256="abc123")


@pytest.fixture
def index_copy(tmp_path, sample_index_dir):
    dst = tmp_path / "copy"
    shutil.copytree(sample_index_dir, dst)
    return dst


def test_missing_file(index_copy):
    (index_copy / "heads.parquet").unlink()
    with pytest.raises(IndexFileError, match=r"heads.parquet is missing"):
        HeadIndex.load(index_copy)


def test_corrupt_embeddings_fail_checksum(index_copy):
    emb = np.load(index_copy / "embeddings.npy")
    emb[0, 0] += 1
    np.save(index_copy / "embeddings.npy", emb)
    with pytest.raises(IndexFileError, match=r"embeddings.npy: sha256 [0-9a-f]{64} differs from the manifest's"):
        HeadIndex.load(index_copy)


def test_truncated_faiss_file(index_copy):
    data = (index_copy / "index.faiss").read_bytes()
    (index_copy / "index.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFileError, match=r"index.faiss: sha256"):
        HeadIndex.load(index_copy)
    with pytest.raises(IndexFileError, match=r"index.faiss: FAISS cannot read it"):
        HeadIndex.load(index_copy, verify=False)


def test_bad_manifest(index_copy):
    (index_copy / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexFileError, match=r"manifest.json:1: not valid JSON"):
        HeadIndex.load(index_copy)
    (index_copy / "manifest.json").write_text(json.dumps({"format_version": 1}), encoding="utf-8")
    with pytest.raises(IndexFileError, match=r"field 'encoder' is missing"):
        HeadIndex.load(index_copy)


def test_failed_build_leaves_nothing(tmp_path, sample_kg):
    with pytest.raises(ValueError, match=r"needs at least 4096 training vectors"):
        build_head_index(sample_kg, HashEncoder(dim=32), tmp_path / "ivf", factory="IVF4096,Flat", progress=False)
    assert list(tmp_path.iterdir()) == []
