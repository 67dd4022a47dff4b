"""CUDA paths of Maria, run only where torch sees a GPU."""

from __future__ import annotations

import pytest
import torch

from tiktalk.models.base import get_model_class
from tiktalk.models.modalities import parse_modalities
from tiktalk.types import DialogueExample

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device here")


def _examples() -> list[DialogueExample]:
    return [
        DialogueExample("a", ["这个披萨好香"], "我也想吃一口", knowledge="有人买披萨，感到满足"),
        DialogueExample("b", ["今天的猫好可爱", "想养"], "想摸摸它的头", knowledge="有人撸猫，感到放松"),
    ]


def test_cuda_logits_match_cpu_and_bf16_trains() -> None:
    torch.manual_seed(0)
    model = get_model_class("maria").from_preset("tiny", modalities=parse_modalities("T+K")).eval()
    batch = model.collate(_examples(), train=True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cpu = model(**batch).logits
        cuda_model = model.to("cuda")
        cuda_batch = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in batch.items()}
        gpu = cuda_model(**cuda_batch).logits.float().cpu()
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=2e-3)
    cuda_model.train()
    optimizer = torch.optim.AdamW(cuda_model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = cuda_model(**cuda_batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_cuda_cached_decoding_equals_full_recompute() -> None:
    torch.manual_seed(0)
    model = get_model_class("maria").from_preset("tiny", modalities=parse_modalities("T+K")).to("cuda").eval()
    prompts = [DialogueExample(e.dialogue_id, e.context, knowledge=e.knowledge) for e in _examples()]
    cached = model.generate(prompts, num_beams=3, max_length=12, use_cache=True)
    full = model.generate(prompts, num_beams=3, max_length=12, use_cache=False)
    assert cached == full
