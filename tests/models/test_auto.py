"""Saved models open with transformers' Auto classes (tiktalk.models.auto): ``import fusion``
registers ``tiktalk-maria``; the Auto model gives the saved model's logits and its
``save_pretrained`` / ``from_pretrained`` round-trip exactly."""

from __future__ import annotations

import json

import torch

from tests.baselines.examples import make_examples
from tiktalk.models.modalities import parse_modalities
from tiktalk.models.saving import MODEL_FILE, read_saved_model


def _logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_a_saved_maria_opens_with_auto_config_and_auto_model(tmp_path):
    from transformers import AutoConfig, AutoModel

    import fusion  # noqa: F401  (registers tiktalk-maria)
    from fusion.modeling_maria import MariaForDialogue

    torch.manual_seed(0)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+K"))
    model.save_pretrained(tmp_path / "run" / "model")
    config = AutoConfig.from_pretrained(tmp_path / "run" / "model")
    assert config.model_type == "tiktalk-maria"
    assert config.tiktalk_config["modalities"] == ["text", "knowledge"]
    auto = AutoModel.from_pretrained(tmp_path / "run" / "model")
    assert type(auto).__name__ == "TiktalkMariaModel" and isinstance(auto.model, MariaForDialogue)
    batch = model.collate(make_examples(), train=False)
    torch.testing.assert_close(_logits(auto, batch), _logits(model, batch), rtol=0, atol=0)

    auto.save_pretrained(tmp_path / "again")  # the library's format, both config files
    assert read_saved_model(tmp_path / "again").file == MODEL_FILE
    again = AutoModel.from_pretrained(tmp_path / "again")
    assert set(again.state_dict()) == set(auto.state_dict())
    for key, value in auto.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    torch.testing.assert_close(_logits(again, batch), _logits(model, batch), rtol=0, atol=0)


def test_config_json_is_derived_from_the_saved_config_and_old_saves_still_load(tmp_path):
    from fusion.modeling_maria import MariaForDialogue

    torch.manual_seed(0)
    model = MariaForDialogue.from_preset("tiny")
    model.save_pretrained(tmp_path / "m")
    ours = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    auto = json.loads((tmp_path / "m" / "config.json").read_text())
    assert auto["model_type"] == "tiktalk-maria" and auto["tiktalk_config"] == ours["config"]
    (tmp_path / "m" / "config.json").unlink()  # a save from before config.json existed
    loaded = MariaForDialogue.from_pretrained(tmp_path / "m")
    batch = model.collate(make_examples(), train=False)
    torch.testing.assert_close(_logits(loaded, batch), _logits(model, batch), rtol=0, atol=0)


def test_registering_is_idempotent_and_names_the_registry_entry():
    from tiktalk.models.auto import auto_model_type, register_auto_classes

    first = register_auto_classes("maria")
    assert register_auto_classes("maria") is first
    assert first[0].model_type == auto_model_type("maria") == "tiktalk-maria"
    assert first[1].config_class is first[0]
