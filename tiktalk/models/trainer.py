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

Data order and feature checks: :mod:`tiktalk.models.batching`; AdamW groups and the schedule:
:mod:`tiktalk.models.optim`; metrics lines and the loss plot: :mod:`tiktalk.models.run_log`.

A run, step by step (one function each): :func:`_plan_run` (validate the examples and
their features, count steps), :func:`_prepare_run_dir` (fresh, overwritten or resumed),
:func:`_restore_or_seed` (checkpoint weights and position, or the seed),
:func:`_start_session` (optimizer + schedule, accelerate), :func:`_write_run_files`,
:func:`_run_epochs` (the loop: :func:`_train_step`, :class:`MetricsWindow`,
:func:`_save_checkpoint`), :func:`_finish` (final checkpoint, model, loss plot).

Run directory::

    RUN/run.json                 model name + config, train config, versions, data hashes,
                                 features_present (fraction of examples per feature modality)
    RUN/metrics.jsonl            one line per logged step
    RUN/loss.png                 loss curves (matplotlib, Agg)
    RUN/trackers/                with report_to: the tracker's files (tensorboard: tiktalk/events.*)
    RUN/checkpoints/step-N/      see tiktalk.models.checkpoint
    RUN/model/                   final save_pretrained
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tiktalk.errors import (
    FormatError,
    MissingInputError,
    NonFiniteError,
    OutputExistsError,
    UsageError,
)
from tiktalk.io import atomic_directory, read_json, write_json
from tiktalk.models.base import ChatModel
from tiktalk.models.batching import (
    MicroBatches,
    SeededCollate,
    check_features,
    rank_micro_batches,
    steps_per_epoch,
    to_device,
    total_steps,
)
from tiktalk.models.checkpoint import (
    capture_rng_state,
    checkpoint_dirs,
    latest_checkpoint,
    load_state,
    read_trainer_state,
    restore_rng_state,
    restoring,
    save_state,
)
from tiktalk.models.optim import LinearSchedule, named_losses, parameter_groups
from tiktalk.models.run_log import MetricsWindow, model_config_dict, plot_metrics, truncate_metrics
from tiktalk.models.train_config import RESUMABLE_CHANGES, TrainConfig
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
    grad_accum_steps: int  # micro-batches per optimizer step (TrainConfig.accumulation_steps)
    global_batch_size: int  # examples per optimizer step over every process (an epoch's last may take fewer)
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


TRACKERS_DIR = "trackers"  # RUN/trackers/tiktalk/: tensorboard's event files
TRACKER_PROJECT = "tiktalk"


def _make_accelerator(config: TrainConfig, out: Path):
    """One accelerate ``Accelerator`` for the run (device, processes, autocast, DDP options,
    the experiment tracker of ``report_to``, logging under ``out``)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    tracking: dict[str, Any] = {}
    if config.report_to != "none":
        _check_tracker(config.report_to)
        tracking = {"log_with": config.report_to, "project_config": ProjectConfiguration(
            project_dir=str(out), logging_dir=str(out / TRACKERS_DIR))}
    return Accelerator(
        cpu=config.cpu,
        mixed_precision=_mixed_precision(config),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)],
        **tracking,
    )


def _check_tracker(name: str) -> None:
    from accelerate.utils import is_tensorboard_available, is_wandb_available

    available = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available}[name]()
    if not available:
        extra = " (in the dev extra)" if name == "tensorboard" else ""
        raise UsageError(f"--report-to {name}: the package {name} is not installed; pip install {name}{extra}")


def _start_trackers(session: _Session) -> None:
    """accelerate's trackers (main process only, accelerate decides), with the run's options."""
    if session.config.report_to == "none":
        return
    hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in session.config.to_dict().items()}
    init_kwargs = {"wandb": {"dir": str(session.out / TRACKERS_DIR)}} if session.config.report_to == "wandb" else {}
    session.out.joinpath(TRACKERS_DIR).mkdir(parents=True, exist_ok=True)
    session.accelerator.init_trackers(TRACKER_PROJECT, config=hparams, init_kwargs=init_kwargs)


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
    accumulation = config.accumulation_steps(world_size)
    return _Plan(
        n_examples=len(examples),
        world_size=world_size,
        total_steps=total_steps(config, len(examples), world_size),
        steps_per_epoch=steps_per_epoch(len(examples), config.batch_size, world_size, accumulation),
        grad_accum_steps=accumulation,
        global_batch_size=config.batch_size * world_size * accumulation,
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


def _restore_or_seed(model: ChatModel, checkpoint: Path | None, config: TrainConfig, world_size: int,
                     epoch_steps: int) -> TrainerState:
    """Resumed: the checkpoint's weights (copied into ``model``) and position. Fresh: seed every generator."""
    if checkpoint is None:
        from accelerate.utils import set_seed

        set_seed(config.seed)
        return TrainerState()
    saved = read_trainer_state(checkpoint)
    _check_resumable(saved, config, world_size, checkpoint)
    if saved["global_step"] != saved["epoch"] * epoch_steps + saved["step_in_epoch"] \
            or saved["step_in_epoch"] > epoch_steps:
        raise FormatError(f"the position (epoch {saved['epoch']}, step {saved['step_in_epoch']} of "
                          f"{epoch_steps} per epoch) is not global step {saved['global_step']}; was it edited?",
                          path=checkpoint / "trainer_state.json")
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
    schedule = LinearSchedule(config.warmup_steps, plan.total_steps, config.lr_schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    return _Session(
        accelerator=accelerator, config=config, out=out, examples=examples, plan=plan, wrapped=wrapped,
        model=accelerator.unwrap_model(wrapped), optimizer=optimizer, scheduler=scheduler, schedule=schedule,
    )


def _restore_optimisation(session: _Session, checkpoint: Path, state: TrainerState) -> None:
    """Optimizer, scheduler and this rank's generators from the checkpoint. ``load_state_dict``
    takes any values; what a later step would trip on (a string learning rate, a moment of
    another shape, a schedule at another step) is refused here, naming the file."""
    with restoring(checkpoint / "optimizer.json"):
        session.optimizer.load_state_dict(load_state(checkpoint, "optimizer"))
        _check_optimizer_state(session.optimizer)
    with restoring(checkpoint / "scheduler.json"):
        session.scheduler.load_state_dict(load_state(checkpoint, "scheduler"))
        scheduler = session.scheduler
        if scheduler.last_epoch != state.global_step:
            raise ValueError(f"the schedule is at step {scheduler.last_epoch!r}, the checkpoint at {state.global_step}")
        rates = [float(base) * float(rule(scheduler.last_epoch))
                 for base, rule in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]
        if not all(math.isfinite(rate) for rate in rates):
            raise ValueError(f"learning rates {rates} are not finite")
    n_total = session.plan.total_steps
    if session.schedule.total_steps != n_total:  # load_state_dict restored the old horizon
        warnings.warn(f"resuming with {n_total} total steps instead of {session.schedule.total_steps}", stacklevel=3)
        session.schedule.total_steps = n_total
    with restoring(checkpoint / "rng.json"):
        restore_rng_state(load_state(checkpoint, "rng")[f"rank{session.rank}"])


def _check_optimizer_state(optimizer) -> None:
    """Every hyper-parameter a finite number, every per-parameter moment of its parameter's shape."""
    for group in optimizer.param_groups:
        for key in ("lr", "eps", "weight_decay", "betas"):
            values = group.get(key)
            values = values if isinstance(values, (list, tuple)) else [values]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise ValueError(f"param_groups {key} is {group.get(key)!r}, not a finite number")
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if name != "step" and (not isinstance(value, torch.Tensor) or value.shape != param.shape):
                    raise ValueError(f"state {name} has shape {getattr(value, 'shape', value)!r}, its parameter "
                                     f"{tuple(param.shape)}")


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
        "grad_accum_steps": session.plan.grad_accum_steps,
        "global_batch_size": session.plan.global_batch_size,
        "optimizer_steps": session.plan.total_steps,
        "n_train_examples": session.plan.n_examples,
        "features_present": session.plan.features_present,
        "versions": library_versions(),
        **(run_info or {}),
    }
    if checkpoint is not None:
        info["resumed"] = [*previous.get("resumed", []), {"from_step": state.global_step}]
    write_json(path, info)
    truncate_metrics(out / "metrics.jsonl", state.global_step)


def _epoch_micro_batches(session: _Session, state: TrainerState) -> tuple[int, Iterator]:
    """This rank's micro-batch count in ``state.epoch`` and an iterator over the collated ones
    from ``state.step_in_epoch`` on: (n examples, batch) pairs."""
    config = session.config
    batches = rank_micro_batches(
        session.plan.n_examples, config.seed, state.epoch, config.batch_size, session.rank, session.plan.world_size
    )
    start = state.step_in_epoch * session.plan.grad_accum_steps
    loader = torch.utils.data.DataLoader(
        MicroBatches(batches, start, config.seed, state.epoch, session.rank),
        batch_size=None,
        shuffle=False,
        collate_fn=SeededCollate(session.model, session.examples),
        num_workers=config.num_workers,
        pin_memory=session.accelerator.device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed),  # keep the global RNG untouched
    )
    return len(batches), iter(loader)


def _train_step(session: _Session, micro_batches: Iterator, n_micro: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """One optimizer step over ``n_micro`` micro-batches.

    Each micro-batch's loss is weighted by its share of the step's examples (equal shares
    when the micro-batches are equal, as all but an epoch's last are), and DDP averages over
    processes, whose shards are equally long: for a loss that is a mean over examples the
    step's gradient is that of one process taking the whole global batch.

    Returns (each named loss averaged over the micro-batches the same way, 0-d tensors; the
    gradient norm before clipping; examples used).
    """
    accelerator, wrapped, config = session.accelerator, session.wrapped, session.config
    wrapped.train()
    step_losses: dict[str, torch.Tensor] = {}
    items = [next(micro_batches) for _ in range(n_micro)]  # collated on the CPU; sizes first
    n_examples = sum(n_ex for n_ex, _ in items)
    for m, (n_ex, batch) in enumerate(items):
        share = n_ex / n_examples
        batch = to_device(batch, accelerator.device)
        # Only the last micro-batch of a step all-reduces gradients.
        sync = contextlib.nullcontext() if m == n_micro - 1 else accelerator.no_sync(wrapped)
        with sync:
            losses = named_losses(wrapped(**batch))
            if "loss" not in losses:
                raise UsageError(f"{type(session.model).__name__}.forward returned no `loss` tensor in training")
            accelerator.backward(losses["loss"] * share)
        for name, value in losses.items():
            step_losses[name] = step_losses.get(name, 0.0) + value.detach().float() * share
    _stop_on_non_finite(session, step_losses)
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


def _stop_on_non_finite(session: _Session, step_losses: dict[str, torch.Tensor]) -> None:
    """Refuse a step whose loss is NaN or infinite, before the optimizer applies it (every
    rank agrees, so none waits for the others)."""
    bad = torch.stack([~torch.isfinite(v) for v in step_losses.values()]).any().float()
    if session.accelerator.num_processes > 1:
        bad = session.accelerator.reduce(bad, reduction="sum")
    if bad.item():
        shown = ", ".join(f"{name} {float(v):g}" for name, v in step_losses.items())
        raise NonFiniteError(f"the training loss is not finite ({shown}); the optimizer step was not taken")


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
    ga = plan.grad_accum_steps
    bar = tqdm(total=plan.total_steps, initial=state.global_step, disable=not (session.is_main and config.progress),
               desc="train", unit="step")
    window = MetricsWindow(session.accelerator.device)
    last_loss: float | None = None
    last_saved = state.global_step if resumed else -1
    while state.global_step < plan.total_steps:
        n_batches, micro_batches = _epoch_micro_batches(session, state)
        while state.step_in_epoch < plan.steps_per_epoch and state.global_step < plan.total_steps:
            n_micro = min(ga, n_batches - state.step_in_epoch * ga)
            try:
                step_losses, grad_norm, n_examples = _train_step(session, micro_batches, n_micro)
            except NonFiniteError as err:  # keep the last finite step, then stop (exit 2)
                if last_saved != state.global_step and state.global_step > 0:
                    _save_checkpoint(session, state)
                kept = (f"step {state.global_step} is saved in {session.out / 'checkpoints'}"
                        if state.global_step > 0 else "no step was finite; nothing was saved")
                raise NonFiniteError(f"step {state.global_step + 1}: {err}; {kept} (lower --lr, check the data)"
                                     ) from None
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
    # flushes and closes the trackers (none: nothing); last, since it also ends the process group
    session.accelerator.end_training()


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
    accelerator = _make_accelerator(config, out)
    plan = _plan_run(model, examples, config, accelerator.num_processes, allow_missing_features, feature_sources)
    checkpoint = _prepare_run_dir(accelerator, out, resume, overwrite)
    state = _restore_or_seed(model, checkpoint, config, plan.world_size, plan.steps_per_epoch)
    session = _start_session(accelerator, model, examples, config, out, plan)
    if checkpoint is not None:
        _restore_optimisation(session, checkpoint, state)
    if session.is_main:
        _write_run_files(session, run_info, checkpoint, state)
    _start_trackers(session)

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
