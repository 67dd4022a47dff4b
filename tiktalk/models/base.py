"""One interface and one registry for every dialogue model (Maria and the baselines).

A model subclasses :class:`ChatModel`, declares ``name`` and ``config_class`` and is
listed in :data:`MODELS` (your own: :func:`register_model`). The trainer and the CLI only use this interface:
``collate`` -> ``forward(**batch)`` (an output with ``loss``) -> ``generate``;
``knowledge_budget`` (models that read knowledge); ``feature_modalities`` names the
per-video features the model reads; ``save_pretrained`` / ``from_pretrained`` write and read
JSON config + safetensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from tiktalk.errors import UsageError
from tiktalk.models.modalities import FEATURE_FIELDS, parse_modalities
from tiktalk.registry import Registry
from tiktalk.types import DialogueExample, KnowledgeBudget


class ChatModel(torch.nn.Module):
    """Base class of every dialogue model in the library."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    default_recipe: ClassVar[dict[str, Any]] = {}
    """TrainConfig fields this model trains with by default, from its source's training script
    (README, "Training recipes"); ``tiktalk train`` flags override them, TrainConfig's own
    defaults (Maria's recipe) fill the rest. Empty: Maria's recipe."""
    preset_recipes: ClassVar[dict[str, dict[str, Any]]] = {
        # Measured on the sample (batch 16; reference NLL per token on its 7 val dialogues, by
        # 60 steps at 1e-3 / 300 at 3e-3, 30 warmup / 600 at 3e-3, 60 warmup): DialoGPT 8.75 /
        # 7.62 / 9.13, causal-lm 9.01 / 7.14 / 8.58, Livebot 9.02 / 7.53 / 8.60 (600 steps
        # memorise the 147 training dialogues). BLIP-2 freezes its LM, so over a random tiny LM
        # it stays at ln(vocab) = 9.94 whatever the recipe; over a causal-lm run (``--lm``) it
        # reached 7.16 at 300 steps. Maria measured its own (fusion/modeling_maria.py).
        "tiny": {"lr": 3e-3, "warmup_steps": 30, "max_steps": 300, "batch_size": 16},
    }
    """Per random-initialised preset, TrainConfig fields over ``default_recipe``: a source's
    recipe is made for pretrained weights (lr 3e-5 does not move a random tiny model)."""

    @classmethod
    def recipe(cls, preset: str | None = None) -> dict[str, Any]:
        """The TrainConfig defaults of a run from ``preset`` (None: from pretrained weights)."""
        return {**cls.default_recipe, **(cls.preset_recipes.get(preset, {}) if preset else {})}

    def collate(
        self,
        examples: Sequence[DialogueExample],
        train: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, Any]:
        """Examples -> a batch dict for ``forward`` (train=True adds labels / masking).

        Every random draw (masking, sampled frames) comes from ``generator`` (CPU), never from
        the global python / numpy / torch generators: the trainer passes one seeded per
        micro-batch, so a batch is a pure function of (examples, seed) in any process, and
        the dropout stream is left alone. ``None`` (inference, tests) means torch's default
        generator. A deterministic collator accepts the argument and ignores it.
        """
        raise NotImplementedError

    def feature_modalities(self) -> tuple[str, ...]:
        """The per-video feature modalities this model reads (``vision``, ``audio``).

        The trainer refuses examples that lack one (unless missing features are allowed).
        Default: those among ``self.config.modalities`` (a ``"T+I"`` string or a tuple of
        names) when the config has that field, else none.
        """
        spec = getattr(getattr(self, "config", None), "modalities", None)
        if spec is None:
            return ()
        return tuple(m for m in parse_modalities(spec) if m in FEATURE_FIELDS)

    def generate(self, examples: Sequence[DialogueExample], **kwargs: Any) -> list[str]:
        """One response string per example."""
        raise NotImplementedError

    def score(self, examples: Sequence[DialogueExample], batch_size: int = 32) -> list[tuple[float, int]]:
        """Per example: (summed negative log-likelihood of its response in nats, tokens scored).
        Used by the knowledge-use probe (:mod:`tiktalk.models.probe`)."""
        raise NotImplementedError(f"{type(self).__name__} does not score responses")

    def knowledge_budget(self) -> KnowledgeBudget | None:
        """The knowledge segment this model reads: its length in tokens and how they are
        counted (its tokenizer); None when it reads no knowledge. Knowledge is linearised to
        it (``tiktalk annotate --model``); the model drops whole trailing pieces of a longer
        segment (``kg.fit_knowledge``), never part of one."""
        return None

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
