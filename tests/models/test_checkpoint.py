"""Pickle-free state storage: exact round trips of optimizer, scheduler and RNG states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tiktalk.models.checkpoint import (
    capture_rng_state,
    checkpoint_dirs,
    flatten_state,
    latest_checkpoint,
    load_state,
    restore_rng_state,
    save_state,
    unflatten_state,
)
from tiktalk.models.optim import LinearSchedule


def assert_same(a, b, path="root"):
    assert type(a) is type(b), (path, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_nested_state_round_trips_exactly(tmp_path):
    state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, 7: {"m": torch.arange(4)}},
        "groups": [{"betas": (0.9, 0.999), "params": [0, 7], "lr": 1e-3, "fused": None, "name": "decay"}],
        "bf16": torch.randn(5).to(torch.bfloat16),
        "np_u32": np.arange(5, dtype=np.uint32),
        "np_f64": np.linspace(0, 1, 3),
        (1, 2): "tuple key",
        "__tensor__": "a key that looks like a marker",
        "empty": {},
        "scalar": np.float32(2.5).item(),
    }
    save_state(tmp_path, "thing", state)
    assert (tmp_path / "thing.json").exists() and (tmp_path / "thing.safetensors").exists()
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    assert_same(state, load_state(tmp_path, "thing"))


def test_unsupported_values_are_refused_not_pickled():
    with pytest.raises(ValueError, match=r"type object at 'a\.b'"):
        flatten_state({"a": {"b": object()}})
    tree, tensors = flatten_state({"x": 1, "y": [1.5, "s"]})
    assert tensors == {} and unflatten_state(tree, tensors) == {"x": 1, "y": [1.5, "s"]}


def test_optimizer_and_scheduler_resume_exactly(tmp_path):
    def setup():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, LinearSchedule(1, 6))
        return model, opt, sched

    def step(model, opt, sched, seed):
        g = torch.Generator().manual_seed(seed)
        model(torch.randn(3, 4, generator=g)).pow(2).sum().backward()
        opt.step()
        sched.step()
        opt.zero_grad()

    model, opt, sched = setup()
    for s in range(2):
        step(model, opt, sched, s)
    save_state(tmp_path, "optimizer", opt.state_dict())
    save_state(tmp_path, "scheduler", sched.state_dict())
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    for s in range(2, 5):
        step(model, opt, sched, s)

    model2, opt2, sched2 = setup()
    model2.load_state_dict(weights)
    opt2.load_state_dict(load_state(tmp_path, "optimizer"))
    sched2.load_state_dict(load_state(tmp_path, "scheduler"))
    for s in range(2, 5):
        step(model2, opt2, sched2, s)
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k]), k
    assert sched.get_last_lr() == sched2.get_last_lr()


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_state(tmp_path, "rng", {"rank0": capture_rng_state()})
    expected = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), np.random.randn())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(load_state(tmp_path, "rng")["rank0"])
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), np.random.randn()) == expected


def test_latest_checkpoint_ignores_temp_and_incomplete_dirs(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    root = tmp_path / "checkpoints"
    for name, complete in (("step-2", True), ("step-10", True), ("step-12", False), (".step-14.tmp-ab12cd34", True)):
        (root / name).mkdir(parents=True)
        if complete:
            (root / name / "trainer_state.json").write_text("{}")
    assert [s for s, _ in checkpoint_dirs(tmp_path)] == [2, 10]  # numeric, not lexical order
    assert latest_checkpoint(tmp_path).name == "step-10"
    with pytest.raises(FileNotFoundError, match="optimizer.json is missing"):
        load_state(root / "step-10", "optimizer")
