"""`tiktalk data build`: optional raw fields, --split-file, and empty results that exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import tests.models.toy_chat_model  # noqa: F401  (registers toy-char-lm)
from tiktalk.build import BuildConfig, build_dataset, clean_and_split
from tiktalk.commands.main import main
from tiktalk.dataset import DatasetFormatError, load_dataset, sample_raw_dir
from tiktalk.errors import EmptyResultError
from tiktalk.raw import RawComment, RawVideo, read_raw_comments, read_raw_videos, read_split_file


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _raw_without(tmp_path: Path, *, video_fields: tuple[str, ...], comment_fields: tuple[str, ...]) -> Path:
    """The shipped raw sample with some fields removed from every row."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, drop in (("videos.jsonl", video_fields), ("comments.jsonl", comment_fields)):
        rows = [json.loads(line) for line in (sample_raw_dir() / name).read_text("utf-8").splitlines()]
        _write(raw / name, [{k: v for k, v in r.items() if k not in drop} for r in rows])
    shutil.copy(sample_raw_dir() / "build_config.json", raw / "build_config.json")
    return raw


# ---------------------------------------------------------------------------- optional raw fields


def test_raw_rows_without_likes_are_kept():
    videos = [RawVideo("v1", "", "", 0.0, None, 1), RawVideo("v2", "", "", 0.0, 5, 2)]
    comments = [RawComment("a", None, "v1", "番茄先炒吗", None, 1), RawComment("b", "a", "v1", "先炒鸡蛋", None, 2),
                RawComment("c", None, "v2", "好看", None, 3), RawComment("d", "c", "v2", "是的", None, 4)]
    config = BuildConfig(video_min_likes=100, comment_min_likes=10, val_fraction=0.0, test_fraction=0.0)
    result = clean_and_split(videos, comments, config)
    # unknown likes never meet a threshold: v1 is kept; v2's known 5 likes are below 100
    assert [v["video_id"] for v in result.videos] == ["v1"]
    assert result.report.removed["videos_below_likes"] == 1 and result.report.removed["comments_below_likes"] == 0
    assert result.report.likes_unknown == {"videos": 1, "comments": 4}
    assert result.dialogues[0]["context"] == ["番茄先炒吗"] and result.dialogues[0]["response"] == "先炒鸡蛋"


def test_build_of_raw_data_without_likes_topic_duration(tmp_path, capsys):
    raw = _raw_without(tmp_path, video_fields=("likes", "topic", "duration"), comment_fields=("likes",))
    assert main(["data", "build", str(raw), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "likes unknown for 30 videos and 394 comments: kept without the likes thresholds" in out
    ds = load_dataset(tmp_path / "o")
    assert ds.videos.height == 29  # only v12 (first-level comments only) goes; v06's likes are unknown now
    assert set(ds.videos["topic"].to_list()) == {""} and set(ds.videos["duration"].to_list()) == {0.0}


def test_missing_required_raw_fields_are_named_together(tmp_path):
    p = _write(tmp_path / "comments.jsonl", [{"comment_id": "c1", "likes": 3}])
    with pytest.raises(DatasetFormatError, match=r"comments.jsonl:1: missing required fields 'parent_id', "
                                                 r"'video_id', 'text'"):
        read_raw_comments(p)
    p = _write(tmp_path / "videos.jsonl", [{"title": "t"}])
    with pytest.raises(DatasetFormatError, match=r"videos.jsonl:1: field 'video_id': missing required field"):
        read_raw_videos(p)
    p = _write(tmp_path / "videos.jsonl", [{"video_id": 7, "likes": None}])
    assert read_raw_videos(p) == [RawVideo("7", "", "", 0.0, None, 1)]


# ---------------------------------------------------------------------------- --split-file


def test_split_file_fixes_splits(tmp_path, capsys):
    raw = _raw_without(tmp_path, video_fields=(), comment_fields=())
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps({"v01": "test", "v02": "val", "v03": "val", "v04": "train", "gone": "test"}))
    assert main(["data", "build", str(raw), "--out", str(tmp_path / "o"), "--split-file", str(split_file),
                 "--min-references", "1", "--json"]) == 0
    build = json.loads(capsys.readouterr().out)["build"]
    ds = load_dataset(tmp_path / "o")
    splits = dict(ds.videos.select("video_id", "split").rows())
    assert (splits["v01"], splits["v02"], splits["v03"], splits["v04"]) == ("test", "val", "val", "train")
    assert build["split_file"]["videos"] == 5 and build["split_file"]["not_in_videos"] == 1
    assert build["split_source"] == {"split_file": 4, "hash": 24}
    # with the default 5 references, a split-file val/test video without them (v04 has no
    # comment with 5 replies) is dropped, not moved to train
    tsv = _write(tmp_path / "splits.tsv", ["video_id\tsplit", "v01\ttest", "v04\tval", "v03\tval"])
    manifest = build_dataset(raw, tmp_path / "o2", split_file=tsv)
    kept = dict(load_dataset(tmp_path / "o2").videos.select("video_id", "split").rows())
    assert (kept["v01"], kept["v03"]) == ("test", "val") and "v04" not in kept
    assert manifest["build"]["removed"]["eval_videos_dropped"] == 1


@pytest.mark.parametrize("name, text, pattern", [
    ("s.tsv", "v1\tdev\n", r"s.tsv:1: field 'split of v1': expected one of train, val, test \(value 'dev'\)"),
    ("s.tsv", "v1 test\n", r"s.tsv:1: expected two tab-separated columns"),
    ("s.tsv", "v1\ttest\nv1\tval\n", r"s.tsv:2: field 'video_id': video listed twice"),
    ("s.json", "[1]", r"s.json: expected a JSON object video_id -> split"),
])
def test_split_file_errors(tmp_path, name, text, pattern):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=pattern):
        read_split_file(tmp_path / name)


# ---------------------------------------------------------------------------- empty results exit 2


def test_emptied_split_exits_2_and_names_the_flag(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["data", "build", "sample", "--out", str(out), "--min-references", "50"]) == 2
    err = capsys.readouterr().err
    assert "no val / test dialogues" in err and "--min-references 50" in err and "--allow-empty-split" in err
    assert not out.exists()
    assert main(["data", "build", "sample", "--out", str(out), "--min-references", "50",
                 "--allow-empty-split"]) == 0
    capsys.readouterr()
    assert main(["data", "validate", str(out)]) == 2
    assert "no val / test dialogues" in capsys.readouterr().err
    assert main(["data", "validate", str(out), "--allow-empty-split", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["warnings"] == ["split val is empty", "split test is empty"]


def test_build_keeping_nothing_exits_2_naming_the_rule(tmp_path, capsys):
    assert main(["data", "build", "sample", "--out", str(tmp_path / "o"), "--video-min-likes", "10000000",
                 "--allow-empty-split"]) == 2
    err = capsys.readouterr().err
    assert "keeps no dialogue: kept 0 of 30 videos: 30 removed by videos_below_likes (--video-min-likes 10000000)" \
        in err


def test_build_with_no_video_hashed_to_val(tmp_path):
    with pytest.raises(EmptyResultError, match=r"val: no video was assigned to val \(--val-fraction 0 of the "
                                               r"28 hashed videos\)"):
        build_dataset(sample_raw_dir(), tmp_path / "o", BuildConfig(val_fraction=0.0))


def test_validate_warns_about_too_few_references(tmp_path, capsys):
    rows = [{"dialogue_id": f"{s}{i}", "video_id": f"v{s}", "context": ["问"], "response": "答", "split": s}
            for s in ("train", "val", "test") for i in range(2)]
    src = _write(tmp_path / "c.jsonl", rows)
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds")]) == 0
    capsys.readouterr()
    assert main(["data", "validate", str(tmp_path / "ds")]) == 0
    captured = capsys.readouterr()
    assert "(2 warnings)" in captured.out
    assert "warning: test: 2 of 2 dialogues have fewer than 5 references (min 1)" in captured.err
    assert main(["data", "validate", "sample"]) == 0
    assert "warning" not in capsys.readouterr().err  # the sample has 5 references everywhere


def test_generate_on_an_empty_split_exits_2(tmp_path, capsys):
    rows = [{"dialogue_id": f"{s}{i}", "video_id": None, "context": ["问"], "response": "答", "split": s}
            for s in ("train", "val") for i in range(2)]
    src = _write(tmp_path / "c.jsonl", rows)
    data, run = str(tmp_path / "ds"), str(tmp_path / "run")
    assert main(["data", "import", str(src), "--out", data, "--allow-empty-split"]) == 0
    assert main(["train", "--model", "toy-char-lm", "--preset", "tiny", "--data", data, "--out", run,
                 "--max-steps", "1", "--cpu", "--no-progress", "--batch-size", "2"]) == 0
    capsys.readouterr()
    preds = tmp_path / "preds.jsonl"
    assert main(["generate", "--run", run, "--data", data, "--split", "test", "--out", str(preds)]) == 2
    assert "split 'test' of " in capsys.readouterr().err and not preds.exists()
    assert main(["generate", "--run", run, "--data", data, "--split", "val", "--out", str(preds)]) == 0
    assert len(preds.read_text(encoding="utf-8").splitlines()) == 2
