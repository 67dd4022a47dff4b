"""Training and decoding agree: a tiny Maria that memorised two dialogues says them back.

The collator's training layout and the generator's step-by-step [MASK] layout are written
separately; if they disagreed (positions, token types, the UniLM mask, the knowledge or
frame rows) the memorised responses would not come back, for greedy or beam search.
"""

from __future__ import annotations

import numpy as np
import torch

from tiktalk.models.base import get_model_class
from tiktalk.models.modalities import parse_modalities
from tiktalk.types import DialogueExample


def test_memorised_responses_come_back() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    frames = [rng.standard_normal((3, 2048)).astype(np.float32) for _ in range(2)]
    train = [
        DialogueExample("a", ["这个披萨好香"], "我也想吃一口", frames=frames[0], knowledge="有人买披萨，感到满足"),
        DialogueExample("b", ["今天的猫好可爱"], "想摸摸它的头", frames=frames[1], knowledge="有人撸猫，感到放松"),
    ]
    model = get_model_class("maria").from_preset("tiny", modalities=parse_modalities("T+I+K"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(250):
        loss = model(**model.collate(train * 4, train=True, generator=generator)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.detach().item() < 1.0
    model.eval()
    prompts = [DialogueExample(e.dialogue_id, e.context, frames=e.frames, knowledge=e.knowledge) for e in train]
    expected = [e.response for e in train]
    assert model.generate(prompts, num_beams=1, max_length=12, repetition_penalty=1.0) == expected
    assert model.generate(prompts, num_beams=3, max_length=12, repetition_penalty=1.0) == expected
