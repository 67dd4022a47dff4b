"""`tiktalk train` / `tiktalk generate` on the shipped sample dataset (toy model; Maria slow)."""

from __future__ import annotations

import json

import polars as pl
import pytest

import tests.fusion.toy_chat_model  # noqa: F401  (registers toy-char-lm)
from retrieval.cache import KNOWLEDGE_CACHE_SCHEMA, write_knowledge_cache
from tiktalk.commands.main import main
from tiktalk.commands.train import check_knowledge_budget, load_examples
from tiktalk.dataset import load_dataset
from tiktalk.types import KnowledgeBudget

FAST = ["--cpu", "--no-progress", "--batch-size", "8", "--lr", "0.01"]


def write_knowledge(path, dialogue_ids, text="有人做饭，感到开心"):
    pl.DataFrame(
        {
            "dialogue_id": list(dialogue_ids),
            "heads": [["有人做饭"]] * len(dialogue_ids),
            "scores": [[0.9]] * len(dialogue_ids),
            "knowledge": [text] * len(dialogue_ids),
        }
    ).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def sample_ids():
    ds = load_dataset("sample")
    return {s: [e.dialogue_id for e in ds.examples(s, with_features=False)] for s in ("train", "test")}


def test_train_generate_resume_on_the_sample(tmp_path, capsys, sample_ids):
    # knowledge for all but 5 train dialogues: counted in run.json and warned about
    knowledge = write_knowledge(tmp_path / "k.parquet", sample_ids["train"][5:] + sample_ids["test"])
    run = tmp_path / "run"
    rc = main(["train", "--model", "toy-char-lm", "--modalities", "T+K", "--data", "sample", "--knowledge",
               str(knowledge), "--preset", "tiny", "--max-steps", "2", "--save-every", "1", "--out", str(run),
               "--json", *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["steps"] == 2 and summary["train_examples"] == len(sample_ids["train"])
    assert "5 of 147 train dialogues have no row" in captured.err
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "toy-char-lm" and info["model_config"]["modalities"] == "T+K"
    assert info["knowledge"]["dialogues_without_knowledge"] == 5
    assert len(info["knowledge"]["sha256"]) == 64 and len(info["data"]["manifest_sha256"]) == 64
    assert info["train_config"]["batch_size"] == 8 and info["train_config"]["max_steps"] == 2

    preds = tmp_path / "preds.jsonl"
    rc = main(["generate", "--run", str(run), "--data", "sample", "--split", "test", "--out", str(preds),
               "--max-length", "3", "--batch-size", "3", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert json.loads(captured.out)["generate_options"] == {"max_length": 3}
    assert json.loads(captured.out)["knowledge"] == str(knowledge)  # the run's cache by default
    rows = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert [r["dialogue_id"] for r in rows] == sample_ids["test"]
    assert all(isinstance(r["response"], str) and len(r["response"].encode()) <= 3 for r in rows)

    # --resume without --model: the model comes from run.json, the weights from step-2
    with pytest.warns(UserWarning, match="resuming with 3 total steps instead of 2"):
        rc = main(["train", "--resume", "--data", "sample", "--knowledge", str(knowledge), "--modalities", "T+K",
                   "--max-steps", "3", "--save-every", "1", "--out", str(run), "--json", *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["resumed_from_step"] == 2 and summary["steps"] == 3
    assert json.loads((run / "run.json").read_text())["resumed"] == [{"from_step": 2}]


def test_train_errors_name_the_problem(tmp_path, capsys):
    rc = main(["train", "--model", "toy-char-lm", "--modalities", "T+I+K", "--preset", "tiny",
               "--out", str(tmp_path / "r"), *FAST])
    assert rc == 2
    assert "includes K (knowledge) but no --knowledge" in capsys.readouterr().err

    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"dialogue_id": ["a"], "text": ["x"]}).write_parquet(bad)
    rc = main(["train", "--model", "toy-char-lm", "--knowledge", str(bad), "--preset", "tiny",
               "--out", str(tmp_path / "r"), *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.parquet: knowledge cache column 'knowledge' is missing" in err

    rc = main(["train", "--model", "toy-char-lm", "--out", str(tmp_path / "r"), *FAST])
    assert rc == 2 and "pass --init PATH" in capsys.readouterr().err

    rc = main(["train", "--model", "nope", "--preset", "tiny", "--out", str(tmp_path / "r"), *FAST])
    assert rc == 2 and "unknown model 'nope'" in capsys.readouterr().err

    rc = main(["generate", "--run", str(tmp_path / "missing"), "--out", str(tmp_path / "p.jsonl")])
    assert rc == 2 and "not a run directory" in capsys.readouterr().err


def test_a_cache_for_another_budget_is_warned_about_and_recorded(tmp_path, capsys, sample_ids):
    from fusion.modeling_maria import MariaForDialogue

    model = MariaForDialogue.from_preset("tiny", modalities="T+K")
    ids = sample_ids["train"]
    for budget, warned in ((KnowledgeBudget(30), True), (model.knowledge_budget(), False)):
        path = tmp_path / f"k{budget.max_tokens}.parquet"
        frame = pl.DataFrame({"dialogue_id": ids, "query": ["q"] * len(ids), "heads": [[]] * len(ids),
                              "head_ids": [[]] * len(ids), "families": [[]] * len(ids), "scores": [[]] * len(ids),
                              "knowledge": ["有人做饭，感到开心"] * len(ids)}, schema=KNOWLEDGE_CACHE_SCHEMA)
        write_knowledge_cache(frame, path, {"budget": budget.as_dict()})
        _, info = load_examples("sample", "train", str(path))
        assert info["knowledge"]["linearised_for"] == budget.as_dict()
        check_knowledge_budget(model, info)
        assert info["knowledge"]["model_budget"] == model.knowledge_budget().as_dict()
        err = capsys.readouterr().err
        assert ("linearised for 30 tokens of 'characters', the model reads 69 tokens" in err) == warned, err


@pytest.mark.slow
def test_maria_tiny_smoke_command_from_the_issue(tmp_path, capsys, sample_ids):
    pytest.importorskip("fusion.modeling_maria")
    knowledge = write_knowledge(tmp_path / "k.parquet", sample_ids["train"] + sample_ids["test"])
    run, preds = tmp_path / "run", tmp_path / "p.jsonl"
    assert main(["train", "--model", "maria", "--modalities", "T+I+A+K", "--preset", "tiny", "--data", "sample",
                 "--knowledge", str(knowledge), "--max-steps", "2", "--out", str(run), "--no-progress"]) == 0
    assert main(["generate", "--run", str(run), "--data", "sample", "--split", "test", "--out", str(preds),
                 "--max-length", "5"]) == 0
    rows = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert [r["dialogue_id"] for r in rows] == sample_ids["test"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_mrp", "loss_mcp", "loss_mkp"} <= metrics[-1].keys()
