"""A generic trainer for every :class:`tiktalk.models.base.ChatModel` (Maria and the baselines).

Built on accelerate, so the same code runs on one CPU, one GPU, or many processes under
``accelerate launch`` / ``torchrun`` (gloo on CPU, NCCL on GPU), with bf16/fp16 autocast
on GPU. Maria's recipe is the default: AdamW (lr 3e-5, eps 1e-8, weight decay 0.05 except
biases and LayerNorm weights), linear decay with no warmup, clipping at 1.0.

Exact resumption is a design goal, not a best effort:

- data order is a pure function of (seed, epoch): a seeded permutation per epoch, split
  over ranks like ``DistributedSampler`` (padded cyclically to a multiple of the world
  size), cut into micro-batches; a checkpoint records (epoch, step in epoch);
- ``collate(train=True)`` masking draws only from the ``generator=`` the trainer passes
  (the ChatModel contract), a fresh one seeded per micro-batch from (seed, epoch,
  micro-batch, rank): reproducible in any process (also DataLoader workers), and the
  global generators, hence the dropout stream, are never touched by collation;
- the dropout stream (torch CPU/CUDA generators), optimizer and scheduler are restored
  from the checkpoint (see :mod:`tiktalk.models.checkpoint`, which never pickles).

A run, step by step (one function each): :func:`_plan_run` (validate the examples and
their features, count steps), :func:`_prepare_run_dir` (fresh, overwritten or resumed),
:func:`_restore_or_seed` (checkpoint weights and position, or the seed),
:func:`_start_session` (optimizer + schedule, accelerate), :func:`_write_run_files`,
:func:`_run_epochs` (the loop: :func:`_train_step`, :class:`_MetricsWindow`,
:func:`_save_checkpoint`), :func:`_finish` (final checkpoint, model, loss plot).

Run directory::

    RUN/run.json                 model name + config, train config, versions, data hashes,
                                 features_present (fraction of examples per feature modality)
    RUN/metrics.jsonl            one line per logged step
    RUN/loss.png                 loss curves (matplotlib, Agg)
    RUN/checkpoints/step-N/      see tiktalk.models.checkpoint
    RUN/model/                   final save_pretrained
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from tiktalk.models.modalities import FEATURE_FIELDS
from tiktalk.models.train_config import (  # noqa: F401  (re-exported)
    MIXED_PRECISION,
    RESUMABLE_CHANGES,
    TrainConfig,
)
from tiktalk.types import DialogueExample
from tiktalk.versions import library_versions


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
    """(seed, indices) -> (n examples, batch dict); picklable for DataLoader workers.

    ``collate`` gets a fresh CPU generator seeded for this micro-batch: its masking is a pure
    function of the seed, and the global generators (dropout) are left alone.
    """

    def __init__(self, model: ChatModel, examples: Sequence[DialogueExample]):
        self.model = model
        self.examples = examples

    def __call__(self, item):
        seed, indices = item
        chosen = [self.examples[int(i)] for i in indices]
        return len(indices), self.model.collate(chosen, train=True, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- features


def _has_features(example: DialogueExample, modality: str) -> bool:
    value = getattr(example, FEATURE_FIELDS[modality])
    return value is not None and len(value) > 0


def check_features(
    model_name: str,
    examples: Sequence[DialogueExample],
    modalities: Sequence[str],
    *,
    allow_missing: bool = False,
    sources: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Fraction of ``examples`` that carry features, per feature modality the model reads.

    An example without them would silently train as text-only, so a modality some examples
    lack is an error naming ``sources[modality]`` (where the features were looked for) and
    how many examples and videos lack them, unless ``allow_missing``: then those examples
    get the model's zero-filled feature rows, and the fractions are recorded in run.json.
    """
    present: dict[str, float] = {}
    problems = []
    videos = {ex.video_id for ex in examples if ex.video_id is not None}
    for modality in modalities:
        lacking = [ex for ex in examples if not _has_features(ex, modality)]
        present[modality] = 1 - len(lacking) / len(examples)
        if lacking:
            lacking_videos = {ex.video_id for ex in lacking if ex.video_id is not None}
            of_videos = f" ({len(lacking_videos)} of {len(videos)} videos)" if videos else ""
            where = f" in {sources[modality]}" if sources and modality in sources else ""
            problems.append(
                f"{len(lacking)} of {len(examples)} training examples{of_videos} "
                f"have no {FEATURE_FIELDS[modality]} features{where}"
            )
    if problems and not allow_missing:
        raise MissingInputError(
            f"{model_name} reads {'+'.join(modalities)} features, but " + "; ".join(problems)
            + "; extract them (`tiktalk features extract`) or allow missing features "
            "(--allow-missing-features) to train with zero-filled rows"
        )
    return present


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


# ---------------------------------------------------------------- the run, step by step


@dataclass
class TrainerState:
    """Where a run stands; a checkpoint's trainer_state.json records it (with world size and config)."""

    global_step: int = 0
    epoch: int = 0  # 0-based epoch the next step runs in
    step_in_epoch: int = 0  # optimizer steps already taken in ``epoch``
    examples_seen: int = 0  # by this process

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass
class _Plan:
    """What a run will do, decided before the run directory is touched."""

    n_examples: int
    world_size: int
    total_steps: int
    steps_per_epoch: int
    features_present: dict[str, float]  # feature modality -> fraction of examples carrying it


@dataclass
class _Session:
    """What every step of a run shares."""

    accelerator: Any  # accelerate.Accelerator
    config: TrainConfig
    out: Path
    examples: Sequence[DialogueExample]
    plan: _Plan
    wrapped: torch.nn.Module  # the model as accelerate prepared it (DDP over several processes)
    model: ChatModel  # the same model, unwrapped (save_pretrained, collate)
    optimizer: Any  # accelerate's wrapper of torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    schedule: LinearSchedule

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process


def _mixed_precision(config: TrainConfig) -> str:
    if config.cpu or not torch.cuda.is_available():
        return "no"
    if config.mixed_precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return config.mixed_precision


def _make_accelerator(config: TrainConfig):
    """One accelerate ``Accelerator`` for the run (device, processes, autocast, DDP options)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    return Accelerator(
        cpu=config.cpu,
        mixed_precision=_mixed_precision(config),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)],
    )


def _plan_run(
    model: ChatModel,
    examples: Sequence[DialogueExample],
    config: TrainConfig,
    world_size: int,
    allow_missing_features: bool,
    feature_sources: Mapping[str, str] | None,
) -> _Plan:
    """Validate the examples (responses, features the model reads) and count the steps."""
    if not examples:
        raise UsageError("no training examples")
    for ex in examples:
        if not ex.response:
            raise UsageError(f"training example {ex.dialogue_id!r} has no response")
    present = check_features(
        type(model).name, examples, model.feature_modalities(),
        allow_missing=allow_missing_features, sources=feature_sources,
    )
    return _Plan(
        n_examples=len(examples),
        world_size=world_size,
        total_steps=total_steps(config, len(examples), world_size),
        steps_per_epoch=steps_per_epoch(len(examples), config.batch_size, world_size, config.grad_accum_steps),
        features_present=present,
    )


def _prepare_run_dir(accelerator, out: Path, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from (``resume``), or an empty run directory (``overwrite``
    clears one); a non-empty directory is never reused silently."""
    checkpoint = latest_checkpoint(out) if resume else None
    if resume and checkpoint is None:
        raise MissingInputError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    if not resume and out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out} already exists and is not empty (pass --resume or --overwrite)")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(out)
    accelerator.wait_for_everyone()
    return checkpoint


def _check_resumable(saved: dict[str, Any], config: TrainConfig, world_size: int, where: Path) -> None:
    """Refuse a resumption whose options would change data order or optimisation; names every difference."""
    before = saved["train_config"]
    changes = [
        f"train option {name} was {before[name]!r}, now {value!r}"
        for name, value in config.to_dict().items()
        if name not in RESUMABLE_CHANGES and name in before and before[name] != value
    ]
    if saved["world_size"] != world_size:
        changes.append(f"it ran on {saved['world_size']} processes, now {world_size}")
    if changes:
        raise UsageError(f"cannot resume {where}: " + "; ".join(changes))


def _restore_or_seed(model: ChatModel, checkpoint: Path | None, config: TrainConfig, world_size: int) -> TrainerState:
    """Resumed: the checkpoint's weights (copied into ``model``) and position. Fresh: seed every generator."""
    if checkpoint is None:
        from accelerate.utils import set_seed

        set_seed(config.seed)
        return TrainerState()
    saved = read_json(checkpoint / "trainer_state.json")
    _check_resumable(saved, config, world_size, checkpoint)
    # Load through the model's own from_pretrained, then copy weights into ``model``
    # (which may already sit on its device and be referenced by the caller).
    loaded = type(model).from_pretrained(checkpoint / "model")
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
    return TrainerState(**{f.name: saved[f.name] for f in dataclasses.fields(TrainerState)})


def _start_session(
    accelerator, model: ChatModel, examples: Sequence[DialogueExample], config: TrainConfig, out: Path, plan: _Plan
) -> _Session:
    """AdamW over the decay / no-decay groups and the linear schedule; model and optimizer
    prepared by accelerate (the scheduler deliberately not: accelerate would step it once
    per process)."""
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps,
    )
    schedule = LinearSchedule(config.warmup_steps, plan.total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    return _Session(
        accelerator=accelerator, config=config, out=out, examples=examples, plan=plan, wrapped=wrapped,
        model=accelerator.unwrap_model(wrapped), optimizer=optimizer, scheduler=scheduler, schedule=schedule,
    )


def _restore_optimisation(session: _Session, checkpoint: Path) -> None:
    """Optimizer, scheduler and this rank's generators from the checkpoint."""
    session.optimizer.load_state_dict(load_state(checkpoint, "optimizer"))
    session.scheduler.load_state_dict(load_state(checkpoint, "scheduler"))
    n_total = session.plan.total_steps
    if session.schedule.total_steps != n_total:  # load_state_dict restored the old horizon
        warnings.warn(f"resuming with {n_total} total steps instead of {session.schedule.total_steps}", stacklevel=3)
        session.schedule.total_steps = n_total
    restore_rng_state(load_state(checkpoint, "rng")[f"rank{session.rank}"])


def _write_run_files(
    session: _Session, run_info: dict[str, Any] | None, checkpoint: Path | None, state: TrainerState
) -> None:
    """run.json (a resumption appends to its ``resumed`` list) and metrics.jsonl cut back to
    the checkpoint. Main process only."""
    out = session.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / "run.json"
    previous = read_json(path) if path.exists() else {}
    info = {
        "model": type(session.model).name,
        "model_config": model_config_dict(session.model),
        "train_config": session.config.to_dict(),
        "world_size": session.plan.world_size,
        "n_train_examples": session.plan.n_examples,
        "features_present": session.plan.features_present,
        "versions": library_versions(),
        **(run_info or {}),
    }
    if checkpoint is not None:
        info["resumed"] = [*previous.get("resumed", []), {"from_step": state.global_step}]
    write_json(path, info)
    _truncate_metrics(out / "metrics.jsonl", state.global_step)


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines logged after the checkpoint a resumed run restarts from."""
    rows = [r for r in read_metrics(path) if r["step"] <= last_step]
    if path.exists():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _epoch_micro_batches(session: _Session, state: TrainerState) -> tuple[int, Iterator]:
    """This rank's micro-batch count in ``state.epoch`` and an iterator over the collated ones
    from ``state.step_in_epoch`` on: (n examples, batch) pairs."""
    config = session.config
    batches = rank_micro_batches(
        session.plan.n_examples, config.seed, state.epoch, config.batch_size, session.rank, session.plan.world_size
    )
    start = state.step_in_epoch * config.grad_accum_steps
    loader = torch.utils.data.DataLoader(
        _MicroBatches(batches, start, config.seed, state.epoch, session.rank),
        batch_size=None,
        shuffle=False,
        collate_fn=_SeededCollate(session.model, session.examples),
        num_workers=config.num_workers,
        pin_memory=session.accelerator.device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed),  # keep the global RNG untouched
    )
    return len(batches), iter(loader)


def _train_step(session: _Session, micro_batches: Iterator, n_micro: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """One optimizer step over ``n_micro`` micro-batches (gradients averaged over them).

    Returns (each named loss averaged over the micro-batches, 0-d tensors; the gradient norm
    before clipping; examples used).
    """
    accelerator, wrapped, config = session.accelerator, session.wrapped, session.config
    wrapped.train()
    step_losses: dict[str, torch.Tensor] = {}
    n_examples = 0
    for m in range(n_micro):
        n_ex, batch = next(micro_batches)
        batch = to_device(batch, accelerator.device)
        # Only the last micro-batch of a step all-reduces gradients.
        sync = contextlib.nullcontext() if m == n_micro - 1 else accelerator.no_sync(wrapped)
        with sync:
            losses = named_losses(wrapped(**batch))
            if "loss" not in losses:
                raise UsageError(f"{type(session.model).__name__}.forward returned no `loss` tensor in training")
            accelerator.backward(losses["loss"] / n_micro)
        for name, value in losses.items():
            step_losses[name] = step_losses.get(name, 0.0) + value.detach().float() / n_micro
        n_examples += n_ex
    if config.max_grad_norm > 0:
        grad_norm = accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
    else:
        grad_norm = torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in wrapped.parameters() if p.grad is not None])
        )
    session.optimizer.step()
    if not accelerator.optimizer_step_was_skipped:
        session.scheduler.step()
    session.optimizer.zero_grad(set_to_none=True)
    return step_losses, grad_norm, n_examples


class _MetricsWindow:
    """Losses, gradient norms and examples accumulated between two metrics lines.

    Sums stay on the device (no host sync per step) until :meth:`flush`, which gathers
    every rank's window and appends one averaged line to metrics.jsonl.
    """

    def __init__(self, device: torch.device):
        self.grad_norm_sum = torch.zeros((), device=device)
        self.reset()

    def reset(self) -> None:
        self.losses: dict[str, list] = {}  # name -> [sum (0-d tensor), count]
        self.examples = 0
        self.steps = 0
        self.grad_norm_sum.zero_()
        self.start = time.perf_counter()

    def add(self, step_losses: dict[str, torch.Tensor], grad_norm: torch.Tensor, n_examples: int) -> None:
        for name, value in step_losses.items():
            acc = self.losses.setdefault(name, [0.0, 0])
            acc[0] += value
            acc[1] += 1
        self.grad_norm_sum += grad_norm.detach().float()
        self.examples += n_examples
        self.steps += 1

    def flush(self, session: _Session, state: TrainerState) -> dict[str, Any]:
        """The line for ``state.global_step`` (written by the main process); starts a new window."""
        from accelerate.utils import gather_object

        row = _log_row(
            gather_object([{k: (float(v[0]), v[1]) for k, v in self.losses.items()}]),
            gather_object([self.examples]),
            state.global_step,
            state.epoch,
            session.scheduler.get_last_lr()[0],
            float(self.grad_norm_sum) / self.steps,
            time.perf_counter() - self.start,
            self.steps,
        )
        if session.is_main:
            with open(session.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        self.reset()
        return row


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


def _save_checkpoint(session: _Session, state: TrainerState) -> None:
    """RUN/checkpoints/step-N (written atomically, every rank's generators included), then
    prune to ``keep_checkpoints``."""
    from accelerate.utils import gather_object

    rng_states = gather_object([capture_rng_state()])  # every rank's generators, in rank order
    if session.is_main:
        out, config = session.out, session.config
        saved_state = {**state.to_dict(), "world_size": session.plan.world_size, "train_config": config.to_dict()}
        with atomic_directory(out / "checkpoints" / f"step-{state.global_step}", overwrite=True) as tmp:
            session.model.save_pretrained(tmp / "model")
            save_state(tmp, "optimizer", session.optimizer.state_dict())
            save_state(tmp, "scheduler", session.scheduler.state_dict())
            save_state(tmp, "rng", {f"rank{r}": s for r, s in enumerate(rng_states)})
            write_json(tmp / "trainer_state.json", saved_state)  # written last: marks completeness
        if config.keep_checkpoints is not None:
            for _, old in checkpoint_dirs(out)[: -config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
    session.accelerator.wait_for_everyone()


def _run_epochs(
    session: _Session, state: TrainerState, resumed: bool, on_step: Callable[[int], None] | None
) -> tuple[float | None, int]:
    """Optimizer steps up to the planned total, logging and checkpointing on the way.

    Advances ``state``; returns (the last logged loss, the step of the last checkpoint
    written, -1 if none: a resumed run counts its starting checkpoint).
    """
    from tqdm.auto import tqdm

    config, plan = session.config, session.plan
    ga = config.grad_accum_steps
    bar = tqdm(total=plan.total_steps, initial=state.global_step, disable=not (session.is_main and config.progress),
               desc="train", unit="step")
    window = _MetricsWindow(session.accelerator.device)
    last_loss: float | None = None
    last_saved = state.global_step if resumed else -1
    while state.global_step < plan.total_steps:
        n_batches, micro_batches = _epoch_micro_batches(session, state)
        while state.step_in_epoch < plan.steps_per_epoch and state.global_step < plan.total_steps:
            n_micro = min(ga, n_batches - state.step_in_epoch * ga)
            step_losses, grad_norm, n_examples = _train_step(session, micro_batches, n_micro)
            state.global_step += 1
            state.step_in_epoch += 1
            state.examples_seen += n_examples
            window.add(step_losses, grad_norm, n_examples)
            if state.global_step % config.log_every == 0 or state.global_step == plan.total_steps:
                row = window.flush(session, state)
                last_loss = row.get("loss")
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            bar.update(1)
            if config.save_every and state.global_step % config.save_every == 0:
                _save_checkpoint(session, state)
                last_saved = state.global_step
            if on_step is not None:
                on_step(state.global_step)
        if state.step_in_epoch >= plan.steps_per_epoch:
            state.epoch, state.step_in_epoch = state.epoch + 1, 0
    bar.close()
    return last_loss, last_saved


def _finish(session: _Session, state: TrainerState, last_saved: int) -> None:
    """A checkpoint at the last step (unless one was just written), RUN/model and loss.png."""
    if last_saved != state.global_step:
        _save_checkpoint(session, state)
    if session.is_main:
        with atomic_directory(session.out / "model", overwrite=True) as tmp:
            session.model.save_pretrained(tmp)
        plot_metrics(session.out / "metrics.jsonl", session.out / "loss.png")
    session.accelerator.wait_for_everyone()


def train(
    model: ChatModel,
    examples: Sequence[DialogueExample],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    run_info: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_missing_features: bool = False,
    feature_sources: Mapping[str, str] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``examples`` into the run directory ``out_dir``.

    ``run_info`` (data/knowledge paths and hashes, CLI arguments) is merged into run.json.
    ``resume`` continues from the latest checkpoint to exactly the weights an
    uninterrupted run would reach. Examples lacking a feature modality the model reads are
    refused unless ``allow_missing_features`` (``feature_sources``: modality -> where those
    features were read from, for the message). ``on_step(global_step)`` is called after
    each step (tests use it to simulate a crash).
    """
    out = Path(out_dir)
    accelerator = _make_accelerator(config)
    plan = _plan_run(model, examples, config, accelerator.num_processes, allow_missing_features, feature_sources)
    checkpoint = _prepare_run_dir(accelerator, out, resume, overwrite)
    state = _restore_or_seed(model, checkpoint, config, plan.world_size)
    session = _start_session(accelerator, model, examples, config, out, plan)
    if checkpoint is not None:
        _restore_optimisation(session, checkpoint)
    if session.is_main:
        _write_run_files(session, run_info, checkpoint, state)

    start_time, start_step, start_examples = time.perf_counter(), state.global_step, state.examples_seen
    last_loss, last_saved = _run_epochs(session, state, checkpoint is not None, on_step)
    _finish(session, state, last_saved)
    seconds = time.perf_counter() - start_time
    return TrainResult(
        run_dir=out,
        global_step=state.global_step,
        epoch=state.epoch,
        epochs_completed=state.epoch + state.step_in_epoch / plan.steps_per_epoch,
        final_loss=last_loss,
        seconds=seconds,
        steps_per_second=(state.global_step - start_step) / seconds if seconds > 0 else 0.0,
        examples_per_second=(state.examples_seen - start_examples) / seconds if seconds > 0 else 0.0,
        resumed_from_step=start_step if checkpoint is not None else None,
    )
