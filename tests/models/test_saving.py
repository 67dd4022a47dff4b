"""The one saved-model format (tiktalk.models.saving): every model writes it, old saves load.

Old layouts are written here byte for byte as earlier releases wrote them (Maria's flat
``maria_config.json``; the baselines' ``model_config.json``) from a fresh save, and must
load to the same weights; a config file that fits no layout is refused naming the format.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.baselines.examples import make_examples
from tiktalk.errors import FormatError
from tiktalk.models.modalities import parse_modalities
from tiktalk.models.saving import MODEL_FILE, read_saved_model, saved_model_type


def _same_logits(a, b, batch) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(**batch).logits, b.eval()(**batch).logits, rtol=0, atol=0)


def _to_old_layout(directory: Path, old_name: str, old_data: dict) -> None:
    (directory / MODEL_FILE).unlink()
    (directory / old_name).write_text(json.dumps(old_data), encoding="utf-8")


def test_the_saved_format_names_model_config_and_versions(tmp_path):
    from baselines.dialogpt import DialoGPTChat

    torch.manual_seed(0)
    DialoGPTChat.from_preset("tiny").save_pretrained(tmp_path / "m")
    data = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    assert data["format"] == "tiktalk-model" and data["format_version"] == 1
    assert data["model_type"] == "dialogpt" and data["config"]["n_embd"] == 32
    assert "torch" in data["library_versions"]
    assert saved_model_type(tmp_path / "m") == "dialogpt"
    assert saved_model_type(tmp_path) is None  # no saved model there


def test_an_old_maria_save_loads(tmp_path):
    from fusion.modeling_maria import MariaForDialogue

    torch.manual_seed(0)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+K"))
    model.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / MODEL_FILE).read_text())["config"]
    _to_old_layout(tmp_path / "old", "maria_config.json", config)  # flat fields, modalities a list
    saved = read_saved_model(tmp_path / "old")
    assert (saved.file, saved.model_type) == ("maria_config.json", "maria")
    loaded = MariaForDialogue.from_pretrained(tmp_path / "old")
    assert loaded.config.modalities == ("text", "knowledge")
    _same_logits(model, loaded, model.collate(make_examples(), train=False))
    loaded.save_pretrained(tmp_path / "new")  # a re-save writes the current format
    assert read_saved_model(tmp_path / "new").file == MODEL_FILE


def test_an_old_baseline_save_loads(tmp_path):
    from baselines.dialogpt import DialoGPTChat

    torch.manual_seed(0)
    model = DialoGPTChat.from_preset("tiny")
    model.save_pretrained(tmp_path / "old")
    data = json.loads((tmp_path / "old" / MODEL_FILE).read_text())
    _to_old_layout(tmp_path / "old", "model_config.json",
                   {"model": "dialogpt", "config": data["config"], "library_versions": data["library_versions"]})
    assert read_saved_model(tmp_path / "old").file == "model_config.json"
    loaded = DialoGPTChat.from_pretrained(tmp_path / "old")
    _same_logits(model, loaded, model.collate(make_examples()))


@pytest.mark.parametrize(("name", "content", "why"), [
    ("model_config.json", {"config": {}}, r"the model's name must be a string \(value None\)"),
    ("model_config.json", [1, 2], r"an old model_config.json must hold a JSON object"),
    (MODEL_FILE, {"format": "other", "model_type": "dialogpt", "config": {}}, r"field 'format' must be 'tiktalk-model'"),
    (MODEL_FILE, {"format": "tiktalk-model", "format_version": 9, "model_type": "dialogpt", "config": {}},
     r"format_version 9; this release reads up to 1"),
    (MODEL_FILE, {"format": "tiktalk-model", "format_version": 1, "model_type": "dialogpt", "config": 3},
     r"field 'config' must be an object"),
])
def test_a_config_file_of_no_known_layout_is_refused_in_one_line_naming_the_format(tmp_path, name, content, why):
    from baselines.dialogpt import DialoGPTChat

    (tmp_path / name).write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(FormatError, match=why) as err:
        DialoGPTChat.from_pretrained(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / name) in message
    assert "tiktalk_model.json (tiktalk-model format 1) + model.safetensors" in message


def test_a_save_of_another_model_is_refused_naming_both(tmp_path):
    from baselines.dialogpt import DialoGPTChat
    from baselines.livebot import LivebotChat

    DialoGPTChat.from_preset("tiny").save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match=r"holds a saved dialogpt model, not livebot"):
        LivebotChat.from_pretrained(tmp_path / "m")


def test_a_run_directory_loads_its_model(tmp_path):
    from baselines.livebot import LivebotChat

    torch.manual_seed(0)
    model = LivebotChat.from_preset("tiny")
    model.save_pretrained(tmp_path / "run" / "model")
    (tmp_path / "run" / "run.json").write_text("{}", encoding="utf-8")
    loaded = LivebotChat.from_pretrained(tmp_path / "run")
    _same_logits(model, loaded, model.collate(make_examples()))
