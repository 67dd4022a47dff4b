"""The dataset schema, loader, round trips, error messages, the shipped sample and LCCC."""

from __future__ import annotations

import json
import runpy
import shutil
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import shared_path
from tests.tamper import reseal_dataset
from tiktalk.build import build_dataset
from tiktalk.commands.main import main
from tiktalk.dataset import (
    DIALOGUE_SCHEMA,
    SCHEMA_VERSION,
    VIDEO_SCHEMA,
    DatasetFormatError,
    TikTalkDataset,
    from_rows,
    load_dataset,
    read_table,
    sample_dir,
    sample_raw_dir,
    write_dataset,
)
from tiktalk.importers.lccc import load_lccc
from tiktalk.types import DialogueExample


@pytest.fixture(scope="module")
def sample() -> TikTalkDataset:
    return load_dataset("sample")


# ---------------------------------------------------------------------------- the sample


def test_sample_api_columns_and_counts(sample):
    assert sample.root == sample_dir()
    assert dict(sample.videos.schema) == VIDEO_SCHEMA
    assert dict(sample.dialogues.schema) == DIALOGUE_SCHEMA
    assert sample.manifest["schema_version"] == SCHEMA_VERSION
    assert sample.videos.height == 28 and sample.dialogues.height == 161
    counts = {s: sample.split(s).dialogues.height for s in ("train", "val", "test")}
    assert counts == {"train": 147, "val": 7, "test": 7}
    for s in ("val", "test"):
        part = sample.split(s)
        assert part.videos.height >= 4
        refs = part.dialogues["references"].to_list()
        assert all(len(r) == 5 for r in refs)
        assert part.dialogues["response"].to_list() == [r[0] for r in refs]
    assert all(r == [] for r in sample.split("train").dialogues["references"].to_list())
    # no video is in two splits
    per_video = sample.dialogues.group_by("video_id").agg(pl.col("split").n_unique())
    assert per_video["split"].max() == 1
    assert set(sample.videos["topic"]) == {"美食", "萌宠", "音乐", "游戏", "旅行"}


def test_sample_text_is_clean(sample):
    texts = [t for c in sample.dialogues["context"].to_list() for t in c] + sample.dialogues["response"].to_list()
    texts += [t for r in sample.dialogues["references"].to_list() for t in r]
    assert all(t and "@" not in t and "[" not in t and "😂" not in t for t in texts)
    assert not any("哈哈哈" in t or "脑残" in t or "废物" in t for t in texts)
    assert any(e == "[捂脸]" for es in sample.dialogues["emoticons"].to_list() for e in es)


def test_sample_features(sample):
    frames, audio = sample.features("v01")
    assert frames.shape == (8, 2048) and frames.dtype == np.float32
    assert audio.shape == (8, 128) and audio.dtype == np.float32
    # stored as float16: equal to the seeded generator up to float16 rounding
    from tiktalk.dataset import synthetic_features

    expected = synthetic_features("v01", "frames", 8).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(frames, expected)
    index = json.loads((sample_dir() / "features" / "index.json").read_text())
    assert index["v01"] == {"frames": [8, 2048], "audio": [8, 128]}
    with pytest.raises(KeyError, match="unknown video_id 'nope'"):
        sample.features("nope")


def test_examples(sample):
    ids = sample.split("test").dialogues["dialogue_id"].to_list()
    examples = sample.examples("test", knowledge={ids[0]: "有人炒栗子 -> xNeed -> 买栗子"})
    assert len(examples) == 7 and all(isinstance(e, DialogueExample) for e in examples)
    first = examples[0]
    assert first.knowledge == "有人炒栗子 -> xNeed -> 买栗子" and examples[1].knowledge is None
    assert first.title and first.frames.shape == (8, 2048) and first.audio.shape == (8, 128)
    assert len(first.references) == 5 and first.response == first.references[0]
    bare = sample.examples("train", with_features=False)
    assert len(bare) == 147 and bare[0].frames is None and bare[0].context
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        sample.split("dev")


def test_sample_is_small():
    size = sum(p.stat().st_size for p in (sample_dir().parent).rglob("*") if p.is_file())
    assert size < 3_000_000


def test_rebuilding_raw_gives_the_shipped_sample(tmp_path):
    build_dataset(sample_raw_dir(), tmp_path / "built")
    shipped = sorted(p.relative_to(sample_dir()) for p in sample_dir().rglob("*") if p.is_file())
    rebuilt = sorted(p.relative_to(tmp_path / "built") for p in (tmp_path / "built").rglob("*") if p.is_file())
    assert rebuilt == shipped
    for rel in shipped:
        assert (tmp_path / "built" / rel).read_bytes() == (sample_dir() / rel).read_bytes(), rel


def test_make_raw_reproduces_the_shipped_raw(tmp_path):
    module = runpy.run_path(str(sample_raw_dir().parent / "make_raw.py"))
    module["write_raw"](tmp_path)
    for name in ("videos.jsonl", "comments.jsonl", "build_config.json"):
        assert (tmp_path / name).read_bytes() == (sample_raw_dir() / name).read_bytes(), name


def test_sample_build_report(sample):
    build = sample.manifest["build"]
    assert build["removed"] == {
        "comments_unknown_video": 1, "videos_below_likes": 1, "comments_of_dropped_videos": 4,
        "comments_below_likes": 3, "comments_blocked": 4, "comments_empty_after_cleaning": 2,
        "comments_missing_parent": 1, "comments_under_removed": 1, "videos_only_first_level": 1,
        "eval_videos_moved_to_train": 1, "eval_videos_dropped": 0, "single_comment_chains": 5,
        "eval_contexts_too_few_responses": 29,
    }
    assert build["likes_unknown"] == {"videos": 0, "comments": 0}
    assert build["split_source"] == {"split_file": 0, "hash": 28}
    assert build["split_assigned"] == {"train": 18, "val": 4, "test": 6}  # one test video moved to train
    assert build["modified"] == {"mentions_removed": 7, "repeats_merged": 15, "emoticons_moved": 10}


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_round_trip(sample, tmp_path, fmt):
    manifest = write_dataset(sample, tmp_path / "ds", table_format=fmt)
    back = load_dataset(tmp_path / "ds")
    assert manifest["tables"]["dialogues"]["file"] == f"dialogues.{fmt}"
    assert back.dialogues.equals(sample.dialogues)
    assert back.videos.equals(sample.videos)
    for vid in ("v01", "v30"):
        for a, b in zip(back.features(vid), sample.features(vid)):
            np.testing.assert_array_equal(a, b)  # float16 values survive float32 storage exactly
    assert back.manifest["features"]["dtype"] == "float32"


def test_write_is_atomic_and_refuses_to_overwrite(sample, tmp_path):
    out = tmp_path / "ds"
    write_dataset(sample.split("val"), out)
    with pytest.raises(FileExistsError, match="already exists"):
        write_dataset(sample, out)
    bad = TikTalkDataset(sample.videos, pl.concat([sample.dialogues, sample.dialogues.head(1)]), sample.root)
    with pytest.raises(DatasetFormatError, match="duplicate dialogue_id"):
        write_dataset(bad, out, overwrite=True)
    assert load_dataset(out).dialogues.height == 7  # the old directory is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp directory left behind


# ---------------------------------------------------------------------------- errors

_ROW = {"dialogue_id": "d1", "video_id": None, "split": "train", "context": ["你好"], "response": "好",
        "references": [], "emoticons": []}


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("row, pattern", [
    ("{oops", r"dialogues.jsonl:2: not valid JSON"),
    ({k: v for k, v in _ROW.items() if k != "response"}, r"dialogues.jsonl:2: field 'response': missing required"),
    ({**_ROW, "context": "你好"}, r"dialogues.jsonl:2: field 'context': expected a list of strings \(value '你好'\)"),
    ({**_ROW, "split": "dev"}, r":2: field 'split': expected one of train, val, test \(value 'dev'\)"),
    ({**_ROW, "respnse": "x"}, r":2: field 'respnse': unknown field"),
    ({**_ROW, "split": "test"}, r":2: field 'references': a test dialogue needs at least one reference"),
    ({**_ROW, "split": "val", "references": ["别的"]}, r":2: field 'response': on val/test, response must equal"),
    ([1, 2], r":2: expected a JSON object"),
])
def test_jsonl_errors_name_file_line_field(tmp_path, row, pattern):
    path = _jsonl(tmp_path / "dialogues.jsonl", [{**_ROW, "dialogue_id": "d0"}, row])
    with pytest.raises(DatasetFormatError, match=pattern):
        read_table("dialogues", path)


def test_parquet_errors_name_row(tmp_path):
    frame = pl.DataFrame([{**_ROW, "split": "dev", "turn_ids": []}], schema=DIALOGUE_SCHEMA)
    frame.write_parquet(tmp_path / "dialogues.parquet")
    with pytest.raises(DatasetFormatError, match=r"dialogues.parquet row 1: field 'split'"):
        read_table("dialogues", tmp_path / "dialogues.parquet")
    frame.drop("response").write_parquet(tmp_path / "d2.parquet")
    with pytest.raises(DatasetFormatError, match=r"d2.parquet: field 'response': missing required column"):
        read_table("dialogues", tmp_path / "d2.parquet")


def test_load_errors(sample, tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        load_dataset(tmp_path)
    out = tmp_path / "ds"
    write_dataset(sample.split("val"), out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(DatasetFormatError, match=r"manifest.json: field 'schema_version': unsupported .*\(value 99\)"):
        load_dataset(out)
    (out / "manifest.json").write_text(json.dumps(manifest))
    lines = (out / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[2])
    lines[2] = json.dumps({**row, "video_id": "v404"})
    (out / "dialogues.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"field 'tables.dialogues.sha256': dialogues.jsonl has sha256 "):
        load_dataset(out)  # an edited table is caught by its hash ...
    reseal_dataset(out)
    with pytest.raises(DatasetFormatError, match=r"dialogues.jsonl row 3: field 'video_id': video_id not in"):
        load_dataset(out)  # ... and, edited with a matching hash, by the structural checks


def test_feature_shape_errors(sample, tmp_path):
    out = tmp_path / "ds"
    bad = np.zeros((51, 2048), np.float32)
    with pytest.raises(DatasetFormatError, match=r"field 'v03': frames tensor has shape \(51, 2048\), expected "
                                                 r"\(n <= 50, 2048\)"):
        write_dataset(sample.split("val"), out, features=lambda vid: (bad, None))
    shutil.copytree(sample_dir(), out)
    from safetensors.numpy import save_file

    save_file({"v01": np.zeros((4, 100), np.float16)}, str(out / "features" / "frames.safetensors"))
    with pytest.raises(DatasetFormatError, match=r"field 'features.files.features/frames.safetensors': "):
        load_dataset(out).features("v01")
    reseal_dataset(out)
    ds = load_dataset(out)
    with pytest.raises(DatasetFormatError, match=r"frames.safetensors: field 'v01': frames tensor has shape"):
        ds.features("v01")
    with pytest.raises(DatasetFormatError, match=r"field 'v02': no frames tensor for this video"):
        ds.features("v02")


def test_frame_token_grids_round_trip(sample, tmp_path):
    """`features extract --grid` output: frames (n, tokens, 2048) are stored and read back as
    they are; audio stays 2-D; a grid of the wrong width is refused."""
    rng = np.random.default_rng(0)
    grids = {vid: rng.normal(size=(3, 4, 2048)).astype(np.float32) for vid in sample.split("val").videos["video_id"]}
    out = tmp_path / "ds"
    write_dataset(sample.split("val"), out, features=lambda vid: (grids[vid], None))
    ds = load_dataset(out)
    ex = ds.examples("val")[0]
    assert ex.frames.shape == (3, 4, 2048) and np.array_equal(ex.frames, grids[ex.video_id])
    with pytest.raises(DatasetFormatError, match=r"expected \(n <= 50, 2048\) or \(n, tokens, 2048\)"):
        write_dataset(sample.split("val"), tmp_path / "bad", features=lambda vid: (np.zeros((3, 4, 100), np.float32), None))
    with pytest.raises(DatasetFormatError, match=r"audio tensor has shape \(3, 4, 128\), expected \(n <= 50, 128\)$"):
        write_dataset(sample.split("val"), tmp_path / "bad2",
                      features=lambda vid: (None, np.zeros((3, 4, 128), np.float32)))


def test_from_rows_in_memory():
    ds = from_rows([{"video_id": "v", "title": "标题", "topic": "美食", "duration": 3, "split": "train"}],
                   [{**_ROW, "video_id": "v"}])
    assert ds.examples("train")[0].frames is None  # no feature files: None, not an error
    assert ds.videos["duration"].to_list() == [3.0]


# ---------------------------------------------------------------------------- LCCC


def test_lccc_adapter_exact_counts():
    path = shared_path("lccc_toy", "toy_data.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    ds = load_lccc(path)
    assert {s: ds.split(s).dialogues.height for s in ("train", "val", "test")} == \
        {"train": 1000, "val": 200, "test": 200}
    assert ds.videos.height == 0 and ds.dialogues["video_id"].null_count() == 1400
    first = ds.dialogues.row(0, named=True)
    assert first["dialogue_id"] == "lccc-train-00000"
    assert first["response"] == raw["train"][0][-1].replace(" ", "")
    assert first["context"] == [u.replace(" ", "") for u in raw["train"][0][:-1]]
    test = ds.split("test").dialogues
    assert test["references"].to_list() == [[r] for r in test["response"].to_list()]
    # turns: 3,887 train, 817 valid, 400 test utterances in the toy release
    turns = {s: sum(len(c) + 1 for c in ds.split(s).dialogues["context"].to_list()) for s in ("train", "val", "test")}
    assert turns == {"train": 3887, "val": 817, "test": 400}
    expanded = load_lccc(path, expand_turns=True)
    assert expanded.dialogues.height == (3887 - 1000) + (817 - 200) + (400 - 200) == 3704
    ex = expanded.examples("val", with_features=False)[0]
    assert ex.video_id is None and ex.title is None and ex.references == [ex.response]


def test_lccc_bad_input(tmp_path):
    (tmp_path / "l.json").write_text(json.dumps({"train": [["只有一句"]]}), encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"l.json: field 'train\[0\]': a dialogue must be a list of >= 2"):
        load_lccc(tmp_path / "l.json")


# ---------------------------------------------------------------------------- CLI


def test_cli_build_stats_validate(tmp_path, capsys):
    out = tmp_path / "built"
    assert main(["data", "build", "sample", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["build"]["kept"]["dialogues"] == 161
    assert main(["data", "build", "sample", "--out", str(out)]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "build", "sample", "--out", str(out), "--overwrite", "--video-min-likes", "5000",
                 "--format", "parquet"]) == 0
    text = capsys.readouterr().out
    # 14 of the 30 videos have fewer than 5,000 likes
    assert "videos_below_likes                   14" in text and "kept 16 of 30 videos" in text
    assert (out / "dialogues.parquet").exists()
    assert main(["data", "stats", "sample", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["test"]["dialogues"] == 7 and stats["test"]["with_5_references"] == 7
    assert main(["data", "validate", "sample"]) == 0
    assert "28 frame and 28 audio tensors checked" in capsys.readouterr().out


def test_cli_lccc(tmp_path, capsys):
    path = shared_path("lccc_toy", "toy_data.json")
    assert main(["data", "lccc", str(path), "--out", str(tmp_path / "lccc")]) == 0
    assert "train 1000, val 200, test 200" in capsys.readouterr().out
    assert load_dataset(tmp_path / "lccc").dialogues.height == 1400


def test_cli_bad_raw_reports_file_and_line(tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(sample_raw_dir(), raw)
    with open(raw / "comments.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"comment_id": "x1", "parent_id": null, "video_id": "v01", "text": 5, "likes": 1}\n')
    assert main(["data", "build", str(raw), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "comments.jsonl:395: field 'text': expected a string (value 5)" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- property: JSONL round trip

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_response = _text.filter(str.strip)  # a whitespace-only response is refused (issue 22)


@given(st.lists(st.tuples(st.lists(_text, max_size=3), _response, st.lists(_text, max_size=2)),
                min_size=1, max_size=6),
       st.sampled_from(["jsonl", "parquet"]))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_round_trip_property(tmp_path, rows, fmt):
    # any text (quotes, newlines, emoji, control characters) survives write -> read unchanged
    dialogues = [{"dialogue_id": f"d{i}", "video_id": "v", "split": "train", "context": ctx, "response": resp,
                  "references": [], "emoticons": emo, "turn_ids": []} for i, (ctx, resp, emo) in enumerate(rows)]
    ds = from_rows([{"video_id": "v", "title": rows[0][1], "topic": "美食", "duration": 1.5, "split": "train"}],
                   dialogues)
    out = tmp_path / f"rt-{uuid.uuid4().hex[:8]}"
    write_dataset(ds, out, table_format=fmt)
    back = load_dataset(out)
    assert back.dialogues.to_dicts() == dialogues
    assert back.videos["title"].to_list() == [rows[0][1]]


def test_build_with_external_features_and_blocklist_file(tmp_path, capsys):
    (tmp_path / "block.txt").write_text("# one word a line\n番茄\n", encoding="utf-8")
    out = tmp_path / "o"
    assert main(["data", "build", "sample", "--out", str(out), "--blocklist", str(tmp_path / "block.txt"),
                 "--synthetic-features", "0", "--features", str(sample_dir() / "features"), "--json"]) == 0
    build = json.loads(capsys.readouterr().out)["build"]
    assert build["blocked_words"] == {"番茄": 4} and build["config"]["blocklist"] == ["番茄"]
    assert build["features"] == "external"
    ds, shipped = load_dataset(out), load_dataset("sample")
    np.testing.assert_array_equal(ds.features("v02")[0], shipped.features("v02")[0])
    assert not any("番茄" in t for c in ds.dialogues["context"].to_list() for t in c)
