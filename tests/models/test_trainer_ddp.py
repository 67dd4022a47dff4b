"""Two processes with gloo (torchrun on CPU) end with identical weights on both ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    from tiktalk.models.run_log import read_metrics
    from tiktalk.models.trainer import TrainConfig, train
    from tests.models.toy_chat_model import ToyChatModel, toy_examples

    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    torch.manual_seed(100 + rank)  # different init per rank: DDP must broadcast rank 0's
    model = ToyChatModel.from_preset("tiny")
    config = TrainConfig(cpu=True, progress=False, lr=1e-2, batch_size=2, grad_accum_steps=2,
                         max_steps=3, save_every=2, log_every=1, seed=7)
    result = train(model, toy_examples(9), config, out)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/../rank{rank}.safetensors")
    with open(f"{out}/../rank{rank}.json", "w") as fh:
        json.dump({"world": int(os.environ["WORLD_SIZE"]), "step": result.global_step}, fh)
    """
)


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path / "run")],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert infos == [{"world": 2, "step": 3}] * 2
    w0, w1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    saved = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert all(torch.equal(saved[k], w0[k]) for k in w0)
    # rank 0 initialised with seed 100 and trained: the weights moved away from its init
    torch.manual_seed(100)
    from tests.models.toy_chat_model import ToyChatModel

    init = ToyChatModel.from_preset("tiny").state_dict()
    assert not torch.equal(init["head.weight"], w0["head.weight"])
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["world_size"] == 2
    rng_keys = json.loads((tmp_path / "run" / "checkpoints" / "step-2" / "rng.json").read_text()).keys()
    assert set(rng_keys) == {"rank0", "rank1"}
    # metrics gathered over both ranks: 9 examples padded to 10, micro-batches of 2 per rank
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]


GLOBAL_BATCH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    from safetensors.torch import save_file
    from tiktalk.models.trainer import TrainConfig, train
    from tests.models.test_trainer import same_length_examples
    from tests.models.toy_chat_model import ToyChatModel

    out = sys.argv[1]
    torch.manual_seed(0)
    model = ToyChatModel.from_preset("tiny", dropout=0.0, mask_prob=0.0).double()
    config = TrainConfig(cpu=True, progress=False, lr=1e-2, batch_size=2, global_batch_size=8, max_steps=3,
                         save_every=None, log_every=1, seed=4, weight_decay=0.01)
    train(model, same_length_examples(16), config, out)
    if os.environ["RANK"] == "0":
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/../ddp.safetensors")
    """
)


@pytest.mark.slow
def test_global_batch_over_two_processes_gives_the_weights_of_one_process_with_the_whole_batch(tmp_path):
    """2 processes x micro-batches of 2 x 2 accumulation steps = one process taking batches of 8."""
    from tests.models.test_trainer import same_length_examples
    from tests.models.toy_chat_model import ToyChatModel
    from tiktalk.models.trainer import TrainConfig, train

    script = tmp_path / "ddp_global.py"
    script.write_text(GLOBAL_BATCH_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path / "run")],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (run["world_size"], run["grad_accum_steps"], run["global_batch_size"]) == (2, 2, 8)
    torch.manual_seed(0)
    model = ToyChatModel.from_preset("tiny", dropout=0.0, mask_prob=0.0).double()
    config = TrainConfig(cpu=True, progress=False, lr=1e-2, batch_size=8, max_steps=3, save_every=None,
                         log_every=1, seed=4, weight_decay=0.01)
    train(model, same_length_examples(16), config, tmp_path / "one")
    ddp = load_file(str(tmp_path / "ddp.safetensors"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ddp[key], value, rtol=0, atol=1e-12, msg=key)
