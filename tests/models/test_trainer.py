"""Trainer: data order, optimiser pieces, exact resume, run directory (toy model, CPU)."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.models.toy_chat_model import ToyChatModel, toy_examples
from tiktalk.models.batching import SeededCollate, rank_micro_batches, steps_per_epoch
from tiktalk.models.checkpoint import latest_checkpoint
from tiktalk.models.modalities import parse_modalities
from tiktalk.models.optim import LinearSchedule, no_decay_parameter_names
from tiktalk.models.run_log import read_metrics
from tiktalk.models.train_config import TrainConfig
from tiktalk.models.trainer import train

FAST = {"cpu": True, "progress": False, "lr": 1e-2}


def fresh_model(seed: int = 0) -> ToyChatModel:
    torch.manual_seed(seed)
    return ToyChatModel.from_preset("tiny")


# ---------------------------------------------------------------- data order


@pytest.mark.parametrize("n,world,batch", [(10, 1, 3), (10, 2, 3), (7, 3, 2), (1, 2, 4)])
def test_rank_micro_batches_cover_every_example_like_distributed_sampler(n, world, batch):
    shards = [rank_micro_batches(n, seed=5, epoch=1, batch_size=batch, rank=r, world_size=world) for r in range(world)]
    counts = {len(s) for s in shards}
    assert len(counts) == 1, "every rank must run the same number of micro-batches"
    flat = np.concatenate([np.concatenate(s) for s in shards])
    assert set(flat.tolist()) == set(range(n))
    per_rank = math.ceil(n / world)
    assert len(flat) == world * per_rank  # padded to a multiple of the world size only
    assert counts.pop() == math.ceil(per_rank / batch)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = rank_micro_batches(20, 1, 0, 4, 0, 1)
    b = rank_micro_batches(20, 1, 0, 4, 0, 1)
    c = rank_micro_batches(20, 1, 1, 4, 0, 1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert steps_per_epoch(20, 4, 1, 2) == 3  # 5 micro-batches -> 3 steps, the last with one


def test_no_weight_decay_on_biases_and_layernorm():
    model = fresh_model()
    skip = no_decay_parameter_names(model)
    assert {"LayerNorm.weight", "LayerNorm.bias", "head.bias", "frame_proj.bias", "conv.bias"} <= skip
    assert {"embed.weight", "head.weight", "conv.weight"}.isdisjoint(skip)


def test_linear_schedule_decays_to_zero_after_warmup():
    s = LinearSchedule(warmup_steps=2, total_steps=6)
    assert [round(s(i), 4) for i in range(7)] == [0.3333, 0.6667, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert [LinearSchedule(0, 4)(i) for i in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_cosine_and_constant_schedules():
    cosine = LinearSchedule(warmup_steps=1, total_steps=5, shape="cosine")
    assert [round(cosine(i), 4) for i in range(6)] == [0.5, 1.0, 0.8536, 0.5, 0.1464, 0.0]
    assert [LinearSchedule(2, 6, "constant")(i) for i in (0, 2, 5, 9)] == [1 / 3, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="step")


def test_global_batch_fixes_the_accumulation_steps():
    config = TrainConfig(batch_size=64, global_batch_size=256)
    assert [config.accumulation_steps(w) for w in (1, 2, 4)] == [4, 2, 1]
    with pytest.raises(ValueError, match=r"global_batch_size \(256\) is not a multiple of batch_size \(64\) x "
                       r"processes \(3\) = 192"):
        config.accumulation_steps(3)
    with pytest.raises(ValueError, match=r"grad_accum_steps \(2\) contradicts global_batch_size \(256\)"):
        TrainConfig(batch_size=64, grad_accum_steps=2, global_batch_size=256).accumulation_steps(1)
    assert TrainConfig(batch_size=4, grad_accum_steps=4, global_batch_size=16).accumulation_steps(1) == 4
    assert TrainConfig(batch_size=4, grad_accum_steps=3).accumulation_steps(2) == 3


def same_length_examples(n: int) -> list:
    """Every context and response the same byte length: a token mean over a micro-batch is then
    the mean over its examples, so accumulation must reproduce the whole batch exactly."""
    from tiktalk.types import DialogueExample

    words = ["你好", "好的", "晚安", "早安", "再见", "谢谢"]
    return [DialogueExample(dialogue_id=f"g{i}", context=[words[i % 6], words[(i + 2) % 6]],
                            response=words[(i * 5 + 1) % 6]) for i in range(n)]


def test_global_batch_by_accumulation_gives_the_weights_of_the_whole_batch(tmp_path):
    """float64, no dropout, no masking: micro-batches of 2 accumulated to a global batch of 8
    end where one pass over batches of 8 ends (same examples per step, same gradients)."""
    weights = {}
    for name, options in (("whole", {"batch_size": 8}), ("accumulated", {"batch_size": 2, "global_batch_size": 8})):
        torch.manual_seed(0)
        model = ToyChatModel.from_preset("tiny", dropout=0.0, mask_prob=0.0).double()
        config = TrainConfig(max_steps=3, log_every=1, save_every=None, seed=4, weight_decay=0.01, **FAST, **options)
        train(model, same_length_examples(16), config, tmp_path / name)
        weights[name] = model.state_dict()
        info = json.loads((tmp_path / name / "run.json").read_text())
        assert (info["global_batch_size"], info["optimizer_steps"]) == (8, 3)
        assert info["grad_accum_steps"] == (4 if name == "accumulated" else 1)
    for key, value in weights["whole"].items():
        torch.testing.assert_close(weights["accumulated"][key], value, rtol=0, atol=1e-12, msg=key)
    torch.manual_seed(0)
    start = ToyChatModel.from_preset("tiny").double().state_dict()
    assert not torch.allclose(start["head.weight"], weights["whole"]["head.weight"])  # it trained


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"TrainConfig.batch_size must be an integer in \[1, 2147483647\], got 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="mixed_precision must be one of .* got 'fp8'"):
        TrainConfig(mixed_precision="fp8")


def test_seeded_collate_is_reproducible_and_leaves_global_rngs_alone():
    collate = SeededCollate(fresh_model(), toy_examples(6))
    torch.manual_seed(123)
    random.seed(1)
    np.random.seed(1)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    _, first = collate((77, np.arange(6)))
    _, again = collate((77, np.arange(6)))
    _, other = collate((78, np.arange(6)))
    assert torch.equal(first["input_ids"], again["input_ids"])
    assert not torch.equal(first["input_ids"], other["input_ids"])  # masking depends on the seed
    assert torch.equal(before[0], torch.get_rng_state())
    assert before[1] == random.getstate()
    assert np.array_equal(before[2], np.random.get_state()[1])


# ---------------------------------------------------------------- exact resume


class Crash(RuntimeError):
    pass


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def _strip_timing(rows):
    return [{k: v for k, v in r.items() if k not in ("examples_per_s", "step_time_s")} for r in rows]


def test_resume_reaches_exactly_the_weights_of_an_uninterrupted_run(tmp_path):
    # 10 examples, micro-batch 2, 2 micro-batches per step: 3 steps per epoch, the last one
    # short; 7 steps cross two epoch boundaries; the crash at step 5 resumes mid-epoch from 4.
    config = TrainConfig(batch_size=2, grad_accum_steps=2, max_steps=7, save_every=2, log_every=1, seed=3, **FAST)
    examples = toy_examples(10)
    full = train(fresh_model(), examples, config, tmp_path / "full")

    def crash_at_5(step):
        if step == 5:
            raise Crash

    with pytest.raises(Crash):
        train(fresh_model(), examples, config, tmp_path / "cut", on_step=crash_at_5)
    assert latest_checkpoint(tmp_path / "cut").name == "step-4"
    assert not (tmp_path / "cut" / "model").exists()
    # A different init must not matter: resume loads the checkpoint weights.
    resumed = train(fresh_model(seed=99), examples, config, tmp_path / "cut", resume=True)

    assert resumed.resumed_from_step == 4 and resumed.global_step == full.global_step == 7
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # metrics: the crashed run's step-5 line is dropped and re-logged identically
    assert _strip_timing(read_metrics(tmp_path / "full" / "metrics.jsonl")) == _strip_timing(
        read_metrics(tmp_path / "cut" / "metrics.jsonl")
    )
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert run["resumed"] == [{"from_step": 4}]
    # and training did move the weights
    start = fresh_model().state_dict()
    assert not torch.equal(start["head.weight"], a["head.weight"])


def test_resume_refuses_changed_data_order_and_missing_checkpoints(tmp_path):
    config = TrainConfig(batch_size=4, max_steps=2, save_every=1, log_every=1, **FAST)
    examples = toy_examples(8)
    with pytest.raises(FileNotFoundError, match="no checkpoint under"):
        train(fresh_model(), examples, config, tmp_path / "none", resume=True)
    train(fresh_model(), examples, config, tmp_path / "run")
    with pytest.raises(FileExistsError, match="already exists"):
        train(fresh_model(), examples, config, tmp_path / "run")
    changed = TrainConfig(batch_size=3, seed=5, max_steps=4, save_every=1, log_every=1, **FAST)
    # every difference named at once; max_steps may change on resumption
    with pytest.raises(ValueError, match=r"train option batch_size was 4, now 3; train option seed was 42, now 5$"):
        train(fresh_model(), examples, changed, tmp_path / "run", resume=True)


def test_run_directory_layout_and_metrics(tmp_path):
    config = TrainConfig(batch_size=4, max_steps=3, save_every=2, keep_checkpoints=1, log_every=2, **FAST)
    result = train(fresh_model(), toy_examples(8), config, tmp_path / "run", run_info={"data": {"path": "x"}})
    run = tmp_path / "run"
    assert result.global_step == 3 and result.epoch == 1 and result.epochs_completed == 1.5
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "toy-char-lm"
    assert info["model_config"]["hidden"] == 32
    assert info["train_config"]["batch_size"] == 4
    assert info["data"] == {"path": "x"}
    assert {"torch", "accelerate", "transformers"} <= info["versions"].keys()
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 3]  # every 2 steps, and the last
    for row in rows:
        assert {"loss", "loss_response", "loss_context", "lr", "grad_norm", "examples_per_s", "epoch"} <= row.keys()
        assert row["loss"] == pytest.approx(row["loss_response"] + 0.1 * row["loss_context"], rel=1e-5)
    assert rows[-1]["lr"] == 0.0
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # keep_checkpoints=1: only the final step survives; no temp dirs left behind
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-3"]
    reloaded = ToyChatModel.from_pretrained(run / "model")
    ckpt = ToyChatModel.from_pretrained(run / "checkpoints" / "step-3" / "model")
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, ckpt.state_dict()[key])


def test_examples_without_the_features_the_model_reads_are_refused_unless_allowed(tmp_path):
    # 8 examples over 4 videos; video v0's two examples have no frames
    examples = [
        dataclasses.replace(ex, video_id=f"v{i % 4}", frames=np.ones((2, 4), np.float32) if i % 4 else None)
        for i, ex in enumerate(toy_examples(8))
    ]
    config = TrainConfig(batch_size=4, max_steps=1, log_every=1, **FAST)
    torch.manual_seed(0)
    vision = ToyChatModel.from_preset("tiny", modalities=parse_modalities("T+I"))
    assert vision.feature_modalities() == ("vision",)
    with pytest.raises(
        FileNotFoundError,
        match=r"toy-char-lm reads vision features, but 2 of 8 training examples \(1 of 4 videos\) have no "
        r"frames features in /data/frames.st;.*--allow-missing-features",
    ):
        train(vision, examples, config, tmp_path / "refused", feature_sources={"vision": "/data/frames.st"})
    assert not (tmp_path / "refused").exists()  # refused before the run directory is touched

    train(vision, examples, config, tmp_path / "allowed", allow_missing_features=True)
    assert json.loads((tmp_path / "allowed" / "run.json").read_text())["features_present"] == {"vision": 0.75}
    # a text-only model reads no features: nothing to check, nothing to record
    train(fresh_model(), examples, config, tmp_path / "text")
    assert json.loads((tmp_path / "text" / "run.json").read_text())["features_present"] == {}


def test_dataloader_workers_give_the_same_weights_as_inline_collate(tmp_path):
    # masking is seeded per micro-batch, so running collate in a worker process changes nothing
    examples = toy_examples(8)
    base = {"batch_size": 4, "max_steps": 2, "save_every": None, "log_every": 2, **FAST}
    train(fresh_model(), examples, TrainConfig(num_workers=0, **base), tmp_path / "inline")
    train(fresh_model(), examples, TrainConfig(num_workers=1, **base), tmp_path / "worker")
    a, b = _weights(tmp_path / "inline"), _weights(tmp_path / "worker")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_non_finite_loss_stops_the_run_keeping_the_last_finite_step(tmp_path):
    """Issue 22.1: `train --lr inf` used to end 'final loss nan' with every weight NaN, exit 0."""
    from tiktalk.errors import NonFiniteError

    config = TrainConfig(batch_size=2, max_steps=6, save_every=100, log_every=1, seed=3, **FAST)
    model = fresh_model()
    snapshot = {}

    def snap_then_poison(step):
        if step == 3:  # then what a diverging run does: the next forward gives NaN
            snapshot.update({k: v.clone() for k, v in model.state_dict().items()})
            with torch.no_grad():
                next(model.parameters()).fill_(math.nan)

    with pytest.raises(NonFiniteError, match=r"step 4: the training loss is not finite \(loss nan.*step 3 is saved"):
        train(model, toy_examples(10), config, tmp_path / "run", on_step=snap_then_poison)
    assert latest_checkpoint(tmp_path / "run").name == "step-3"
    assert not (tmp_path / "run" / "model").exists()
    saved = load_file(str(latest_checkpoint(tmp_path / "run") / "model" / "model.safetensors"))
    # no optimizer step ran on the NaN loss: every weight the test did not poison is as after step 3
    unpoisoned = [k for k in saved if not torch.isnan(saved[k]).any()]
    assert unpoisoned and len(unpoisoned) < len(saved)
    for key in unpoisoned:
        assert torch.equal(saved[key], snapshot[key]), key
