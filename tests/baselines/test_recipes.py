"""Each model's default training recipe (from its source) and how ``tiktalk train`` applies it."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from tiktalk.commands.main import main
from tiktalk.commands.train import add_train_config_arguments, train_config_from_args
from tiktalk.io import read_json
from tiktalk.models.base import get_model_class
from tiktalk.models.train_config import TrainConfig

# The values the README's recipe table cites, per model (Maria: TrainConfig's own defaults).
EXPECTED = {
    "maria": {"lr": 3e-5, "weight_decay": 0.05, "adam_eps": 1e-8, "max_grad_norm": 1.0, "warmup_steps": 0,
              "lr_schedule": "linear", "batch_size": 64, "global_batch_size": 256, "epochs": 20, "max_steps": None},
    "dialogpt": {"lr": 2.6e-5, "weight_decay": 0.0, "adam_eps": 1e-9, "max_grad_norm": 2.0, "warmup_steps": 4000,
                 "lr_schedule": "linear", "batch_size": 4, "grad_accum_steps": 4, "global_batch_size": 16,
                 "epochs": 100},
    "causal-lm": {"lr": 1e-4, "weight_decay": 0.0, "batch_size": 4, "global_batch_size": 16, "max_steps": 3000,
                  "max_grad_norm": 1.0, "lr_schedule": "linear"},
    "livebot": {"lr": 3e-4, "weight_decay": 0.0, "max_grad_norm": 0.0, "batch_size": 64, "global_batch_size": 64,
                "epochs": 50, "lr_schedule": "constant"},
    "blip2-img": {"lr": 1e-5, "weight_decay": 0.05, "warmup_steps": 1000, "max_grad_norm": 0.0, "batch_size": 16,
                  "global_batch_size": 256, "epochs": 5, "lr_schedule": "cosine"},
    "blip2-video": {"lr": 1e-5, "weight_decay": 0.05, "warmup_steps": 1000, "max_grad_norm": 0.0,
                    "batch_size": 16, "global_batch_size": 256, "epochs": 5, "lr_schedule": "cosine"},
}


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_config_arguments(parser)
    return parser.parse_args(list(flags))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_model_trains_with_its_sources_recipe(name):
    recipe = get_model_class(name).default_recipe
    assert set(recipe) <= {f.name for f in dataclasses.fields(TrainConfig)}
    config = train_config_from_args(parse(), recipe)
    assert {k: getattr(config, k) for k in EXPECTED[name]} == EXPECTED[name]


def test_flags_override_the_recipe_and_a_length_flag_replaces_its_length():
    recipe = get_model_class("causal-lm").default_recipe
    config = train_config_from_args(parse("--lr", "0.5", "--weight-decay", "0.1"), recipe)
    assert (config.lr, config.weight_decay, config.batch_size, config.max_steps) == (0.5, 0.1, 4, 3000)
    by_epochs = train_config_from_args(parse("--epochs", "3"), recipe)
    assert (by_epochs.epochs, by_epochs.max_steps) == (3, None)  # not 3000 steps behind the user's back
    livebot = get_model_class("livebot").default_recipe
    assert train_config_from_args(parse("--max-steps", "7"), livebot).epochs == TrainConfig().epochs


def test_the_train_command_applies_the_recipe(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--model", "livebot", "--preset", "tiny", "--data", "sample", "--out", str(run),
                 "--max-steps", "1", "--batch-size", "8", "--no-progress"]) == 0
    info = read_json(run / "run.json")
    saved = info["train_config"]
    # a random tiny preset trains at its preset's lr; the rest of the source's recipe stays
    assert (saved["lr"], saved["weight_decay"], saved["max_grad_norm"]) == (3e-3, 0.0, 0.0)
    assert (saved["batch_size"], saved["max_steps"]) == (8, 1)
    assert info["cli"]["recipe"] == get_model_class("livebot").recipe("tiny")


def test_a_preset_carries_its_own_recipe_and_pretrained_weights_the_sources():
    maria = get_model_class("maria")
    assert maria.recipe(None) == maria.default_recipe == {"global_batch_size": 256}
    tiny = train_config_from_args(parse(), maria.recipe("tiny"))
    assert (tiny.lr, tiny.warmup_steps, tiny.max_steps, tiny.batch_size) == (3e-3, 60, 600, 16)
    assert tiny.global_batch_size is None and tiny.accumulation_steps(1) == 1
    assert tiny.weight_decay == 0.05  # Maria's recipe under the preset's changes
    livebot = get_model_class("livebot")
    assert livebot.recipe("tiny")["lr"] == 3e-3 and livebot.recipe(None)["lr"] == 3e-4
    assert livebot.recipe("tiny")["max_steps"] == 300  # the measured tiny recipe (tiktalk/models/base.py)
    assert livebot.recipe("no-such-preset") == livebot.default_recipe


def test_recipe_deviations_name_what_departs_from_the_source():
    maria = get_model_class("maria")
    followed = TrainConfig(**maria.recipe(None)).to_dict()
    assert maria.recipe_deviations(followed, 256) == []
    # one GPU at batch 64 without accumulation: 4x the optimizer steps of the paper's
    assert maria.recipe_deviations({**followed, "global_batch_size": None}, 64) == [
        "global_batch_size 64 (recipe 256)"]
    assert maria.recipe_deviations({**followed, "lr": 1e-3, "max_steps": 5}, 256) == [
        "lr 0.001 (recipe 3e-05)", "max_steps 5 (recipe None)"]
    causal = get_model_class("causal-lm")
    lora = TrainConfig(**causal.recipe(None, {"lora_r": 8})).to_dict()
    assert causal.recipe_deviations(lora, 32, {"lora_r": 8}) == []
    assert "lr 0.0005 (recipe 0.0001)" in causal.recipe_deviations(lora, 32)


def test_blip2_over_a_random_frozen_lm_warns(tmp_path, capsys):
    args = ["train", "--preset", "tiny", "--data", "sample", "--max-steps", "1", "--batch-size", "4", "--no-progress"]
    assert main([*args, "--model", "blip2-img", "--out", str(tmp_path / "b")]) == 0
    assert "random and frozen" in capsys.readouterr().err
    assert main([*args, "--model", "causal-lm", "--out", str(tmp_path / "c")]) == 0
    assert "random and frozen" not in capsys.readouterr().err  # causal-lm trains its own LM
    assert main([*args, "--model", "blip2-img", "--lm", str(tmp_path / "c"), "--out", str(tmp_path / "d")]) == 0
    assert "random and frozen" not in capsys.readouterr().err


def test_model_options_reach_the_model_and_run_json(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--model", "maria", "--preset", "tiny", "--data", "sample", "--modalities", "T",
                 "--model-option", "output_layer=maria", "--model-option", "response_budget=12",
                 "--out", str(run), "--max-steps", "1", "--batch-size", "4", "--no-progress"]) == 0
    info = read_json(run / "run.json")
    assert info["cli"]["model_options"] == {"output_layer": "maria", "response_budget": 12}
    assert (info["model_config"]["output_layer"], info["model_config"]["response_budget"]) == ("maria", 12)
    assert (info["global_batch_size"], info["optimizer_steps"]) == (4, 1)
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main(["train", "--model", "maria", "--preset", "tiny", "--model-option", "nope", "--out", str(tmp_path / "b")])
    assert exit_info.value.code == 2
