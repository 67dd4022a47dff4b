"""Human evaluation: Fleiss' kappa (worked example, slow pairwise count), sheets, CLI round trip."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiktalk.test_metrics_cli import build_tiny_dataset, write_jsonl
from tiktalk.commands.main import main
from tiktalk.human_eval import (
    CRITERIA,
    build_sheet,
    fleiss_kappa,
    rating_counts,
    read_sheet,
    score_sheets,
)

# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa"): 10 subjects, 14 raters, 5 categories.
WIKIPEDIA_COUNTS = np.array([
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
])


def slow_fleiss_kappa(ratings: np.ndarray, categories=(1, 2, 3, 4, 5)) -> float:
    """From (subjects, raters) ratings by counting agreeing ordered rater pairs literally."""
    n_subjects, n_raters = ratings.shape
    agree = []
    for row in ratings:
        pairs = [(a, b) for a, b in itertools.permutations(range(n_raters), 2) if row[a] == row[b]]
        agree.append(len(pairs) / (n_raters * (n_raters - 1)))
    p_bar = sum(agree) / n_subjects
    p_e = sum((np.sum(ratings == c) / ratings.size) ** 2 for c in categories)
    return (p_bar - p_e) / (1 - p_e)


def test_fleiss_kappa_wikipedia_worked_example():
    kappa = fleiss_kappa(WIKIPEDIA_COUNTS)
    assert round(kappa, 3) == 0.210
    # by hand: P-bar = 688 / 1820 (= 0.378), P_e = (20^2 + 28^2 + 39^2 + 21^2 + 32^2) / 140^2 (= 0.213)
    p_bar, p_e = 688 / 1820, 4170 / 19600
    assert kappa == pytest.approx((p_bar - p_e) / (1 - p_e), abs=1e-12)


def test_fleiss_kappa_matches_slow_pairwise_count():
    rng = np.random.default_rng(0)
    for raters in (2, 3, 7):
        ratings = rng.integers(1, 6, size=(40, raters))
        ratings[:10] = ratings[:10, :1]  # some full agreement so kappa is not ~0
        assert fleiss_kappa(rating_counts(ratings)) == pytest.approx(slow_fleiss_kappa(ratings), abs=1e-12)


def test_fleiss_kappa_matches_statsmodels_when_installed():
    inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
    rng = np.random.default_rng(1)
    counts = rating_counts(rng.integers(1, 6, size=(30, 3)))
    assert fleiss_kappa(counts) == pytest.approx(inter_rater.fleiss_kappa(counts), abs=1e-12)
    assert fleiss_kappa(WIKIPEDIA_COUNTS) == pytest.approx(inter_rater.fleiss_kappa(WIKIPEDIA_COUNTS))


def test_fleiss_kappa_edges_and_errors():
    assert fleiss_kappa(rating_counts(np.array([[1, 1], [5, 5], [3, 3]]))) == pytest.approx(1.0)
    assert np.isnan(fleiss_kappa(rating_counts(np.array([[4, 4, 4], [4, 4, 4]]))))  # undefined
    with pytest.raises(ValueError, match="subject 0 has 3, subject 1 has 2"):
        fleiss_kappa(np.array([[1, 2, 0], [1, 1, 0]]))
    with pytest.raises(ValueError, match="at least 2 raters"):
        fleiss_kappa(np.array([[1, 0], [0, 1]]))


# ----------------------------------------------------------------------------- sheets


def _dialogues(n: int) -> list[dict]:
    return [{"dialogue_id": f"d{i:03d}", "video_id": "v", "title": "标题", "context": ["你好", "在吗"]}
            for i in range(n)]


def test_build_sheet_is_seeded_order_free_and_blind():
    dialogues = _dialogues(30)
    systems = {"maria": {d["dialogue_id"]: f"M{d['dialogue_id']}" for d in dialogues},
               "dialogpt": {d["dialogue_id"]: f"D{d['dialogue_id']}" for d in dialogues}}
    a = build_sheet(dialogues, systems, n=10, seed=0)
    b = build_sheet(list(reversed(dialogues)), systems, n=10, seed=0)
    c = build_sheet(dialogues, systems, n=10, seed=1)
    assert a.rows == b.rows and a.key == b.key
    assert {r["dialogue_id"] for r in a.rows} != {r["dialogue_id"] for r in c.rows}
    assert a.n_dialogues == 10 and len(a.rows) == 20 and a.note is None
    for row in a.rows:  # the key names the system whose response is in the row
        system = a.key[row["item"]]["system"]
        assert row["response"] == systems[system][row["dialogue_id"]]
        assert row["context"] == "你好\n在吗" and all(row[c] == "" for c in CRITERIA)
    firsts = [a.key[r["item"]]["system"] for r in a.rows if r["item"].endswith("-a")]
    assert set(firsts) == {"maria", "dialogpt"}  # position does not reveal the system


def test_build_sheet_takes_all_when_split_is_small():
    dialogues = _dialogues(4)
    sheet = build_sheet(dialogues, {"s": {d["dialogue_id"]: "x" for d in dialogues}}, n=100)
    assert sheet.n_dialogues == 4 and "only 4 dialogues" in sheet.note and "100 requested" in sheet.note


def _fill(sheet_path: Path, out: Path, ratings: dict[str, dict[str, str]]) -> Path:
    with open(sheet_path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row.update(ratings[row["item"]])
    with open(out, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_export_and_score_round_trip(tmp_path, capsys):
    data = build_tiny_dataset(tmp_path)
    maria = write_jsonl(tmp_path / "maria.jsonl", [("t1", "你好"), ("t2", "猫"), ("t3", "去")])
    dialogpt = tmp_path / "dialogpt.txt"
    dialogpt.write_text("嗯\n嗯\n嗯\n", encoding="utf-8")
    sheet = tmp_path / "sheet.csv"
    assert main(["human-eval", "export", "--data", str(data), "--predictions", str(maria), str(dialogpt),
                 "--out", str(sheet), "--n", "100", "--seed", "0", "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["dialogues"] == 3 and exported["rows"] == 6 and "only 3 dialogues" in exported["note"]
    key = json.loads((tmp_path / "sheet.key.json").read_text(encoding="utf-8"))
    assert sheet.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read Chinese right

    rng = np.random.default_rng(3)
    items = sorted(key["items"])
    filled = {a: {i: {c: int(rng.integers(1, 6)) for c in CRITERIA} for i in items} for a in range(3)}
    paths = [_fill(sheet, tmp_path / f"annotator{a}.csv",
                   {i: {c: str(v) for c, v in r.items()} for i, r in filled[a].items()}) for a in range(3)]

    assert main(["human-eval", "score", *map(str, paths), "--key", str(tmp_path / "sheet.key.json"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["annotators"] == 3 and result["items"] == 6
    for crit in CRITERIA:
        ratings = np.array([[filled[a][i][crit] for a in range(3)] for i in items])
        assert result["criteria"][crit]["mean"] == pytest.approx(ratings.mean())
        assert result["criteria"][crit]["kappa"] == pytest.approx(slow_fleiss_kappa(ratings))
        for system in ("maria", "dialogpt"):
            mine = [k for k, i in enumerate(items) if key["items"][i]["system"] == system]
            assert result["systems"][system][crit] == pytest.approx(ratings[mine].mean())

    assert main(["human-eval", "score", *map(str, paths)]) == 0  # no key beside annotator0.csv
    text = capsys.readouterr().out
    assert "| Multi-modal relevance |" in text and "3 annotator(s), 6 rated rows" in text


def _sheet(tmp_path: Path, name: str, rows: list[tuple[str, ...]]) -> Path:
    path = tmp_path / name
    lines = ["item," + ",".join(CRITERIA)] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("cell", "shown"),
    [("6", "'6'"), ("", "''"), ("3.5", "'3.5'"), ("good", "'good'"), ("0", "'0'")],
)
def test_bad_rating_cells_are_named(tmp_path, cell, shown):
    path = _sheet(tmp_path, "a.csv", [("001-a", "1", "2", "3", "4"), ("001-b", "5", cell, "1", "1")])
    with pytest.raises(ValueError, match=rf"a.csv: line 3 \(item '001-b'\), column 'specificity': "
                       rf"{shown} is not an integer from 1 to 5"):
        read_sheet(path)


def test_sheet_errors(tmp_path):
    no_col = tmp_path / "n.csv"
    no_col.write_text("item,sensibleness\n001-a,3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"n.csv: header lacks column\(s\) \['specificity'"):
        read_sheet(no_col)
    dup = _sheet(tmp_path, "d.csv", [("001-a", "1", "1", "1", "1"), ("001-a", "2", "2", "2", "2")])
    with pytest.raises(ValueError, match=r"d.csv: line 3: item '001-a' appears twice"):
        read_sheet(dup)
    a = _sheet(tmp_path, "a.csv", [("001-a", "1", "1", "1", "1"), ("002-a", "2", "2", "2", "2")])
    b = _sheet(tmp_path, "b.csv", [("001-a", "1", "1", "1", "1"), ("003-a", "2", "2", "2", "2")])
    with pytest.raises(ValueError, match=r"b.csv: rates different items than .*a.csv: missing \['002-a'\], "
                       r"extra \['003-a'\]"):
        score_sheets([a, b])


def test_single_sheet_gives_means_and_no_kappa(tmp_path):
    a = _sheet(tmp_path, "a.csv", [("001-a", "1", "2", "3", "4"), ("002-a", "3", "4", "5", "4")])
    result = score_sheets([a])
    assert result["criteria"]["sensibleness"]["mean"] == 2.0
    assert result["criteria"]["overall_quality"]["kappa"] is None and "at least 2" in result["note"]
