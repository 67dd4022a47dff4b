"""Issue 22.2, 22.3, 22.5 and 22.7: checks that check, inputs never destroyed, no hangs on
FIFOs, lock names within 255 bytes. Each case was a silent wrong result, a lost input, a
hang or a traceback; now it is one line with exit 2 (or a correct result)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from retrieval.index import HUB_FILE, INDEX_FILE, MANIFEST_FILE, HeadIndex
from tests.cli_contract import expect_error, run_cli
from tests.tamper import reseal_index
from tiktalk.dataset import load_dataset, sample_dir
from tiktalk.io import output_lock, sibling_stem


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "idx"
    result = run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32", "--json"])
    assert result.code == 0, result.err
    return out


@pytest.fixture
def index_copy(tmp_path: Path, built: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "idx"))


def _manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))


def _write_manifest(path: Path, manifest: dict) -> None:
    (path / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")


# ----------------------------------------------------------------------------- index manifest


def test_a_deleted_files_key_does_not_switch_the_check_off(index_copy):
    manifest = _manifest(index_copy)
    del manifest["files"][INDEX_FILE]
    _write_manifest(index_copy, manifest)
    with pytest.raises(ValueError, match=r"field 'files' lacks the sha256 of \['index.faiss'\]"):
        HeadIndex.load(index_copy, use_gpu=False)


def test_hub_file_must_be_the_index_own(index_copy, tmp_path):
    manifest = _manifest(index_copy)
    outside = tmp_path / "elsewhere.npy"
    np.save(outside, np.zeros(len(pl.read_parquet(index_copy / "heads.parquet")), np.float32))
    for name in (str(outside), "../elsewhere.npy"):
        _write_manifest(index_copy, {**manifest, "hub_correction": {**manifest["hub_correction"], "file": name}})
        with pytest.raises(ValueError, match=r"field 'hub_correction' must name its file 'hub_penalty.npy'"):
            HeadIndex.load(index_copy, use_gpu=False)


def test_nan_hub_penalty_with_a_matching_sha_is_refused(index_copy):
    penalty = np.load(index_copy / HUB_FILE)
    penalty[5] = np.nan
    np.save(index_copy / HUB_FILE, penalty)
    reseal_index(index_copy)
    with pytest.raises(ValueError, match=r"hub_penalty.npy: hub penalty of row 5 is nan"):
        HeadIndex.load(index_copy, use_gpu=False)


def test_overlapping_family_ranges_are_refused(index_copy):
    manifest = _manifest(index_copy)
    ranges = manifest["family_ranges"]
    first, second = sorted(ranges, key=lambda f: ranges[f][0])[:2]
    ranges[second] = [ranges[first][0], ranges[second][1]]
    _write_manifest(index_copy, manifest)
    with pytest.raises(ValueError, match=r"field 'family_ranges' overlap"):
        HeadIndex.load(index_copy, use_gpu=False)


def test_family_ranges_must_be_the_family_rows(index_copy):
    manifest = _manifest(index_copy)
    ranges = manifest["family_ranges"]
    family = min(ranges, key=lambda f: ranges[f][0])
    ranges[family] = [ranges[family][0], ranges[family][1] - 1]
    _write_manifest(index_copy, manifest)
    with pytest.raises(ValueError, match=rf"gives {family} rows .* not exactly the {family} rows"):
        HeadIndex.load(index_copy, use_gpu=False)


# ----------------------------------------------------------------------------- dataset and KG


def test_an_edited_table_fails_validate_and_train_resume(tmp_path):
    data = Path(shutil.copytree(sample_dir(), tmp_path / "ds"))
    text = (data / "dialogues.jsonl").read_text(encoding="utf-8")
    (data / "dialogues.jsonl").write_text(text.replace("哈", "呵"), encoding="utf-8")
    expect_error("data validate", run_cli(["data", "validate", str(data)]),
                 [], r"field 'tables.dialogues.sha256': dialogues.jsonl has sha256 .* edited after the build")
    with pytest.raises(ValueError, match=r"tables.dialogues.sha256"):
        load_dataset(data)  # what `train` and `train --resume` load the data with


def test_manifest_table_paths_stay_inside_the_dataset(tmp_path):
    data = Path(shutil.copytree(sample_dir(), tmp_path / "ds"))
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    for bad in (str(data / "dialogues.jsonl"), "../ds/dialogues.jsonl"):
        manifest["tables"]["dialogues"]["file"] = bad
        (data / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        with pytest.raises(ValueError, match=r"field 'tables.dialogues.file': file must be a relative path inside"):
            load_dataset(data)


def test_non_finite_feature_tensors_are_an_import_error(tmp_path):
    from safetensors.numpy import save_file

    feats = tmp_path / "feats"
    feats.mkdir()
    frames = np.ones((3, 2048), np.float32)
    frames[1, 7] = np.nan
    save_file({"v1": frames}, str(feats / "frames.safetensors"))
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"dialogue_id": "d1", "video_id": "v1", "context": ["你好"], "response": "好",
                               "split": "train"}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    expect_error("data import", run_cli(["data", "import", str(src), "--out", str(out), "--features", str(feats),
                                         "--allow-empty-split"]),
                 [out], r"frames.safetensors: field 'v1': frames tensor holds a non-finite value at \(1, 7\)")


def test_dangling_edges_and_negative_weights_with_a_matching_sha_are_refused(tmp_path):
    import hashlib

    kg_dir = tmp_path / "kg"
    assert run_cli(["kg", "convert", "sample", "--out", str(kg_dir)]).code == 0
    original = pl.read_parquet(kg_dir / "edges.parquet")
    cases = [
        (original.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("nowhere"))
                               .otherwise(pl.col("target")).alias("target")),
         r"field 'target': edge target is not a node of nodes.parquet \(1 dangling edges\)"),
        (original.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(-5).otherwise(pl.col("weight"))
                               .cast(pl.Int64).alias("weight")),
         r"field 'weight': negative edge weight"),
    ]
    manifest = json.loads((kg_dir / "manifest.json").read_text(encoding="utf-8"))
    for table, pattern in cases:
        table.write_parquet(kg_dir / "edges.parquet")
        manifest["tables"]["edges.parquet"] = hashlib.sha256((kg_dir / "edges.parquet").read_bytes()).hexdigest()
        (kg_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        expect_error("kg stats", run_cli(["kg", "stats", str(kg_dir)]), [], pattern)


# ----------------------------------------------------------------------------- inputs kept


def test_kg_convert_onto_its_own_source_is_refused_and_keeps_it(tmp_path):
    src = Path(shutil.copytree(Path(__file__).resolve().parents[2] / "kg" / "data" / "sample", tmp_path / "rel"))
    before = sorted(p.name for p in src.iterdir())
    for out in (src, src / "sub", tmp_path):
        expect_error("kg convert", run_cli(["kg", "convert", str(src), "--out", str(out), "--overwrite"]), [],
                     r"--out .* (is|contains|lies inside) the input SRC")
    assert sorted(p.name for p in src.iterdir()) == before


def test_annotate_onto_its_own_data_is_refused_and_keeps_it(tmp_path, built):
    data = tmp_path / "ctx.jsonl"
    data.write_text(json.dumps({"dialogue_id": "d", "context": ["你好"]}) + "\n", encoding="utf-8")
    before = data.read_bytes()
    expect_error("annotate", run_cli(["annotate", "--index", str(built), "--data", str(data), "--out", str(data),
                                      "--overwrite"]), [], r"--out .*ctx.jsonl is the input --data")
    assert data.read_bytes() == before


# ----------------------------------------------------------------------------- FIFOs


@pytest.mark.parametrize("argv", [
    ["kg", "convert", "{fifo_tsv}", "--out", "{tmp}/o"],
    ["kg", "stats", "{fifo_tsv}"],
    ["kg", "convert", "{fifo_dir}", "--out", "{tmp}/o"],
    ["data", "import", "{fifo_jsonl}", "--out", "{tmp}/o"],
    ["evaluate", "--predictions", "{fifo_jsonl}", "--references", "{fifo_jsonl}", "--no-meteor"],
])
def test_fifos_are_refused_at_once_naming_the_path(tmp_path, argv):
    fifo_dir = tmp_path / "rel"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "ATOMIC_Chinese.tsv")
    os.mkfifo(tmp_path / "x.jsonl")
    names = {"fifo_tsv": str(fifo_dir / "ATOMIC_Chinese.tsv"), "fifo_dir": str(fifo_dir),
             "fifo_jsonl": str(tmp_path / "x.jsonl"), "tmp": str(tmp_path)}
    argv = [a.format(**names) for a in argv]
    result = run_cli(argv)  # a hang here is the failure (the suite's timeout)
    command = argv[0] if argv[0] == "evaluate" else f"{argv[0]} {argv[1]}"
    expect_error(command, result, [], r"(ATOMIC_Chinese.tsv|x.jsonl).* is a FIFO, not a regular file")


# ----------------------------------------------------------------------------- locks


def test_a_legal_250_character_output_gets_a_lock_within_255_bytes(tmp_path):
    out = tmp_path / ("k" * 250)
    with output_lock(out):
        names = [p.name for p in tmp_path.iterdir()]
    assert names and all(len(n.encode()) <= 255 for n in names)
    assert sibling_stem("a" * 250) != sibling_stem("a" * 249 + "b")
    result = run_cli(["kg", "convert", "sample", "--out", str(out)])
    assert result.code == 0, result.err
    assert (out / "manifest.json").is_file()


def test_data_import_takes_the_output_lock(tmp_path):
    out = tmp_path / "ds"
    with output_lock(out):
        result = run_cli(["data", "import", str(tmp_path / "x.jsonl"), "--out", str(out)])
    expect_error("data import", result, [out], r"is being written by another process|already locked by this process")
