"""label export / label score: a blind sheet round-trips to the expected shares and Fleiss' kappa."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.analysis.test_stats_topics import run, run_json
from tiktalk.analysis.labels import TASKS, build_label_sheet, read_label_sheet


def fill(sheet: Path, out: Path, labels: dict[str, dict[str, str]]) -> Path:
    """A copy of ``sheet`` with the annotator's labels (item -> column -> value) filled in."""
    with open(sheet, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [{**row, **labels.get(row["item"], {})} for row in reader]
        fields = reader.fieldnames
    with open(out, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def statsmodels_kappa(table: np.ndarray) -> float:
    from statsmodels.stats.inter_rater import fleiss_kappa

    return float(fleiss_kappa(table, method="fleiss"))


def test_context_source_round_trip_matches_statsmodels(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.csv"
    exported = run_json("label", "export", "--task", "context-source", "--data", "sample", "--n", "12",
                        "--out", str(sheet), "--split", "train")
    assert exported["rows"] == 12 and exported["sampled"] == {"sample": 12}
    key = json.loads((tmp_path / "sheet.key.json").read_text(encoding="utf-8"))
    with open(sheet, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh))
    assert "dialogue_id" not in header and "dataset" not in header  # the key alone says where an item is from
    items = sorted(key["items"])
    rng = np.random.default_rng(1)
    sources = ("text", "vision", "audio", "knowledge")
    marks = rng.integers(0, 2, size=(len(items), 3, 4))  # (items, annotators, sources)
    marks[:, :, 0] = 1  # everyone marks text on every item...
    marks[0, 2, 0] = 0  # ...but one annotator, once
    sheets = []
    for a in range(3):
        labels = {item: {s: ("1" if marks[i, a, j] else ("0" if (i + j) % 2 else "")) for j, s in enumerate(sources)}
                  for i, item in enumerate(items)}
        sheets.append(fill(sheet, tmp_path / f"a{a}.csv", labels))
    result = run_json("label", "score", "--task", "context-source", *map(str, sheets), "--key",
                      str(tmp_path / "sheet.key.json"),
                      "--majority-out", str(tmp_path / "majority.jsonl"))
    assert result["items"] == 12 and result["skipped"] == 0 and result["annotators"] == 3
    for j, s in enumerate(sources):
        assert result["shares"][s] == pytest.approx(marks[:, :, j].mean())
        assert result["majority_shares"][s] == pytest.approx((marks[:, :, j].sum(axis=1) >= 2).mean())
        yes = marks[:, :, j].sum(axis=1)
        assert result["kappa"][s] == pytest.approx(statsmodels_kappa(np.stack([3 - yes, yes], axis=1)), abs=1e-12)
    assert result["datasets"]["sample"]["items"] == 12
    levels = {str(info["level"]) for info in key["items"].values()}
    assert set(result["levels"]) == levels and sum(g["items"] for g in result["levels"].values()) == 12
    lines = [json.loads(line) for line in (tmp_path / "majority.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["dialogue_id"] for line in lines] == [key["items"][i]["dialogue_id"] for i in items]
    assert all(("vision" in line["sources"]) == (marks[i, :, 1].sum() >= 2) for i, line in enumerate(lines))


def test_knowledge_type_round_trip_with_skips_and_statsmodels_kappa(tmp_path: Path) -> None:
    sheet = tmp_path / "k.csv"
    run_json("label", "export", "--task", "knowledge-type", "--data", "sample", "--n", "10", "--out", str(sheet))
    items = sorted(json.loads((tmp_path / "k.key.json").read_text(encoding="utf-8"))["items"])
    types = np.array([[0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [0, 0, 0],
                      [1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])  # 1 = personalized
    names = ("general", "personalized")
    sheets = []
    for a in range(3):
        labels = {item: {"knowledge_type": names[types[i, a]] if a else names[types[i, a]][0]}
                  for i, item in enumerate(items)}
        labels[items[4]]["skip"] = "1" if a == 1 else ""  # one annotator skips item 4: it leaves the scores
        sheets.append(fill(sheet, tmp_path / f"k{a}.csv", labels))
    result = run_json("label", "score", "--task", "knowledge-type", *map(str, sheets))
    kept = np.delete(types, 4, axis=0)
    assert result["items"] == 10 and result["skipped"] == 1
    assert result["shares"]["personalized"] == pytest.approx(kept.mean())
    table = np.stack([(kept == 0).sum(axis=1), (kept == 1).sum(axis=1)], axis=1)
    assert result["kappa"] == pytest.approx(statsmodels_kappa(table), abs=1e-12)
    assert result["paper"] == {"general": 0.72, "personalized": 0.28} and result["comparable_to_paper"] is False


def test_two_corpora_are_shuffled_together_and_told_apart_only_by_the_key(tmp_path: Path) -> None:
    pools = {"a": [{"dialogue_id": f"a{i}", "video_id": "v", "title": "", "context": ["x"] * (i % 3),
                    "response": f"回复{i}"} for i in range(20)],
             "b": [{"dialogue_id": f"b{i}", "video_id": None, "context": [], "response": f"答{i}"} for i in range(4)]}
    sheet = build_label_sheet(TASKS["context-source"], pools, n=6, seed=3)
    assert sheet.sampled == {"a": 6, "b": 4} and len(sheet.rows) == 10 and sheet.notes
    assert sorted(v["dataset"] for v in sheet.key.values()) == ["a"] * 6 + ["b"] * 4
    assert [v["dataset"] for v in sheet.key.values()] != sorted(v["dataset"] for v in sheet.key.values())
    again = build_label_sheet(TASKS["context-source"], {k: list(reversed(v)) for k, v in pools.items()}, n=6, seed=3)
    assert again.key == sheet.key  # the draw depends on ids and seed, not on order


def test_bad_cells_name_file_line_column_and_value(tmp_path: Path) -> None:
    sheet = tmp_path / "s.csv"
    sheet.write_text("item,video_id,title,context,response,text,vision,audio,knowledge,skip\n"
                     "001,,,,嗯,1,yes,0,,\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"s.csv: line 2 \(item '001'\), column 'vision': 'yes' is not 1 or 0/blank"):
        read_label_sheet(TASKS["context-source"], sheet)
    code, out, err = run("label", "score", "--task", "context-source", str(sheet))
    assert code == 2 and out == "" and err.count("\n") == 1
