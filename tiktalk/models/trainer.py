"""A generic trainer for every :class:`tiktalk.models.base.ChatModel` (Maria and the baselines).

Built on accelerate, so the same code runs on one CPU, one GPU, or many processes under
``accelerate launch`` / ``torchrun`` (gloo on CPU, NCCL on GPU), with bf16/fp16 autocast
on GPU. Maria's recipe is the default: AdamW (lr 3e-5, eps 1e-8, weight decay 0.05 except
biases and LayerNorm weights), linear decay with no warmup, clipping at 1.0.

Exact resumption is a design goal, not a best effort:

- data order is a pure function of (seed, epoch): a seeded permutation per epoch, split
  over ranks like ``DistributedSampler`` (padded cyclically to a multiple of the world
  size), cut into micro-batches; a checkpoint records (epoch, step in epoch);
- ``collate(train=True)`` masking is seeded per micro-batch from (seed, epoch,
  micro-batch, rank): through a ``generator=`` argument when ``collate`` takes one, and by
  seeding the global python / numpy / torch CPU generators around the call (restored
  afterwards), so masking is reproducible in any process (also DataLoader workers) and
  does not disturb the dropout stream;
- the dropout stream (torch CPU/CUDA generators), optimizer and scheduler are restored
  from the checkpoint (see :mod:`tiktalk.models.checkpoint`, which never pickles).

Run directory::

    RUN/run.json                 model name + config, train config, versions, data hashes
    RUN/metrics.jsonl            one line per logged step
    RUN/loss.png                 loss curves (matplotlib, Agg)
    RUN/checkpoints/step-N/      see tiktalk.models.checkpoint
    RUN/model/                   final save_pretrained
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import random
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tiktalk.errors import MissingInputError, OutputExistsError, UsageError
from tiktalk.io import atomic_directory, atomic_write_text, read_json, write_json
from tiktalk.models.base import ChatModel
from tiktalk.models.checkpoint import (
    capture_rng_state,
    checkpoint_dirs,
    latest_checkpoint,
    load_state,
    restore_rng_state,
    save_state,
)
from tiktalk.models.train_config import MIXED_PRECISION, TrainConfig  # noqa: F401  (re-exported)
from tiktalk.types import DialogueExample
from tiktalk.versions import library_versions

# Options that may change between an interrupted run and its resumption; any other
# difference would change data order or the optimisation and is refused.
RESUMABLE_CHANGES = frozenset(
    {"max_steps", "epochs", "log_every", "save_every", "keep_checkpoints", "num_workers", "progress", "cpu"}
)


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    epoch: int  # 0-based epoch the next step would run in
    epochs_completed: float  # e.g. 2.5 after two and a half passes
    final_loss: float | None
    seconds: float
    steps_per_second: float
    examples_per_second: float
    resumed_from_step: int | None = None


# ---------------------------------------------------------------- data order (pure)


def epoch_permutation(n_examples: int, seed: int, epoch: int) -> np.ndarray:
    """(n_examples,) int64: the example order of one epoch, a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n_examples)


def rank_micro_batches(
    n_examples: int, seed: int, epoch: int, batch_size: int, rank: int, world_size: int
) -> list[np.ndarray]:
    """This rank's micro-batches (index arrays) of one epoch.

    Like ``DistributedSampler(drop_last=False)``: the permutation is padded cyclically to
    a multiple of the world size, rank r takes every world_size-th index from r; every
    rank thus gets the same number of micro-batches (the last one may be short).
    """
    order = epoch_permutation(n_examples, seed, epoch)
    per_rank = math.ceil(n_examples / world_size)
    padded = np.resize(order, per_rank * world_size)  # np.resize repeats cyclically
    shard = padded[rank::world_size]
    return [shard[i : i + batch_size] for i in range(0, len(shard), batch_size)]


def micro_batches_per_epoch(n_examples: int, batch_size: int, world_size: int) -> int:
    return math.ceil(math.ceil(n_examples / world_size) / batch_size)


def steps_per_epoch(n_examples: int, batch_size: int, world_size: int, grad_accum_steps: int) -> int:
    return math.ceil(micro_batches_per_epoch(n_examples, batch_size, world_size) / grad_accum_steps)


def total_steps(config: TrainConfig, n_examples: int, world_size: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    return config.epochs * steps_per_epoch(n_examples, config.batch_size, world_size, config.grad_accum_steps)


def collate_seed(seed: int, epoch: int, micro_index: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, micro_index, rank]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_global_rngs(seed: int):
    """Seed python / numpy / torch-CPU generators for a block, then put their states back."""
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)  # CPU only: CUDA dropout streams stay untouched
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class _MicroBatches(torch.utils.data.Dataset):
    """Micro-batches of one epoch from ``start`` on; items are (seed, indices)."""

    def __init__(self, batches: list[np.ndarray], start: int, seed: int, epoch: int, rank: int):
        self.items = [
            (collate_seed(seed, epoch, start + i, rank), batch) for i, batch in enumerate(batches[start:])
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


class _SeededCollate:
    """(seed, indices) -> (n examples, batch dict); picklable for DataLoader workers."""

    def __init__(self, model: ChatModel, examples: Sequence[DialogueExample]):
        self.model = model
        self.examples = examples
        # Collators that take an explicit generator get one; the global RNGs are seeded too.
        self.takes_generator = "generator" in inspect.signature(model.collate).parameters

    def __call__(self, item):
        seed, indices = item
        chosen = [self.examples[int(i)] for i in indices]
        with seeded_global_rngs(seed):
            if self.takes_generator:
                batch = self.model.collate(chosen, train=True, generator=torch.Generator().manual_seed(seed))
            else:
                batch = self.model.collate(chosen, train=True)
        return len(indices), batch


# ---------------------------------------------------------------- optimisation pieces


NORM_TYPES = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)
if hasattr(torch.nn, "RMSNorm"):
    NORM_TYPES = (*NORM_TYPES, torch.nn.RMSNorm)


def no_decay_parameter_names(model: torch.nn.Module) -> set[str]:
    """Biases and normalisation weights: excluded from weight decay (BERT / Maria recipe)."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            is_norm = isinstance(module, NORM_TYPES) or "layernorm" in module_name.lower().replace("_", "")
            if param_name == "bias" or is_norm:
                names.add(full)
    return names


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    skip = no_decay_parameter_names(model)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name in skip else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class LinearSchedule:
    """lr multiplier: linear warmup to 1, then linear decay to 0 at ``total_steps``."""

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))


def named_losses(output: Any) -> dict[str, torch.Tensor]:
    """``loss`` and every ``loss_*`` tensor of a model output (dataclass, mapping or object)."""
    if isinstance(output, dict):
        items = output.items()
    elif dataclasses.is_dataclass(output):
        items = ((f.name, getattr(output, f.name)) for f in dataclasses.fields(output))
    else:
        items = vars(output).items()
    return {
        k: v for k, v in items if (k == "loss" or k.startswith("loss_")) and isinstance(v, torch.Tensor)
    }


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def model_config_dict(model: ChatModel) -> Any:
    config = getattr(model, "config", None)
    if config is None:
        return None
    if hasattr(config, "to_dict"):
        raw = config.to_dict()
    elif dataclasses.is_dataclass(config):
        raw = dataclasses.asdict(config)
    else:
        raw = dict(vars(config))
    return json.loads(json.dumps(raw, default=str))  # JSON-safe copy


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> None:
    """Loss curves (loss and each loss_*) against step, written atomically as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    if not rows:
        return
    names = sorted({k for r in rows for k in r if k == "loss" or k.startswith("loss_")})
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        points = [(r["step"], r[name]) for r in rows if name in r]
        ax.plot(*zip(*points), label=name, linewidth=2 if name == "loss" else 1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(Path(metrics_path).parent.name)
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    from tiktalk.io import atomic_write_bytes

    atomic_write_bytes(png_path, buf.getvalue())


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UsageError(f"{path}:{line_no}: not a JSON line ({err})") from err
    return rows


# ---------------------------------------------------------------- the loop


def _mixed_precision(config: TrainConfig) -> str:
    if config.cpu or not torch.cuda.is_available():
        return "no"
    if config.mixed_precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return config.mixed_precision


def _check_resumable(saved: dict[str, Any], config: TrainConfig, world_size: int, where: Path) -> None:
    for name, value in config.to_dict().items():
        if name in RESUMABLE_CHANGES or name not in saved["train_config"]:
            continue
        if saved["train_config"][name] != value:
            raise UsageError(
                f"cannot resume {where}: train option {name} was {saved['train_config'][name]!r}, now {value!r}"
            )
    if saved["world_size"] != world_size:
        raise UsageError(f"cannot resume {where}: it ran on {saved['world_size']} processes, now {world_size}")


def train(
    model: ChatModel,
    examples: Sequence[DialogueExample],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    run_info: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``examples`` into the run directory ``out_dir``.

    ``run_info`` (data/knowledge paths and hashes, CLI arguments) is merged into run.json.
    ``resume`` continues from the latest checkpoint to exactly the weights an
    uninterrupted run would reach. ``on_step(global_step)`` is called after each step
    (tests use it to simulate a crash).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, gather_object
    from tqdm.auto import tqdm

    if not examples:
        raise UsageError("no training examples")
    for ex in examples:
        if not ex.response:
            raise UsageError(f"training example {ex.dialogue_id!r} has no response")

    out = Path(out_dir)
    accelerator = Accelerator(
        cpu=config.cpu,
        mixed_precision=_mixed_precision(config),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)],
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    is_main = accelerator.is_main_process

    checkpoint = latest_checkpoint(out) if resume else None
    if resume and checkpoint is None:
        raise MissingInputError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    if not resume and out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out} already exists and is not empty (pass --resume or --overwrite)")
        accelerator.wait_for_everyone()
        if is_main:
            shutil.rmtree(out)
    accelerator.wait_for_everyone()

    trainer_state = {"global_step": 0, "epoch": 0, "step_in_epoch": 0, "examples_seen": 0}
    if checkpoint is not None:
        saved = read_json(checkpoint / "trainer_state.json")
        _check_resumable(saved, config, world, checkpoint)
        trainer_state = {k: saved[k] for k in trainer_state}
        # Load through the model's own from_pretrained, then copy weights into ``model``
        # (which may already sit on its device and be referenced by the caller).
        loaded = type(model).from_pretrained(checkpoint / "model")
        model.load_state_dict(loaded.state_dict(), strict=True)
        del loaded
    else:
        from accelerate.utils import set_seed

        set_seed(config.seed)

    n_total = total_steps(config, len(examples), world)
    spe = steps_per_epoch(len(examples), config.batch_size, world, config.grad_accum_steps)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps,
    )
    schedule = LinearSchedule(config.warmup_steps, n_total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    # The scheduler is deliberately not prepared: accelerate would step it once per process.
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(wrapped)

    if checkpoint is not None:
        optimizer.load_state_dict(load_state(checkpoint, "optimizer"))
        scheduler.load_state_dict(load_state(checkpoint, "scheduler"))
        if schedule.total_steps != n_total:  # load_state_dict restored the old horizon
            warnings.warn(f"resuming with {n_total} total steps instead of {schedule.total_steps}", stacklevel=2)
            schedule.total_steps = n_total
        rng = load_state(checkpoint, "rng")
        restore_rng_state(rng[f"rank{rank}"])

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        _write_run_json(out, unwrapped, config, world, len(examples), run_info, checkpoint, trainer_state)
        _truncate_metrics(out / "metrics.jsonl", trainer_state["global_step"])

    global_step = trainer_state["global_step"]
    epoch, step_in_epoch = trainer_state["epoch"], trainer_state["step_in_epoch"]
    examples_seen = trainer_state["examples_seen"]
    resumed_from = global_step if checkpoint is not None else None
    collate = _SeededCollate(unwrapped, examples)
    ga = config.grad_accum_steps

    def state_now() -> dict[str, Any]:
        return {
            "global_step": global_step,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "examples_seen": examples_seen,
            "world_size": world,
            "train_config": config.to_dict(),
        }

    bar = tqdm(total=n_total, initial=global_step, disable=not (is_main and config.progress), desc="train", unit="step")
    window: dict[str, list[float]] = {}  # name -> [sum, count]
    window_examples, window_steps, window_start = 0, 0, time.perf_counter()
    grad_norm_sum = torch.zeros((), device=accelerator.device)
    start_time, start_step, start_examples = time.perf_counter(), global_step, examples_seen
    last_logged_loss: float | None = None
    last_saved = global_step if checkpoint is not None else -1

    while global_step < n_total:
        batches = rank_micro_batches(len(examples), config.seed, epoch, config.batch_size, rank, world)
        loader = torch.utils.data.DataLoader(
            _MicroBatches(batches, step_in_epoch * ga, config.seed, epoch, rank),
            batch_size=None,
            shuffle=False,
            collate_fn=collate,
            num_workers=config.num_workers,
            pin_memory=accelerator.device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed),  # keep the global RNG untouched
        )
        micro_iter = iter(loader)
        while step_in_epoch < spe and global_step < n_total:
            n_micro = min(ga, len(batches) - step_in_epoch * ga)
            wrapped.train()
            step_sums: dict[str, torch.Tensor] = {}
            for m in range(n_micro):
                n_ex, batch = next(micro_iter)
                batch = to_device(batch, accelerator.device)
                # Only the last micro-batch of a step all-reduces gradients.
                sync = contextlib.nullcontext() if m == n_micro - 1 else accelerator.no_sync(wrapped)
                with sync:
                    output = wrapped(**batch)
                    losses = named_losses(output)
                    if "loss" not in losses:
                        raise UsageError(f"{type(unwrapped).__name__}.forward returned no `loss` tensor in training")
                    accelerator.backward(losses["loss"] / n_micro)
                for name, value in losses.items():
                    step_sums[name] = step_sums.get(name, 0.0) + value.detach().float() / n_micro
                examples_seen += n_ex
                window_examples += n_ex
            if config.max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
            else:
                grad_norm = torch.linalg.vector_norm(
                    torch.stack([p.grad.norm() for p in wrapped.parameters() if p.grad is not None])
                )
            optimizer.step()
            if not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            step_in_epoch += 1
            window_steps += 1
            grad_norm_sum += grad_norm.detach().float()
            for name, value in step_sums.items():
                acc = window.setdefault(name, [0.0, 0])
                acc[0] += value
                acc[1] += 1

            if global_step % config.log_every == 0 or global_step == n_total:
                row = _log_row(
                    gather_object([{k: (float(v[0]), v[1]) for k, v in window.items()}]),
                    gather_object([window_examples]),
                    global_step,
                    epoch,
                    scheduler.get_last_lr()[0],
                    float(grad_norm_sum) / window_steps,
                    time.perf_counter() - window_start,
                    window_steps,
                )
                if is_main:
                    with open(out / "metrics.jsonl", "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                last_logged_loss = row.get("loss")
                window, window_examples, window_steps = {}, 0, 0
                grad_norm_sum.zero_()
                window_start = time.perf_counter()
            bar.update(1)

            if config.save_every and global_step % config.save_every == 0:
                _save_checkpoint(accelerator, out, unwrapped, optimizer, scheduler, state_now(), config)
                last_saved = global_step
            if on_step is not None:
                on_step(global_step)
        if step_in_epoch >= spe:
            epoch, step_in_epoch = epoch + 1, 0
    bar.close()

    if last_saved != global_step:
        _save_checkpoint(accelerator, out, unwrapped, optimizer, scheduler, state_now(), config)
    if is_main:
        with atomic_directory(out / "model", overwrite=True) as tmp:
            unwrapped.save_pretrained(tmp)
        plot_metrics(out / "metrics.jsonl", out / "loss.png")
    accelerator.wait_for_everyone()

    seconds = time.perf_counter() - start_time
    steps_done = global_step - start_step
    return TrainResult(
        run_dir=out,
        global_step=global_step,
        epoch=epoch,
        epochs_completed=epoch + step_in_epoch / spe,
        final_loss=last_logged_loss,
        seconds=seconds,
        steps_per_second=steps_done / seconds if seconds > 0 else 0.0,
        examples_per_second=(examples_seen - start_examples) * 1.0 / seconds if seconds > 0 else 0.0,
        resumed_from_step=resumed_from,
    )


def _log_row(
    loss_windows: list[dict[str, tuple[float, int]]],
    example_counts: list[int],
    step: int,
    epoch: int,
    lr: float,
    grad_norm: float,
    seconds: float,
    steps: int,
) -> dict[str, Any]:
    """Average each loss over steps and ranks (gathered); examples/s counts all ranks."""
    merged: dict[str, list[float]] = {}
    for per_rank in loss_windows:
        for name, (total, count) in per_rank.items():
            acc = merged.setdefault(name, [0.0, 0])
            acc[0] += total
            acc[1] += count
    row: dict[str, Any] = {"step": step, "epoch": epoch}
    for name in sorted(merged, key=lambda n: (n != "loss", n)):
        total, count = merged[name]
        row[name] = total / count
    row.update(
        {
            "lr": lr,
            "grad_norm": grad_norm,
            "examples_per_s": sum(example_counts) / seconds if seconds > 0 else None,
            "step_time_s": seconds / steps,
        }
    )
    return row


def _save_checkpoint(accelerator, out: Path, model, optimizer, scheduler, state: dict[str, Any], config: TrainConfig) -> None:
    from accelerate.utils import gather_object

    rng_states = gather_object([capture_rng_state()])  # every rank's generators, in rank order
    if accelerator.is_main_process:
        target = out / "checkpoints" / f"step-{state['global_step']}"
        with atomic_directory(target, overwrite=True) as tmp:
            model.save_pretrained(tmp / "model")
            save_state(tmp, "optimizer", optimizer.state_dict())
            save_state(tmp, "scheduler", scheduler.state_dict())
            save_state(tmp, "rng", {f"rank{r}": s for r, s in enumerate(rng_states)})
            write_json(tmp / "trainer_state.json", state)  # written last: marks completeness
        if config.keep_checkpoints is not None:
            for _, old in checkpoint_dirs(out)[: -config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _write_run_json(out, model, config, world, n_examples, run_info, checkpoint, trainer_state) -> None:
    path = out / "run.json"
    previous = read_json(path) if path.exists() else {}
    info = {
        "model": type(model).name,
        "model_config": model_config_dict(model),
        "train_config": config.to_dict(),
        "world_size": world,
        "n_train_examples": n_examples,
        "versions": library_versions(),
        **(run_info or {}),
    }
    if checkpoint is not None:
        info["resumed"] = [*previous.get("resumed", []), {"from_step": trainer_state["global_step"]}]
    write_json(path, info)


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines logged after the checkpoint a resumed run restarts from."""
    rows = [r for r in read_metrics(path) if r["step"] <= last_step]
    if path.exists():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
