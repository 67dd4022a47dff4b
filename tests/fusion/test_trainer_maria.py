"""The trainer on the real Maria model (tiny preset): exact resume with MRP/MCP/MKP masking."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from tiktalk.models.modalities import parse_modalities
from tiktalk.models.run_log import read_metrics
from tiktalk.models.trainer import TrainConfig, train

maria = pytest.importorskip("fusion.modeling_maria")


class Crash(RuntimeError):
    pass


def _examples():
    from tiktalk.dataset import load_dataset

    examples = load_dataset("sample").examples("train", with_features=True)[:12]
    # some knowledge, so MKP has positions to mask
    return [dataclasses.replace(ex, knowledge=f"有人{ex.context[-1][:6]}，感到开心") for ex in examples]


def _model():
    torch.manual_seed(0)
    return maria.MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+I+A+K"))


@pytest.mark.slow
def test_maria_tiny_resume_is_exact(tmp_path):
    examples = _examples()
    config = TrainConfig(batch_size=4, max_steps=4, save_every=2, log_every=1, cpu=True, progress=False, lr=1e-3)
    train(_model(), examples, config, tmp_path / "full")

    def crash(step):
        if step == 3:
            raise Crash

    with pytest.raises(Crash):
        train(_model(), examples, config, tmp_path / "cut", on_step=crash)
    train(_model(), examples, config, tmp_path / "cut", resume=True)
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = read_metrics(tmp_path / "full" / "metrics.jsonl")
    assert {"loss", "loss_mrp", "loss_mcp", "loss_mkp"} <= rows[0].keys()
