"""One interface and one registry for every dialogue model (Maria and the baselines).

A model subclasses :class:`ChatModel`, declares ``name`` and ``config_class`` and is
listed in :data:`MODELS` (your own: :func:`register_model`). The trainer and the CLI only use this interface:
``collate`` -> ``forward(**batch)`` (an output with ``loss``) -> ``generate``;
``save_pretrained`` / ``from_pretrained`` write and read JSON config + safetensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from tiktalk.errors import UsageError
from tiktalk.registry import Registry
from tiktalk.types import DialogueExample


class ChatModel(torch.nn.Module):
    """Base class of every dialogue model in the library."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    default_recipe: ClassVar[dict[str, Any]] = {}
    """TrainConfig fields this model trains with by default, from its source's training script
    (README, "Training recipes"); ``tiktalk train`` flags override them, TrainConfig's own
    defaults (Maria's recipe) fill the rest. Empty: Maria's recipe."""

    def collate(self, examples: Sequence[DialogueExample], train: bool = True) -> dict[str, Any]:
        """Examples -> a batch dict for ``forward`` (train=True adds labels / masking)."""
        raise NotImplementedError

    def generate(self, examples: Sequence[DialogueExample], **kwargs: Any) -> list[str]:
        """One response string per example."""
        raise NotImplementedError

    def save_pretrained(self, path) -> None:
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, path, **kwargs: Any) -> ChatModel:
        raise NotImplementedError

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> ChatModel:
        """``tiny``: random-initialised tiny config for smoke runs and tests."""
        raise NotImplementedError


# Built-in models by name, imported on first use (this platform imports none of them).
MODELS: Registry[type[ChatModel]] = Registry("model", {
    "maria": "fusion.modeling_maria:MariaForDialogue",
    "dialogpt": "baselines.dialogpt:DialoGPTChat",
    "causal-lm": "baselines.causal_lm:CausalLMChat",
    "livebot": "baselines.livebot:LivebotChat",
    "blip2-img": "baselines.blip2:Blip2ImgChat",
    "blip2-video": "baselines.blip2:Blip2VideoChat",
})


def register_model(cls: type[ChatModel]) -> type[ChatModel]:
    """Register a model class of your own under its ``name`` (usable as a decorator)."""
    if not cls.name:
        raise UsageError(f"{cls.__name__} has no `name`")
    return MODELS.register(cls.name, cls)


def model_names() -> list[str]:
    return MODELS.names()


def get_model_class(name: str) -> type[ChatModel]:
    return MODELS.get(name)
