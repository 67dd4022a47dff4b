"""`tiktalk train` / `tiktalk generate` on the shipped sample dataset (toy model; Maria slow)."""

from __future__ import annotations

import json
import shutil
import warnings

import polars as pl
import pytest
import torch

import tests.models.toy_chat_model  # noqa: F401  (registers toy-char-lm)
from retrieval.cache import KNOWLEDGE_CACHE_SCHEMA, write_knowledge_cache
from tiktalk.commands.main import main
from tiktalk.dataset import load_dataset, sample_dir
from tiktalk.models.modalities import parse_modalities
from tiktalk.runs.training import check_knowledge_budget, load_examples
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
    # --modalities reaches the model as the canonical tuple (parsed once, at the command line)
    assert info["model"] == "toy-char-lm" and info["model_config"]["modalities"] == ["text", "knowledge"]
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

    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+K"))
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


# ---------------------------------------------------------------- --resume takes the run's options


TOY_RUN = ["--model", "toy-char-lm", "--preset", "tiny", "--data", "sample", "--batch-size", "8", "--seed", "7",
           "--lr", "0.01", "--max-steps", "6", "--save-every", "2", "--log-every", "1", "--cpu", "--no-progress"]


def test_resume_with_no_other_flag_restores_every_option_and_reaches_the_same_weights(tmp_path, capsys):
    from safetensors.torch import load_file

    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["train", *TOY_RUN, "--out", str(full)]) == 0
    assert main(["train", *TOY_RUN, "--out", str(cut)]) == 0
    # simulate a kill after the step-4 checkpoint: the later checkpoint and the model are gone
    shutil.rmtree(cut / "checkpoints" / "step-6")
    shutil.rmtree(cut / "model")
    capsys.readouterr()

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. "resuming with 380 total steps instead of 6"
        rc = main(["train", "--resume", "--out", str(cut), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 6  # the run's max_steps, not 20 epochs
    a, b = (load_file(str(run / "model" / "model.safetensors")) for run in (full, cut))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    before, after = (json.loads((run / "run.json").read_text()) for run in (full, cut))
    assert after["train_config"] == before["train_config"]
    assert after["train_config"]["batch_size"] == 8 and after["train_config"]["seed"] == 7
    assert after["cli"] == before["cli"] and after["data"] == before["data"]
    assert after["resumed"] == [{"from_step": 4}]


def test_resume_refuses_every_contradicting_flag_in_one_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TOY_RUN, "--max-steps", "2", "--out", str(run)]) == 0
    saved = (run / "run.json").read_text()
    capsys.readouterr()
    # --data (the sample by its path) and --lr 0.01 agree with run.json; --max-steps may change on resumption
    rc = main(["train", "--resume", "--out", str(run), "--batch-size", "64", "--seed", "42", "--split", "val",
               "--modalities", "T+I", "--no-find-unused-parameters", "--data", str(sample_dir()), "--lr", "0.01",
               "--max-steps", "3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1, err  # one error line
    for conflict in ("--batch-size 64 (the run has 8)", "--seed 42 (the run has 7)", "--split val (the run has train)",
                     "--modalities T+I (the run has None)",
                     "--no-find-unused-parameters (the run has find_unused_parameters=True)"):
        assert conflict in err
    assert "--data" not in err and "--lr" not in err and "--max-steps" not in err
    assert (run / "run.json").read_text() == saved  # nothing was touched

    rc = main(["train", "--resume", "--out", str(tmp_path / "nothing")])
    assert rc == 2 and "nothing/run.json does not exist" in capsys.readouterr().err
    rc = main(["train", "--resume", "--overwrite", "--out", str(run)])
    assert rc == 2 and "either --resume (continue RUN) or --overwrite" in capsys.readouterr().err


# ---------------------------------------------------------------- missing features


@pytest.fixture(scope="module")
def sample_with_missing_frames(tmp_path_factory):
    """The sample twice: without frames for 5 train videos, and without any frames."""
    from tiktalk.dataset import write_dataset

    ds = load_dataset("sample")
    dropped = set(sorted(ds.split("train").videos["video_id"].to_list())[:5])
    root = tmp_path_factory.mktemp("data")
    write_dataset(ds, root / "partial",
                  features=lambda vid: (None if vid in dropped else ds.features(vid)[0], ds.features(vid)[1]))
    write_dataset(ds, root / "none", features=lambda vid: (None, ds.features(vid)[1]))
    lacking = sum(ex.video_id in dropped for ex in ds.examples("train", with_features=False))
    return root, lacking


def test_a_modality_without_features_is_an_error_unless_allowed(tmp_path, capsys, sample_with_missing_frames):
    root, lacking = sample_with_missing_frames
    assert 0 < lacking < 147
    toy = ["--model", "toy-char-lm", "--preset", "tiny", "--modalities", "T+I", "--max-steps", "1", *FAST]

    rc = main(["train", *toy, "--data", str(root / "none"), "--out", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 2
    assert (f"147 of 147 training examples (19 of 19 videos) have no frames features in "
            f"{root / 'none' / 'features' / 'frames.safetensors'} (no such file)") in err
    assert "--allow-missing-features" in err

    rc = main(["train", *toy, "--data", str(root / "partial"), "--out", str(tmp_path / "partial")])
    err = capsys.readouterr().err
    assert rc == 2
    assert (f"{lacking} of 147 training examples (5 of 19 videos) have no frames features in "
            f"{root / 'partial' / 'features' / 'frames.safetensors'}") in err
    assert not (tmp_path / "partial").exists()

    rc = main(["train", *toy, "--data", str(root / "partial"), "--allow-missing-features",
               "--out", str(tmp_path / "partial")])
    assert rc == 0, capsys.readouterr().err
    info = json.loads((tmp_path / "partial" / "run.json").read_text())
    assert info["features_present"] == {"vision": pytest.approx(1 - lacking / 147)}
    assert info["cli"]["allow_missing_features"] is True
    # audio is complete, but the toy model reads only the modalities it was given
    assert info["data"]["feature_files"]["audio"] == str(root / "partial" / "features" / "audio.safetensors")
