"""One interface and one registry for every dialogue model (Maria and the baselines).

A model subclasses :class:`ChatModel`, declares ``name`` and ``config_class`` and is
registered with :func:`register_model`. The trainer and the CLI only use this interface:
``collate`` -> ``forward(**batch)`` (an output with ``loss``) -> ``generate``;
``save_pretrained`` / ``from_pretrained`` write and read JSON config + safetensors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from tiktalk.types import DialogueExample

_REGISTRY: dict[str, type[ChatModel]] = {}
# Modules that register models when imported, so lookups by name work lazily.
MODEL_MODULES: tuple[str, ...] = ("fusion.modeling_maria", "baselines")


class ChatModel(torch.nn.Module):
    """Base class of every dialogue model in the library."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object

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


def register_model(cls: type[ChatModel]) -> type[ChatModel]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no `name`")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} is already registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    for module in MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a package not written yet must not hide the others
            if err.name != module and not module.startswith(str(err.name)):
                raise


def model_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[ChatModel]:
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


ModelFactory = Callable[..., ChatModel]
