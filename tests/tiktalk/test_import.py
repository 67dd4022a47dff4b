"""`tiktalk data import`: a cleaned, split corpus in as it is; the LCCC and KdConv adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import shared_path
from tiktalk.commands.main import main
from tiktalk.dataset import DatasetFormatError, load_dataset, read_gold_attrs, split_of
from tiktalk.errors import EmptyResultError
from tiktalk.importers.jsonl import import_jsonl
from tiktalk.importers.kdconv import import_kdconv
from tiktalk.importers.lccc import import_lccc
from tiktalk.importers.records import import_records

ROWS = [
    {"dialogue_id": "a1", "video_id": "v1", "context": ["这个视频好好笑"], "response": "哈哈", "split": "train",
     "title": "猫咪日常", "emoticons": ["[捂脸]"]},
    {"dialogue_id": "a2", "video_id": "v1", "context": ["猫叫什么", "豆豆"], "response": "好名字", "split": "train"},
    {"dialogue_id": "b1", "video_id": "v2", "context": ["在哪里拍的"], "response": "杭州", "split": "val"},
    {"dialogue_id": "c1", "video_id": "v3", "context": ["你好"], "response": "你好呀", "split": "test",
     "references": ["你好呀", "嗨", "哈喽"]},
    {"dialogue_id": "t1", "video_id": None, "context": ["纯文本"], "response": "没有视频", "split": "test"},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_import_keeps_every_split_and_fills_defaults(tmp_path):
    result = import_jsonl(write_jsonl(tmp_path / "c.jsonl", ROWS))
    d = {r["dialogue_id"]: r for r in result.dataset.dialogues.iter_rows(named=True)}
    assert {k: r["split"] for k, r in d.items()} == {r["dialogue_id"]: r["split"] for r in ROWS}
    assert d["a1"]["references"] == [] and d["b1"]["references"] == ["杭州"]  # [] on train, [response] on val/test
    assert d["c1"]["references"] == ["你好呀", "嗨", "哈喽"] and d["a1"]["emoticons"] == ["[捂脸]"]
    videos = {r["video_id"]: r for r in result.dataset.videos.iter_rows(named=True)}
    assert set(videos) == {"v1", "v2", "v3"} and videos["v1"]["title"] == "猫咪日常" and videos["v2"]["title"] == ""
    assert videos["v1"]["split"] == "train" and videos["v3"]["duration"] == 0.0
    assert result.report["dialogues"] == {"train": 2, "val": 1, "test": 2}
    assert result.report["split_by_hash"] == 0 and result.report["text_only_dialogues"] == 1
    assert result.report["references_per_dialogue"] == {"val": {"1": 1}, "test": {"1": 1, "3": 1}}


def test_cli_import_round_trips_and_says_what_it_hashed(tmp_path, capsys):
    rows = [*ROWS, {"dialogue_id": "n1", "video_id": "v9", "context": ["没写"], "response": "分组"}]
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds")]) == 0
    out, err = capsys.readouterr()
    assert "train 3, val 1, test 2 dialogues" in out
    assert "note: 1 of 6 dialogues had no split; they got the hash split of their video_id" in out
    assert "test: 1 with 1 reference, 1 with 3 references" in out
    assert "val: 1 of 1 dialogues have fewer than 5 references" in err  # the protocol uses 5
    back = load_dataset(tmp_path / "ds")
    assert dict(back.dialogues.select("dialogue_id", "split").rows()) == {
        **{r["dialogue_id"]: r["split"] for r in ROWS}, "n1": split_of("v9", 1000 / 38703, 2000 / 38703)}
    assert back.manifest["import"]["split_by_hash"] == 1 and back.manifest["source"] == "tiktalk data import"


_split = st.sampled_from(["train", "val", "test", None])


@given(st.lists(st.tuples(st.integers(0, 5), _split), min_size=1, max_size=25))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_any_splits_round_trip(tmp_path, rows):
    # one split per video (the paper splits by video): the first row of a video decides it
    video_split: dict[int, str | None] = {}
    records = []
    for i, (video, split) in enumerate(rows):
        split = video_split.setdefault(video, split)
        record = {"dialogue_id": f"d{i}", "video_id": f"v{video}", "context": [f"上文{i}"], "response": f"回{i}"}
        if split is not None:
            record["split"] = split
        records.append((i + 1, record))
    expected = {r["dialogue_id"]: r.get("split") or split_of(r["video_id"], 0.3, 0.3, "s") for _, r in records}
    options = {"path": "p.jsonl", "val_fraction": 0.3, "test_fraction": 0.3, "split_seed": "s"}
    if set(expected.values()) != {"train", "val", "test"}:
        with pytest.raises(EmptyResultError, match=r"p.jsonl: no .*--allow-empty-split"):
            import_records(records, **options)
    result = import_records(records, allow_empty_split=True, **options)
    assert dict(result.dataset.dialogues.select("dialogue_id", "split").rows()) == expected
    assert result.report["split_by_hash"] == sum("split" not in r for _, r in records)


@pytest.mark.parametrize("row, pattern", [
    ({"dialogue_id": "x"}, r"c.jsonl:3: missing required fields 'video_id', 'context', 'response'"),
    ({**ROWS[0], "dialogue_id": "x", "context": "一句"},
     r"c.jsonl:3: field 'context': expected a list of non-empty strings \(value '一句'\)"),
    ({**ROWS[0], "dialogue_id": "x", "split": "dev"}, r":3: field 'split': expected one of train, val, test \(value 'dev'\)"),
    ({**ROWS[0], "dialogue_id": "x", "reply": "x", "id": 1}, r":3: unknown fields 'reply', 'id'"),
    ({**ROWS[0]}, r":3: field 'dialogue_id': duplicate dialogue_id \(first on line 1\) \(value 'a1'\)"),
    ({**ROWS[0], "dialogue_id": "x", "split": "test"},
     r":3: field 'split': video 'v1' is in split 'train' \(line 1\) and 'test' here"),
    ({**ROWS[0], "dialogue_id": "x", "title": "狗"}, r":3: field 'title': video 'v1' has another title on line 1"),
    ({**ROWS[2], "dialogue_id": "x", "video_id": "v7", "references": ["别的"]},
     r":3: field 'response': on val/test, response must equal references\[0\]"),
    ("[1]", r":3: expected a JSON object, got list"),
])
def test_import_errors_name_file_line_field_value(tmp_path, row, pattern):
    path = write_jsonl(tmp_path / "c.jsonl", [ROWS[0], ROWS[1], row])
    with pytest.raises(DatasetFormatError, match=pattern):
        import_jsonl(path, allow_empty_split=True)


def test_cli_import_empty_split_exits_2(tmp_path, capsys):
    src = write_jsonl(tmp_path / "c.jsonl", ROWS[:3])
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds")]) == 2
    assert "no test dialogues (test: no record of" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--allow-empty-split"]) == 0
    assert main(["data", "import", str(src), "--out", str(tmp_path / "x"), "--expand-turns"]) == 2
    assert "--expand-turns does not apply to --from jsonl" in capsys.readouterr().err


def test_lccc_goes_through_import():
    result = import_lccc(shared_path("lccc_toy", "toy_data.json"))
    assert result.report["dialogues"] == {"train": 1000, "val": 200, "test": 200}
    assert result.report["split_given"] == 1400 and result.report["text_only_dialogues"] == 1400
    assert result.report["references_per_dialogue"] == {"val": {"1": 200}, "test": {"1": 200}}


# ---------------------------------------------------------------------------- KdConv


def _kdconv_expected(folder: Path) -> dict[str, int]:
    """Responses per upstream file, counted plainly: every utterance after a dialogue's first."""
    return {part: sum(len(d["messages"]) - 1 for d in json.loads((folder / f"{part}.json").read_text("utf-8")))
            for part in ("dev", "test")}


def test_kdconv_import_counts_on_the_real_data(tmp_path, capsys):
    folder = shared_path("kdconv_travel")
    expected = _kdconv_expected(folder)
    assert expected == {"dev": 2541, "test": 2663}
    assert main(["data", "import", str(folder), "--from", "kdconv", "--out", str(tmp_path / "kd"), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    counts = manifest["import"]["dialogues"]
    assert counts["test"] == expected["test"] and counts["train"] + counts["val"] == expected["dev"]
    assert counts == {"train": 2292, "val": 249, "test": 2663}
    ds = load_dataset(tmp_path / "kd")
    # 15 of the 150 dev dialogues (0.1, seed 0) are val; a KdConv dialogue is one "video", in one split
    assert ds.split("val").videos.height == 15 and ds.split("train").videos.height == 135
    assert ds.split("test").videos.height == 150
    row = ds.dialogues.filter(ds.dialogues["dialogue_id"] == "kdconv-dev-000-03").row(0, named=True)
    raw = json.loads((folder / "dev.json").read_text("utf-8"))[0]
    assert row["context"] == [m["message"] for m in raw["messages"][:3]]
    assert row["response"] == raw["messages"][3]["message"] and row["video_id"] == "kdconv-dev-000"
    assert ds.video("kdconv-dev-000")["title"] == raw["name"]
    gold = read_gold_attrs(tmp_path / "kd")
    assert set(gold) == set(ds.dialogues["dialogue_id"].to_list())
    assert gold["kdconv-dev-000-01"] == [{k: a[k] for k in ("name", "attrname", "attrvalue")}
                                         for a in raw["messages"][1]["attrs"]]
    assert gold["kdconv-dev-000-03"] == []  # that utterance used no knowledge
    assert manifest["import"]["kdconv"]["responses_with_attrs"] == sum(bool(a) for a in gold.values())
    assert "gold_attrs.jsonl" in manifest["extra_files"]


def test_kdconv_split_is_seeded():
    folder = shared_path("kdconv_travel")
    a = import_kdconv(folder).dataset.split("val").videos["video_id"].to_list()
    assert a == import_kdconv(folder).dataset.split("val").videos["video_id"].to_list()
    assert a != import_kdconv(folder, seed=1).dataset.split("val").videos["video_id"].to_list()
    assert import_kdconv(folder, val_fraction=0.2).dataset.split("val").videos.height == 30


def test_kdconv_bad_input(tmp_path):
    (tmp_path / "dev.json").write_text(json.dumps([{"messages": [{"message": "你好"}, {"message": ""}]}]),
                                       encoding="utf-8")
    (tmp_path / "test.json").write_text("[]", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"dev.json: field '\[0\].messages\[1\].message': expected a "
                                                 r"non-empty string \(value ''\)"):
        import_kdconv(tmp_path)


def test_cli_import_with_features(tmp_path, capsys):
    import numpy as np

    from tiktalk.dataset import sample_dir

    rows = [{"dialogue_id": f"d{i}", "video_id": vid, "context": ["问"], "response": "答", "split": split}
            for i, (vid, split) in enumerate((("v01", "train"), ("v02", "val"), ("nofeat", "test")))]
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"),
                 "--features", str(sample_dir() / "features")]) == 0
    assert "frames for 2 videos, audio for 2" in capsys.readouterr().out
    ds, shipped = load_dataset(tmp_path / "ds"), load_dataset("sample")
    np.testing.assert_array_equal(ds.features("v02")[0], shipped.features("v02")[0])
    assert ds.features("nofeat") == (None, None)
    assert ds.modality_presence("train") == {"vision": 1.0, "audio": 1.0}
    assert ds.modality_presence("test") == {"vision": 0.0, "audio": 0.0}
