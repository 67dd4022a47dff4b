"""Shared pieces: config round trip/validation, --modalities handling, CLI generate keywords."""

from __future__ import annotations

import pytest
import torch

from baselines._common import clean_decoded
from baselines.causal_lm import CausalLMChat
from baselines.dialogpt import DialoGPTChat, DialoGPTConfig
from baselines.livebot import LivebotChat
from tests.baselines.examples import make_examples
from tiktalk.models.modalities import parse_modalities


def test_config_round_trip_and_unknown_fields():
    config = DialoGPTConfig(n_embd=32, n_head=4, top_k=3)
    assert DialoGPTConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['n_embed'\]"):
        DialoGPTConfig.from_dict({"n_embed": 32})


def test_modalities_switch_knowledge_for_prompt_models():
    assert CausalLMChat.from_preset("tiny", modalities=parse_modalities("T")).config.use_knowledge is False
    assert CausalLMChat.from_preset("tiny", modalities=parse_modalities("T+K")).config.use_knowledge is True


@pytest.mark.parametrize(("cls", "spec", "match"), [
    (LivebotChat, "T", r"livebot: modalities T cannot be honoured; it reads T\+I"),
    (DialoGPTChat, "T+I", r"dialogpt: modalities T\+I cannot be honoured; it reads T$"),
    (CausalLMChat, "T+A", r"causal-lm: modalities T\+A.*T \(optionally \+K\)"),
])
def test_modalities_a_baseline_cannot_read_are_errors(cls, spec, match):
    with pytest.raises(ValueError, match=match):
        cls.from_preset("tiny", modalities=parse_modalities(spec))


@pytest.mark.parametrize("cls", [LivebotChat, DialoGPTChat, CausalLMChat])
def test_a_modalities_string_is_refused_it_is_parsed_once_at_the_boundary(cls):
    with pytest.raises(ValueError, match=r"modalities = 'T\+I': expected a tuple.*parse_modalities\('T\+I'\)"):
        cls.from_preset("tiny", modalities="T+I")


def test_cli_max_length_means_max_new_tokens():
    torch.manual_seed(0)
    model = LivebotChat.from_preset("tiny").eval()
    examples = make_examples(with_response=False)
    out = model.generate(examples, max_length=2, num_beams=5)  # num_beams: ignored by greedy
    assert all(len(s) <= 2 for s in out)  # one character per token here
    assert out == model.generate(examples, max_new_tokens=2)


def test_clean_decoded_removes_wordpiece_spaces_between_chinese():
    assert clean_decoded("你 好 ， hello 世 界") == "你好，hello世界"
    assert clean_decoded("o ##k 啊") == "ok啊"
    assert clean_decoded("[unused64] 好 的") == "好的"


def test_stack_frames_reads_token_grids_as_their_mean():
    """Livebot (and every pooled-frame reader) takes a grid frame as the mean of its tokens:
    for ResNet's 7x7 map that is its pooled feature."""
    import numpy as np

    from baselines._common import stack_frames
    from tiktalk.types import DialogueExample

    rng = np.random.default_rng(0)
    grid = rng.normal(size=(3, 4, 2048)).astype(np.float32)
    feats, mask = stack_frames([DialogueExample("g", ["x"], frames=grid),
                                DialogueExample("p", ["x"], frames=grid.mean(1))], max_frames=50, frame_dim=2048)
    assert feats.shape == (2, 3, 2048) and mask.all()
    assert torch.allclose(feats[0], feats[1])
    with pytest.raises(ValueError, match=r"frames have shape \(3, 4, 7\), expected \(n_frames, 2048\) or "
                                         r"\(n_frames, tokens, 2048\)"):
        stack_frames([DialogueExample("b", ["x"], frames=np.zeros((3, 4, 7), np.float32))], 50, 2048)
