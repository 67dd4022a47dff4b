"""One contract every ChatModel keeps (pykeen-style: a generic case, one subclass per model).

Each subclass only names the registered model, its preset overrides, the per-video
features it reads, generation kwargs and bad config values; the generic case checks: registration, two AdamW steps lower the
loss on a fixed batch, collate draws only from the generator it is given, the feature
modalities it declares, generate returns one string per example,
save/load gives equal logits, bad config values raise ValueError naming field and value.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, ClassVar

import pytest
import torch

from tests.baselines.examples import make_examples
from tiktalk.models.base import get_model_class, model_names
from tiktalk.models.modalities import FEATURE_FIELDS, parse_modalities
from tiktalk.models.saving import MODEL_FILE, read_saved_model


class ChatModelContract:
    model_name: ClassVar[str]
    preset_overrides: ClassVar[dict[str, Any]] = {}
    generate_kwargs: ClassVar[dict[str, Any]] = {}
    # (overrides for from_preset("tiny"), regex the ValueError message must match)
    bad_configs: ClassVar[list[tuple[dict[str, Any], str]]] = []
    lr: ClassVar[float] = 1e-3
    feature_modalities: ClassVar[tuple[str, ...]] = ()  # per-video features the tiny preset reads
    requires_module: ClassVar[str | None] = None

    @pytest.fixture(autouse=True)
    def _module_present(self):
        if self.requires_module is not None:
            try:
                importlib.import_module(self.requires_module)
            except ImportError as err:
                pytest.skip(f"{self.requires_module} is not importable yet ({err})")

    def make_model(self):
        torch.manual_seed(0)
        return get_model_class(self.model_name).from_preset("tiny", **self.preset_overrides)

    def test_registered_under_its_name(self):
        cls = get_model_class(self.model_name)
        assert cls.name == self.model_name
        assert self.model_name in model_names()

    def test_two_training_steps_lower_the_loss(self):
        model = self.make_model()
        torch.manual_seed(1)
        batch = model.collate(make_examples(), train=True)  # one fixed batch, reused

        def eval_loss() -> float:
            model.eval()
            with torch.no_grad():
                return float(model(**batch).loss)

        before = eval_loss()
        params = [p for p in model.parameters() if p.requires_grad]
        assert params, "no trainable parameters"
        optimizer = torch.optim.AdamW(params, lr=self.lr)
        model.train()
        for _ in range(2):
            optimizer.zero_grad()
            loss = model(**batch).loss
            assert loss.dim() == 0 and torch.isfinite(loss)
            loss.backward()
            optimizer.step()
        after = eval_loss()
        assert after < before, f"loss did not drop: {before:.4f} -> {after:.4f}"

    def test_collate_draws_only_from_the_generator_it_is_given(self):
        # The trainer's exact resume relies on it: a batch is a pure function of (examples,
        # seed), and the global generators (the dropout stream) are never drawn from.
        model = self.make_model()
        torch.manual_seed(5)
        before = torch.get_rng_state()
        first = model.collate(make_examples(), train=True, generator=torch.Generator().manual_seed(3))
        again = model.collate(make_examples(), train=True, generator=torch.Generator().manual_seed(3))
        assert torch.equal(torch.get_rng_state(), before)
        assert first.keys() == again.keys()
        for key, value in first.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, again[key]), key

    def test_feature_modalities_are_the_features_it_reads(self):
        modalities = self.make_model().feature_modalities()
        assert modalities == self.feature_modalities
        assert set(modalities) <= set(FEATURE_FIELDS)  # ones the dataset provides

    def test_generate_returns_one_string_per_example(self):
        model = self.make_model()
        examples = make_examples(with_response=False)
        out = model.generate(examples, **self.generate_kwargs)
        assert isinstance(out, list) and len(out) == len(examples)
        assert all(isinstance(s, str) for s in out)

    def test_save_load_gives_equal_logits(self, tmp_path):
        model = self.make_model().eval()
        batch = model.collate(make_examples(), train=False)
        model.save_pretrained(tmp_path / "saved")
        loaded = type(model).from_pretrained(tmp_path / "saved").eval()
        assert set(loaded.state_dict()) == set(model.state_dict())
        with torch.no_grad():
            expected, got = model(**batch).logits, loaded(**batch).logits
        assert expected.shape == got.shape
        assert torch.allclose(expected, got, atol=1e-6)
        assert not any(p.suffix in {".pkl", ".bin", ".pt"} for p in (tmp_path / "saved").iterdir())
        saved = read_saved_model(tmp_path / "saved")  # the platform's one format, for every model
        assert saved.file == MODEL_FILE and saved.model_type == self.model_name
        assert saved.config == json.loads(json.dumps(model.saved_config().to_dict()))

    def test_transformers_auto_classes_open_the_save(self, tmp_path):
        from transformers import AutoConfig, AutoModel

        import baselines  # noqa: F401  (registers the tiktalk-* model types)

        model = self.make_model().eval()
        model.save_pretrained(tmp_path / "saved")
        config = AutoConfig.from_pretrained(tmp_path / "saved")
        if self.model_name == "causal-lm":  # its config.json is the LM's own (Hugging Face form)
            assert config.model_type == model.lm.config.model_type
            return
        assert config.model_type == f"tiktalk-{self.model_name}"
        assert config.tiktalk_config == json.loads(json.dumps(model.saved_config().to_dict()))
        auto = AutoModel.from_pretrained(tmp_path / "saved")
        batch = model.collate(make_examples(), train=False)
        with torch.no_grad():
            torch.testing.assert_close(auto(**batch).logits, model(**batch).logits, rtol=0, atol=0)

    def test_modalities_and_presets_are_declared_on_the_class(self):
        cls = get_model_class(self.model_name)
        assert "tiny" in cls.presets
        assert parse_modalities(cls.required_modalities + cls.optional_modalities)  # known names
        if cls.required_modalities:  # a fixed-modality model reads at least those
            assert set(self.feature_modalities) <= set(cls.required_modalities)

    def test_bad_config_values_raise_errors_that_name_them(self):
        if not self.bad_configs:
            pytest.skip(f"{self.model_name}: no bad config cases declared")
        cls = get_model_class(self.model_name)
        for overrides, match in self.bad_configs:
            with pytest.raises(ValueError, match=match):
                cls.from_preset("tiny", **{**self.preset_overrides, **overrides})


class TestDialoGPTContract(ChatModelContract):
    model_name = "dialogpt"
    generate_kwargs: ClassVar = {"seed": 0, "max_new_tokens": 6}
    bad_configs: ClassVar = [
        ({"no_such_field": 1}, r"unknown field\(s\) \['no_such_field'\]"),
        ({"n_embd": 30}, r"n_embd \(30\) is not a multiple of n_head \(4\)"),
        ({"loss_on": "prompt"}, r"loss_on = 'prompt'"),
        ({"top_k": -1}, r"top_k = -1"),
        ({"dropout": 1.5}, r"dropout = 1\.5"),
        ({"max_len": 1000}, r"max_len = 1000.*n_positions"),
    ]


class TestCausalLMContract(ChatModelContract):
    model_name = "causal-lm"
    generate_kwargs: ClassVar = {"do_sample": False, "max_new_tokens": 6}
    bad_configs: ClassVar = [
        ({"no_such_field": 1}, r"unknown field\(s\) \['no_such_field'\]"),
        ({"round_template": "问：{q}"}, r"round_template = '问：\{q\}'"),
        ({"round_template": "{r}{q}"}, r"round_template.*\{q\} before \{r\}"),
        ({"knowledge_template": "知识：{kg}"}, r"knowledge_template"),
        ({"lora_r": -2}, r"lora_r = -2"),
        ({"max_prompt_tokens": 0}, r"max_prompt_tokens = 0"),
        ({"max_prompt_tokens": 64, "max_knowledge_tokens": 40}, r"max_knowledge_tokens = 40: .* half"),
        ({"lm_config": None}, r"lm_path = None"),
    ]


class TestLivebotContract(ChatModelContract):
    model_name = "livebot"
    feature_modalities = ("vision",)
    generate_kwargs: ClassVar = {"max_new_tokens": 6}
    bad_configs: ClassVar = [
        ({"no_such_field": 1}, r"unknown field\(s\) \['no_such_field'\]"),
        ({"d_model": 30}, r"d_model \(30\) is not a multiple of n_heads \(4\)"),
        ({"n_layers": 0}, r"n_layers = 0"),
        ({"dropout": -0.1}, r"dropout = -0\.1"),
    ]


class TestBlip2ImgContract(ChatModelContract):
    model_name = "blip2-img"
    feature_modalities = ("vision",)
    generate_kwargs: ClassVar = {"do_sample": False, "max_new_tokens": 6}
    lr = 1e-2  # only the Q-Former side trains; the LM is frozen
    bad_configs: ClassVar = [
        ({"no_such_field": 1}, r"unknown field\(s\) \['no_such_field'\]"),
        ({"num_query_tokens": 0}, r"num_query_tokens = 0"),
        ({"qformer_hidden_size": 30}, r"qformer_hidden_size = 30.*qformer_heads \(4\)"),
        ({"video_pooling": "max"}, r"video_pooling = 'max'"),
    ]


class TestBlip2VideoContract(TestBlip2ImgContract):
    model_name = "blip2-video"


class TestMariaContract(ChatModelContract):
    model_name = "maria"
    feature_modalities = ("vision", "audio")
    requires_module = "fusion.modeling_maria"
    generate_kwargs: ClassVar = {"num_beams": 1, "max_length": 6}
    bad_configs: ClassVar = [
        ({"modalities": ("text", "x")}, r"unknown modality 'x'"),
        ({"modalities": ("vision", "text")}, r"modalities go in the order"),
        ({"modalities": "T+I"}, r"expected a tuple of modality names"),
        ({"response_budget": 2}, r"response_budget \(2\)"),
    ]
