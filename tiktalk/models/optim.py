"""Optimisation pieces of the trainer: AdamW's decay groups, the lr schedules, named losses."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

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
    """lr multiplier: linear warmup to 1, then linear decay to 0 at ``total_steps``
    (``shape="cosine"``: half a cosine down to 0, as Hugging Face's
    ``get_cosine_schedule_with_warmup``; ``"constant"``: 1 after the warmup)."""

    def __init__(self, warmup_steps: int, total_steps: int, shape: str = "linear"):
        if shape not in ("linear", "cosine", "constant"):
            raise ValueError(f"schedule shape must be linear, cosine or constant, got {shape!r}")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.shape = shape

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.shape == "constant":
            return 1.0
        remaining = max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))
        if self.shape == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * (1.0 - remaining)))
        return remaining


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
