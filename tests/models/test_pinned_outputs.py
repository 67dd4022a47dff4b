"""Seeded tiny models give the numbers they gave before the platform refactor (issue 19).

The values were computed with the code as it stood before the config base and the saved
format moved to the platform: same seed -> same weights, logits, response scores and
decoded text. A change here is a change of numerics, not of structure.
"""

from __future__ import annotations

import pytest
import torch

from tests.baselines.examples import make_examples


def _close(values, expected, tol=1e-4):
    assert [float(v) for v in values] == pytest.approx(expected, abs=tol)


def test_tiny_maria_is_pinned():
    from fusion.modeling_maria import MariaForDialogue

    torch.manual_seed(0)
    model = MariaForDialogue.from_preset("tiny").eval()
    _close(model.bert.embeddings.word_embeddings.weight[100, :4].detach(),
           [0.023791, 0.015418, 0.001978, 0.006095], 1e-6)
    examples = make_examples()
    with torch.no_grad():
        logits = model(**model.collate(examples[:2], train=False)).logits
    assert logits.shape == (2, 78, 21232)
    _close(logits[0, 0, :3], [0.0, 0.00747, -0.17192])
    _close(logits[1, 5, 10:13], [0.11968, 0.03979, 0.22464])
    scores = model.score(examples)
    assert [n for _, n in scores] == [12, 8, 7, 7]
    _close([s for s, _ in scores], [120.047, 79.3403, 70.2165, 69.821], 1e-3)
    assert model.generate(make_examples(with_response=False)[:2], max_length=6) == ["颿鍍耇蒩", "颿鍍耇蒩"]


def test_tiny_dialogpt_is_pinned():
    from baselines.dialogpt import DialoGPTChat

    torch.manual_seed(0)
    model = DialoGPTChat.from_preset("tiny").eval()
    _close(model.gpt2.transformer.wte.weight[100, :4].detach(), [-0.020299, -0.02226, 0.022438, 0.001192], 1e-6)
    examples = make_examples()
    with torch.no_grad():
        logits = model(**model.collate(examples[:2])).logits
    assert logits.shape == (2, 39, 21232)
    _close(logits[0, 0, :3], [-0.03091, -0.22307, -0.05555])
    _close(logits[1, 3, 10:13], [0.13598, 0.10977, -0.21631])
    scores = model.score(examples)
    assert [n for _, n in scores] == [12, 8, 7, 7]
    _close([s for s, _ in scores], [119.495, 79.388, 69.4962, 69.0708], 1e-3)
    assert model.generate(make_examples(with_response=False)[:2], seed=3, max_new_tokens=6) == [
        "漸栭藩環烃誖", "决讌匣祪珫涂"]


def test_table3_rows_read_what_the_model_classes_state():
    """paper.py reads a baseline's modalities from its class (through the registry), not a copy."""
    from tiktalk.paper import TABLE3

    assert {k: row.modalities_read for k, row in TABLE3.items()} == {
        "dialogpt": "T", "chatglm": "T", "livebot": "T+I", "blip2-img": "T+I", "blip2-video": "T+I",
        "maria": "T+I", "maria+audio": "T+I+A", "maria+c3kg": "T+I+K", "text": "T", "audio+text": "T+A",
        "c3kg+text": "T+K"}
