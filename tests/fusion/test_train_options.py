"""`tiktalk train --config FILE.toml|yaml` equals the same flags, `--from-run` seeds a run's
options (flags override, run.json records the sources), `--report-to tensorboard` writes
event files under the run directory (offline)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

import tests.models.toy_chat_model  # noqa: F401  (registers toy-char-lm)
from tiktalk.commands.main import main

FLAGS = ["--model", "toy-char-lm", "--preset", "tiny", "--data", "sample", "--batch-size", "8", "--seed", "3",
         "--lr", "0.01", "--max-steps", "2", "--log-every", "1", "--cpu", "--no-progress"]
TOML = """model = "toy-char-lm"
preset = "tiny"
data = "sample"
batch_size = 8
seed = 3
lr = 0.01
max_steps = 2
log_every = 1
cpu = true
progress = false
"""


def _run_json(run) -> dict:
    info = json.loads((run / "run.json").read_text())
    info["cli"].pop("seeded_from", None)
    return {"train_config": info["train_config"], "cli": info["cli"], "model": info["model"]}


def test_a_toml_config_equals_the_same_flags(tmp_path, capsys):
    (tmp_path / "train.toml").write_text(TOML)
    assert main(["train", *FLAGS, "--out", str(tmp_path / "flags")]) == 0
    assert main(["train", "--config", str(tmp_path / "train.toml"), "--out", str(tmp_path / "file")]) == 0
    assert _run_json(tmp_path / "flags") == _run_json(tmp_path / "file")
    a = load_file(tmp_path / "flags" / "model" / "model.safetensors")
    b = load_file(tmp_path / "file" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    seeded = json.loads((tmp_path / "file" / "run.json").read_text())["cli"]["seeded_from"]
    assert seeded == {"config": str((tmp_path / "train.toml").resolve())}


def test_yaml_flags_and_an_earlier_run_seed_in_that_order(tmp_path, capsys):
    assert main(["train", *FLAGS, "--out", str(tmp_path / "first")]) == 0
    (tmp_path / "more.yaml").write_text("lr: 2e-2\nmax-steps: 3\n")  # YAML reads 2e-2 as text
    assert main(["train", "--from-run", str(tmp_path / "first"), "--config", str(tmp_path / "more.yaml"),
                 "--seed", "5", "--out", str(tmp_path / "second")]) == 0
    first = _run_json(tmp_path / "first")
    second = json.loads((tmp_path / "second" / "run.json").read_text())
    expected = {**first["train_config"], "lr": 0.02, "max_steps": 3, "seed": 5}
    assert second["train_config"] == expected and second["model"] == "toy-char-lm"
    assert second["cli"]["seeded_from"] == {"from_run": str((tmp_path / "first").resolve()),
                                            "config": str((tmp_path / "more.yaml").resolve())}


@pytest.mark.parametrize(("text", "message"), [
    ("nope = 1\n", r"unknown option 'nope'"),
    ('max_steps = "many"\n', r"option max_steps = 'many' must be int"),
    ("cpu = 1\n", r"option cpu = 1 must be true/false"),
    ("max_steps = \n", r"not valid TOML"),
])
def test_a_bad_config_file_is_one_line_naming_it(tmp_path, capsys, text, message):
    import re

    (tmp_path / "bad.toml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and re.search(message, err) and len(err.strip().splitlines()) == 1


def test_resume_refuses_a_config_file(tmp_path, capsys):
    (tmp_path / "train.toml").write_text(TOML)
    assert main(["train", "--resume", "--config", str(tmp_path / "train.toml"), "--out", str(tmp_path / "r")]) == 2
    assert "--resume takes every option" in capsys.readouterr().err


def test_report_to_tensorboard_writes_event_files_under_the_run(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="tensorboard is in the dev extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", *FLAGS, "--report-to", "tensorboard", "--out", str(run)]) == 0
    assert sorted((run / "trackers" / "tiktalk").glob("events.out.tfevents.*")), "no event files"
    acc = EventAccumulator(str(run / "trackers" / "tiktalk"))
    acc.Reload()
    losses = [e.value for e in acc.Scalars("train/loss")]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses == pytest.approx([m["loss"] for m in metrics], rel=1e-6)
    assert json.loads((run / "run.json").read_text())["train_config"]["report_to"] == "tensorboard"
