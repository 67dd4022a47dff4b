"""An index opens from any working directory, and each of its files is checked against the
manifest: sha256, and rows / dimension cross-checked, errors naming the file and both numbers."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import faiss
import networkx as nx
import numpy as np
import polars as pl
import pytest

import kg
from retrieval.index import EMB_FILE, HEADS_FILE, HUB_FILE, INDEX_FILE, MANIFEST_FILE, HeadIndex
from tests.cli_contract import expect_error, run_cli
from tiktalk.io import sha256_file


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "idx"
    assert run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32"]).code == 0
    return out


@pytest.fixture
def index_copy(tmp_path: Path, built: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "idx"))


def _edit_manifest(index: Path, **changes) -> dict:
    manifest = json.loads((index / MANIFEST_FILE).read_text(encoding="utf-8"))
    for key, value in changes.items():
        manifest[key] = value
    (index / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def _replace(index: Path, name: str, write) -> None:
    """Rewrite one file and record its new sha256, as a tool that knew the format would."""
    write(index / name)
    manifest = json.loads((index / MANIFEST_FILE).read_text(encoding="utf-8"))
    _edit_manifest(index, files={**manifest["files"], name: sha256_file(index / name)})


def test_kg_path_is_stored_resolved_and_opens_from_another_directory(tmp_path: Path, monkeypatch) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    assert run_cli(["kg", "convert", "sample", "--out", "kg1"]).code == 0
    assert run_cli(["index", "build", "--kg", "kg1", "--out", "idx", "--encoder", "hash:32"]).code == 0
    record = json.loads((work / "idx" / MANIFEST_FILE).read_text(encoding="utf-8"))["kg"]
    assert record["source"] == str((work / "kg1").resolve())
    assert (record["source_given"], record["source_from"]) == ("kg1", "kg_source argument")
    monkeypatch.chdir(elsewhere)
    result = run_cli(["retrieve", "--index", str(work / "idx"), "--json", "周末去爬山"])
    assert result.code == 0, result.err
    assert json.loads(result.out)["heads"]


def test_a_missing_kg_path_says_where_it_came_from(index_copy: Path, tmp_path: Path, monkeypatch) -> None:
    manifest = json.loads((index_copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    _edit_manifest(index_copy, kg={"content_sha256": manifest["kg"]["content_sha256"], "source": "kg1"})
    monkeypatch.chdir(tmp_path)  # an index of an older version, with the path as typed
    expect_error("retrieve", run_cli(["retrieve", "--index", str(index_copy), "hi"]), [],
                 r"idx/manifest\.json: field 'kg\.source' names the KG kg1, which does not exist; it is "
                 r"relative, so it was read from the current directory; pass the KG \(--kg\)")
    assert run_cli(["retrieve", "--index", str(index_copy), "--kg", "sample", "hi"]).code == 0


def test_manifest_holds_every_file_sha256(built: Path) -> None:
    manifest = json.loads((built / MANIFEST_FILE).read_text(encoding="utf-8"))
    files = (INDEX_FILE, HEADS_FILE, EMB_FILE) + ((HUB_FILE,) if "hub_correction" in manifest else ())
    assert manifest["files"] == {name: sha256_file(built / name) for name in files}


def test_embeddings_with_other_row_count(index_copy: Path) -> None:
    emb = np.load(index_copy / EMB_FILE)
    n = emb.shape[0]
    _replace(index_copy, EMB_FILE, lambda p: np.save(p, emb[:-1]))
    expect_error("index", run_cli(["index", "info", str(index_copy)]), [],
                 rf"idx/embeddings\.npy: shape \({n - 1}, 32\), but heads\.parquet has {n} rows "
                 rf"\(expected \({n}, 32\)\)")


def test_embeddings_with_other_dimension(index_copy: Path) -> None:
    emb = np.load(index_copy / EMB_FILE)
    _replace(index_copy, EMB_FILE, lambda p: np.save(p, emb[:, :16].copy()))
    expect_error("index", run_cli(["index", "info", str(index_copy)]), [],
                 r"idx/embeddings\.npy: dimension 16, but the manifest's encoder dimension is 32")


def test_faiss_index_with_other_ntotal(index_copy: Path) -> None:
    emb = np.load(index_copy / EMB_FILE)
    flat = faiss.IndexFlatIP(32)
    flat.add(emb[:10])
    _replace(index_copy, INDEX_FILE, lambda p: faiss.write_index(flat, str(p)))
    expect_error("index", run_cli(["index", "info", str(index_copy)]), [],
                 rf"idx/index\.faiss: ntotal 10, but heads\.parquet has {emb.shape[0]} rows")


def test_faiss_index_with_other_dimension(index_copy: Path) -> None:
    emb = np.load(index_copy / EMB_FILE)
    flat = faiss.IndexFlatIP(16)
    flat.add(np.ascontiguousarray(emb[:, :16]))
    _replace(index_copy, INDEX_FILE, lambda p: faiss.write_index(flat, str(p)))
    expect_error("index", run_cli(["index", "info", str(index_copy)]), [],
                 r"idx/index\.faiss: dimension 16, but the manifest's encoder dimension is 32")


def test_heads_with_other_row_count_than_the_manifest_counts(index_copy: Path) -> None:
    heads = pl.read_parquet(index_copy / HEADS_FILE)
    _replace(index_copy, HEADS_FILE, lambda p: heads.head(heads.height - 1).write_parquet(p))
    expect_error("index", run_cli(["index", "info", str(index_copy)]), [],
                 rf"idx/heads\.parquet: {heads.height - 1} rows, but the manifest .*manifest\.json counts "
                 rf"{heads.height} heads")


@pytest.mark.parametrize(("field", "value", "match"), [
    ("encoder", {"name": "hash:32"}, r"field 'encoder' needs name, fingerprint and a positive dim"),
    ("family_ranges", {"event": [0, "x"]}, r"field 'family_ranges' must map families to \[lo, hi\) rows"),
    ("family_ranges", {"event": [0, 10**6]}, r"field 'family_ranges' reaches row 1000000, but heads\.parquet"),
    ("files", {"other.bin": "00"}, r"field 'files' names an unknown file 'other\.bin'"),
    ("kg", "sample", r"field 'kg' needs a content_sha256"),
])
def test_malformed_manifest_fields(index_copy: Path, field: str, value, match: str) -> None:
    _edit_manifest(index_copy, **{field: value})
    expect_error("index", run_cli(["index", "info", str(index_copy)]), [], match)


def test_trust_pickle_is_accepted_where_it_is_suggested(tmp_path: Path) -> None:
    """index build, retrieve and annotate once told the user to pass a flag they rejected."""
    graph = nx.DiGraph()
    for s, t, ty, w in kg.load_kg("sample").edges.select("source", "target", "type", "weight").iter_rows():
        graph.add_edge(s, t, type=ty, weight=w)
    src = tmp_path / "C3KG.GRAPH"
    src.write_bytes(pickle.dumps(graph, protocol=4))
    idx = tmp_path / "idx"
    build = ["index", "build", "--kg", str(src), "--out", str(idx), "--encoder", "hash:32"]
    expect_error("index", run_cli(build), [idx], r"C3KG\.GRAPH: this is a pickle.*\(CLI: --trust-pickle\)")
    assert run_cli([*build, "--trust-pickle"]).code == 0
    assert HeadIndex.load(idx).manifest["kg"]["source"] == str(src.resolve())
    expect_error("retrieve", run_cli(["retrieve", "--index", str(idx), "hi"]), [], r"--trust-pickle")
    assert run_cli(["retrieve", "--index", str(idx), "--trust-pickle", "周末去爬山"]).code == 0
    data = tmp_path / "d.jsonl"
    data.write_text('{"dialogue_id": "a", "context": ["周末去爬山"]}\n', encoding="utf-8")
    out = tmp_path / "k.parquet"
    result = run_cli(["annotate", "--index", str(idx), "--data", str(data), "--out", str(out), "--trust-pickle",
                      "--json"])
    assert result.code == 0, result.err
    assert pl.read_parquet(out).height == 1
