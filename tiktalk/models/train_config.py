"""The trainer's options in one dataclass, importable without torch (the CLI builds its flags
from these fields at parser-build time, so `tiktalk --help` stays fast)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tiktalk.errors import UsageError
from tiktalk.options import (
    BETA,
    COUNT,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    bounded,
    check_fields,
)

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
LR_SCHEDULES = ("linear", "cosine", "constant")
REPORT_TO = ("none", "tensorboard", "wandb")
# Options that may change between an interrupted run and its resumption; any other
# difference would change data order or the optimisation and is refused.
RESUMABLE_CHANGES = frozenset(
    {"max_steps", "epochs", "log_every", "save_every", "keep_checkpoints", "num_workers", "progress", "cpu",
     "report_to"}
)


@dataclass
class TrainConfig:
    """Every trainer option, once (the CLI builds its flags from these fields)."""

    lr: float = field(default=3e-5, metadata=bounded(POSITIVE, "peak learning rate (AdamW)"))
    adam_eps: float = field(default=1e-8, metadata=bounded(POSITIVE, "AdamW epsilon"))
    adam_beta1: float = field(default=0.9, metadata=bounded(BETA, "AdamW beta1"))
    adam_beta2: float = field(default=0.999, metadata=bounded(BETA, "AdamW beta2"))
    weight_decay: float = field(default=0.05, metadata=bounded(NON_NEGATIVE, "weight decay (none on biases and norm weights)"))
    warmup_steps: int = field(default=0, metadata=bounded(COUNT, "linear warmup steps before the schedule"))
    lr_schedule: str = field(default="linear", metadata={
        "help": "after the warmup: linear (decay to 0), cosine (decay to 0, Hugging Face's), constant"})
    max_grad_norm: float = field(default=1.0, metadata=bounded(NON_NEGATIVE, "gradient clipping norm (0 disables)"))
    batch_size: int = field(default=64, metadata=bounded(POSITIVE_INT, "examples per micro-batch per process"))
    grad_accum_steps: int = field(default=1, metadata=bounded(POSITIVE_INT, "micro-batches per optimizer step"))
    global_batch_size: int | None = field(default=None, metadata=bounded(
        POSITIVE_INT, "examples per optimizer step over all processes; reached by accumulating micro-batches "
        "(batch_size x processes x accumulation steps, which it fixes)"))
    epochs: int = field(default=20, metadata=bounded(POSITIVE_INT, "passes over the training examples"))
    max_steps: int | None = field(default=None, metadata=bounded(POSITIVE_INT, "optimizer steps in all (overrides epochs)"))
    seed: int = field(default=42, metadata=bounded(SEED, "seed of init, data order, masking and dropout"))
    mixed_precision: str = field(default="auto", metadata={"help": "auto (bf16 on a capable GPU, else no), no, bf16, fp16"})
    cpu: bool = field(default=False, metadata={"help": "train on CPU even if a GPU is present"})
    log_every: int = field(default=10, metadata=bounded(POSITIVE_INT, "steps between metrics lines"))
    save_every: int | None = field(default=500, metadata=bounded(POSITIVE_INT, "steps between checkpoints (and one at the end)"))
    keep_checkpoints: int | None = field(default=3, metadata=bounded(POSITIVE_INT, "most recent checkpoints kept (None: all)"))
    num_workers: int = field(default=0, metadata=bounded(COUNT, "DataLoader workers running collate"))
    find_unused_parameters: bool = field(default=True, metadata={"help": "DDP: allow parameters without gradient (modality subsets)"})
    progress: bool = field(default=True, metadata={"help": "show a tqdm progress bar"})
    report_to: str = field(default="none", metadata={
        "help": "also send the metrics lines to an experiment tracker (accelerate's): none, tensorboard "
        "(event files under RUN/trackers/), wandb"})

    def __post_init__(self) -> None:
        check_fields(self)  # every numeric field's range, declared with it (tiktalk.options)
        if self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"TrainConfig.lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.report_to not in REPORT_TO:
            raise UsageError(f"TrainConfig.report_to must be one of {REPORT_TO}, got {self.report_to!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise UsageError(f"TrainConfig.mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")

    def accumulation_steps(self, world_size: int) -> int:
        """Micro-batches per optimizer step on ``world_size`` processes: ``global_batch_size /
        (batch_size x world_size)`` when a global batch is set (``grad_accum_steps`` must then
        be 1 or that number), else ``grad_accum_steps``."""
        if self.global_batch_size is None:
            return self.grad_accum_steps
        per_pass = self.batch_size * world_size
        if self.global_batch_size % per_pass:
            raise UsageError(
                f"global_batch_size ({self.global_batch_size}) is not a multiple of batch_size ({self.batch_size}) "
                f"x processes ({world_size}) = {per_pass}; choose a batch size that divides it"
            )
        steps = self.global_batch_size // per_pass
        if self.grad_accum_steps not in (1, steps):
            raise UsageError(
                f"grad_accum_steps ({self.grad_accum_steps}) contradicts global_batch_size ({self.global_batch_size}) "
                f"= batch_size ({self.batch_size}) x processes ({world_size}) x {steps}; give one of them"
            )
        return steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
