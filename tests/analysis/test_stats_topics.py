"""Table 2 (analyze stats) and Table 5 (analyze topics) on the shipped sample and real imports."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_path
from tiktalk.analysis.stats import COLUMNS, data_division
from tiktalk.analysis.topics import OTHERS, Topic, agreement, assign_topics, read_topics
from tiktalk.commands.main import main
from tiktalk.dataset import from_rows, sample_dir
from tiktalk.errors import UsageError


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def run_json(*argv: str) -> dict:
    code, out, err = run(*argv, "--json")
    assert code == 0, err
    return json.loads(out)  # the whole stdout is one document


# ---------------------------------------------------------------- Table 2


def slow_table2(root: Path) -> dict[str, dict[str, float]]:
    """Table 2 recomputed from the JSONL files with plain loops."""
    videos = [json.loads(line) for line in (root / "videos.jsonl").read_text(encoding="utf-8").splitlines()]
    dialogues = [json.loads(line) for line in (root / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()]
    duration = {v["video_id"]: v["duration"] for v in videos}
    table = {}
    for split in ("train", "val", "test", "total"):
        chosen = [d for d in dialogues if split == "total" or d["split"] == split]
        used = []
        for d in chosen:
            if d["video_id"] not in used:
                used.append(d["video_id"])
        turns, chars = 0, 0
        for d in chosen:
            for utterance in d["context"] + [d["response"]]:
                turns += 1
                chars += len(utterance.replace(" ", ""))
        table[split] = {"Videos": len(used), "Dialogues": len(chosen), "Turns": turns,
                        "Avg-v": sum(duration[v] for v in used) / len(used),
                        "Avg-t": turns / len(chosen), "Avg-l": chars / turns}
    return table


def test_stats_on_the_sample_equals_a_slow_recomputation() -> None:
    result = run_json("analyze", "stats", "--data", "sample")
    expected = slow_table2(sample_dir())
    assert result["columns"] == ["Videos", "Dialogues", "Turns", "Avg-v", "Avg-t", "Avg-l"]
    for split, row in expected.items():
        for column, value in row.items():
            assert result["splits"][split][column] == pytest.approx(value, rel=1e-12), (split, column)
    assert result["splits"]["total"]["Dialogues"] == 161 and result["splits"]["test"]["Videos"] == 5
    assert result["comparable_to_paper"] is False and "not the TikTalk release" in result["why_not"][0]
    assert result["paper"]["total"]["Avg-t"] == 2.25


def test_unknown_durations_are_counted_and_named_not_averaged_as_zero() -> None:
    videos = [{"video_id": "a", "title": "", "topic": "", "duration": 30.0, "split": "train"},
              {"video_id": "b", "title": "", "topic": "", "duration": 0.0, "split": "train"}]
    dialogues = [{"dialogue_id": "d1", "video_id": "a", "split": "train", "context": ["你 好"], "response": "嗯",
                  "references": []},
                 {"dialogue_id": "d2", "video_id": "b", "split": "train", "context": [], "response": "好看",
                  "references": []},
                 {"dialogue_id": "d3", "video_id": None, "split": "train", "context": [], "response": "在",
                  "references": []}]
    table = data_division(from_rows(videos, dialogues))
    train = table["train"]
    assert train["Avg-v"] == 30.0  # b's unknown duration is not a zero in the mean
    assert train["videos_unknown_duration"] == 1 and train["unknown_duration_videos"] == ["b"]
    assert train["Turns"] == 4 and train["Avg-t"] == pytest.approx(4 / 3)
    assert train["Avg-l"] == pytest.approx((2 + 1 + 2 + 1) / 4)  # the space in "你 好" is no character
    assert train["dialogues_without_video"] == 1
    assert table["val"]["Avg-v"] is None and table["val"]["Dialogues"] == 0
    assert set(COLUMNS) <= set(table["total"])


# ---------------------------------------------------------------- Table 5


def one_hot_encoder(vocabulary: list[str]):
    """Each text -> the unit vector of the first vocabulary word it contains (else a shared 'other' axis)."""

    def encode(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(vocabulary) + 1), dtype=np.float32)
        for i, text in enumerate(texts):
            hits = [j for j, word in enumerate(vocabulary) if word in text]
            out[i, hits[0] if hits else len(vocabulary)] = 1.0
        return out

    return encode


def test_assign_topics_takes_the_most_similar_topic_and_others_below_the_threshold() -> None:
    topics = (Topic("Food", "美食"), Topic("Gaming", "游戏"))
    encode = one_hot_encoder(["美食", "游戏"])
    videos = [("v1", "今天的美食是饺子"), ("v2", "游戏十连抽"), ("v3", "随便拍拍"), ("v4", "")]
    plain = assign_topics(videos, topics, encode)
    assert plain.assigned == ["Food", "Gaming", "Food", OTHERS]  # v3: all cosines 0, the first topic wins
    strict = assign_topics(videos, topics, encode, min_score=0.5)
    assert strict.assigned == ["Food", "Gaming", OTHERS, OTHERS]
    assert strict.counts() == {"Food": 1, "Gaming": 1, OTHERS: 2}
    agree = agreement(strict, {"v1": "美食", "v2": "Food", "v3": "旅行", "v4": ""})
    assert (agree["labelled"], agree["comparable"], agree["agree"]) == (3, 2, 1)
    assert agree["unmatched_labels"] == ["旅行"] and agree["confusion"]["Food"] == {"Gaming": 1}


def test_topic_file_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("# comment\nFood\t美食\n\n游戏\n", encoding="utf-8")
    assert read_topics(path) == (Topic("Food", "美食"), Topic("游戏", "游戏"))
    path.write_text("Food\nFood\n", encoding="utf-8")
    with pytest.raises(UsageError, match="'Food' appears twice"):
        read_topics(path)
    path.write_text("Others\n", encoding="utf-8")
    with pytest.raises(UsageError, match="reserved"):
        read_topics(path)


def test_topics_on_the_sample(tmp_path: Path) -> None:
    out = tmp_path / "topics"
    result = run_json("analyze", "topics", "--data", "sample", "--encoder", "hash:64", "--out", str(out))
    n = result["videos"]
    assert n == 28 and sum(result["counts"].values()) == n
    assert list(result["counts"]) == [*(t["name"] for t in result["topics"]), OTHERS]
    table = pl.read_parquet(out / "topics.parquet")
    assert table.height == n and table["video_id"].n_unique() == n  # every video once
    assert set(table["topic"]) <= set(result["counts"])
    assert {k: v for k, v in table["topic"].value_counts().iter_rows()} == {k: v for k, v in result["counts"].items() if v}
    assert (out / "topics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "table5.json").read_text(encoding="utf-8"))["counts"] == result["counts"]
    assert result["agreement"]["labelled"] == 28 and result["comparable_to_paper"] is False
    assert result["paper"]["Others"] == 9176


def test_topics_with_an_empty_topic_list_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_text("# nothing here\n\n", encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, stderr = run("analyze", "topics", "--data", "sample", "--encoder", "hash", "--topics", str(topics),
                               "--out", str(out))
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "no topics" in stderr and str(topics) in stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.") and
                                     not p.name.endswith(".lock")]


# ---------------------------------------------------------------- real corpora


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imports")
    kdconv, lccc = shared_path("kdconv_travel"), shared_path("lccc_toy", "toy_data.json")
    out = {"kdconv": root / "kdconv", "lccc": root / "lccc"}
    assert run("data", "import", "--from", "kdconv", str(kdconv), "--out", str(out["kdconv"]))[0] == 0
    assert run("data", "import", "--from", "lccc", str(lccc), "--out", str(out["lccc"]))[0] == 0
    return out


def test_stats_and_topics_on_kdconv_and_lccc_imports(imported: dict[str, Path]) -> None:
    kdconv = run_json("analyze", "stats", "--data", str(imported["kdconv"]))
    # KdConv travel dev + test: 300 dialogues, one record per utterance after the first
    assert kdconv["splits"]["total"]["Videos"] == 300
    assert kdconv["splits"]["total"]["Dialogues"] == 2691 + 2813 - 300
    assert kdconv["splits"]["total"]["Avg-v"] is None  # no durations known: none averaged as zero
    assert kdconv["splits"]["total"]["videos_unknown_duration"] == 300
    lccc = run_json("analyze", "stats", "--data", str(imported["lccc"]))
    assert lccc["splits"]["total"]["Videos"] == 0 and lccc["splits"]["total"]["Dialogues"] == 1400
    assert lccc["splits"]["total"]["dialogues_without_video"] == 1400
    topics = run_json("analyze", "topics", "--data", str(imported["kdconv"]), "--encoder", "hash:64")
    assert topics["videos"] == 300 and sum(topics["counts"].values()) == 300
    empty = run_json("analyze", "topics", "--data", str(imported["lccc"]), "--encoder", "hash:64")
    assert empty["videos"] == 0 and sum(empty["counts"].values()) == 0 and "text-only" in empty["notes"][0]


# ---------------------------------------------------------------- analyze all


def test_analyze_all_writes_every_table_beside_the_paper(tmp_path: Path) -> None:
    out = tmp_path / "all"
    summary = run_json("analyze", "all", "--data", "sample", "--encoder", "hash:64", "--out", str(out))
    tables = summary["tables"]
    assert tables["table2"]["comparable_to_paper"] is False and tables["table2"]["why_not"]
    assert tables["table5"]["paper"]["Science"] == 8448 and tables["table5"]["caveats"]
    assert tables["table6"] == {"ran": False, "why": "needs video frames (--frames) and a local Chinese-CLIP (--clip)"}
    assert tables["figure2b"]["ran"] is False and tables["knowledge_types"]["ran"] is False
    names = {p.name for p in out.iterdir()}
    assert {"analysis.md", "analysis.json", "table2.md", "table2.json", "table5.md", "table5.json",
            "topics.parquet", "topics.png"} <= names
    written = json.loads((out / "table2.json").read_text(encoding="utf-8"))
    assert written["splits"]["total"]["Avg-t"] == pytest.approx(341 / 161)
    assert written["paper"]["total"]["Avg-t"] == 2.25
    markdown = (out / "analysis.md").read_text(encoding="utf-8")
    assert "| Total (paper) | 38,703 |" in markdown and "comparable to the paper: no" in markdown
    assert "## Table 6" in markdown and "not run:" in markdown
