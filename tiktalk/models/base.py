"""One interface and one registry for every dialogue model (Maria and the baselines).

A model subclasses :class:`ChatModel`, declares once, as class attributes, its ``name``,
``config_class`` (a :class:`~tiktalk.models.config.ModelConfig`), ``presets``,
``required_modalities`` / ``optional_modalities``, and is listed in :data:`MODELS` (your
own: :func:`register_model`). The trainer and the CLI only use this interface:
``collate`` -> ``forward(**batch)`` (an output with ``loss``) -> ``generate``; ``score``
(one loop, :mod:`tiktalk.models.scoring`; a model gives ``score_batch``);
``knowledge_budget`` (models that read knowledge); ``feature_modalities`` names the
per-video features the model reads; ``from_preset``, ``save_pretrained`` /
``from_pretrained`` build, write and read the one saved format (:mod:`tiktalk.models.saving`).

Modalities are a canonical tuple (:func:`~tiktalk.models.modalities.parse_modalities`,
called once at the command line); ``from_preset`` / ``from_pretrained`` take it as the
``modalities=`` override, check it against the class attributes and turn it into config
fields (:meth:`ChatModel.modality_fields`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from tiktalk.errors import FormatError, MissingInputError, UsageError
from tiktalk.models.modalities import FEATURE_FIELDS, check_supported
from tiktalk.registry import Registry
from tiktalk.types import DialogueExample, KnowledgeBudget

if TYPE_CHECKING:
    from tiktalk.models.saving import SavedModel


class ChatModel(torch.nn.Module):
    """Base class of every dialogue model in the library."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    required_modalities: ClassVar[tuple[str, ...]] = ("text",)
    """Modalities the model always reads (what a Table 3 row of this model reads)."""
    optional_modalities: ClassVar[tuple[str, ...]] = ()
    """Modalities a ``modalities=`` override may switch on (the model's config says how)."""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    """Random-initialised configs by name (``tiny``: smoke runs and tests): config fields over
    the config's defaults."""
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
        # (no global batch and a linear schedule, whatever the source's: measured so)
        "tiny": {"lr": 3e-3, "warmup_steps": 30, "max_steps": 300, "batch_size": 16, "global_batch_size": None,
                 "lr_schedule": "linear"},
    }
    """Per random-initialised preset, TrainConfig fields over ``default_recipe``: a source's
    recipe is made for pretrained weights (lr 3e-5 does not move a random tiny model)."""
    paper_recipe_fields: ClassVar[tuple[str, ...]] = (
        "lr", "adam_eps", "adam_beta1", "adam_beta2", "weight_decay", "warmup_steps", "lr_schedule",
        "max_grad_norm", "epochs", "max_steps", "global_batch_size")
    """The TrainConfig fields that make a run follow its source's recipe (:meth:`recipe_deviations`):
    the global batch, not how processes and micro-batches reach it."""

    @classmethod
    def recipe(cls, preset: str | None = None, model_options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The TrainConfig defaults of a run from ``preset`` (None: from pretrained weights);
        ``model_options``: config fields of the run (a model whose source trains a variant with
        another recipe, e.g. causal-lm's LoRA, picks it from them)."""
        return {**cls.default_recipe, **(cls.preset_recipes.get(preset, {}) if preset else {})}

    @classmethod
    def recipe_deviations(cls, train_config: dict[str, Any], global_batch_size: int | None,
                          model_options: dict[str, Any] | None = None) -> list[str]:
        """How a run's ``train_config`` (run.json's) departs from the source's recipe for
        pretrained weights, one phrase per field of :attr:`paper_recipe_fields` (the global
        batch compared as the run reached it, ``global_batch_size``); empty: it follows it."""
        from tiktalk.models.train_config import TrainConfig

        recipe = TrainConfig(**cls.recipe(None, model_options))
        out = []
        for name in cls.paper_recipe_fields:
            want = getattr(recipe, name)
            have = global_batch_size if name == "global_batch_size" else train_config.get(name)
            if name == "global_batch_size" and want is None:
                continue  # the source states none
            if name == "epochs" and recipe.max_steps is not None:
                continue  # a step count rules
            if have != want:
                out.append(f"{name} {have} (recipe {want})")
        return out

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

    def modalities(self) -> tuple[str, ...]:
        """The modalities this instance reads. Default: ``required_modalities``."""
        return self.required_modalities

    def feature_modalities(self) -> tuple[str, ...]:
        """The per-video feature modalities this model reads (``vision``, ``audio``): those among
        :meth:`modalities`. The trainer refuses examples that lack one (unless missing
        features are allowed)."""
        return tuple(m for m in self.modalities() if m in FEATURE_FIELDS)

    def generate(self, examples: Sequence[DialogueExample], **kwargs: Any) -> list[str]:
        """One response string per example."""
        raise NotImplementedError

    def score(self, examples: Sequence[DialogueExample], batch_size: int = 32) -> list[tuple[float, int]]:
        """Per example: (summed negative log-likelihood of its response in nats, tokens scored),
        by :meth:`score_batch` over chunks (:func:`tiktalk.models.scoring.score_in_batches`).
        Used by the knowledge-use probe (:mod:`tiktalk.models.probe`)."""
        from tiktalk.models.scoring import score_in_batches

        return score_in_batches(self, examples, batch_size, self.score_batch)

    def score_batch(self, examples: Sequence[DialogueExample]) -> list[tuple[float, int]]:
        """:meth:`score` of one chunk (called in eval mode, without gradients)."""
        raise NotImplementedError(f"{type(self).__name__} does not score responses")

    def knowledge_budget(self) -> KnowledgeBudget | None:
        """The knowledge segment this model reads: its length in tokens and how they are
        counted (its tokenizer); None when it reads no knowledge. Knowledge is linearised to
        it (``tiktalk annotate --model``); the model drops whole trailing pieces of a longer
        segment (``kg.fit_knowledge``), never part of one."""
        return None

    @classmethod
    def knowledge_budget_of(cls, path: str | os.PathLike | None = None, preset: str = "tiny",
                            **overrides: Any) -> KnowledgeBudget | None:
        """The :meth:`knowledge_budget` of the model ``from_pretrained(path, **overrides)`` (path
        None: ``from_preset(preset, **overrides)``) would build, read from its config and
        tokenizer where the class knows how (:meth:`config_knowledge_budget`); otherwise (another
        library's checkpoint, a model without the hook) the model is built once and asked."""
        if cls.knowledge_budget is ChatModel.knowledge_budget:
            return None  # the model reads no knowledge, whatever its config
        from tiktalk.models.saving import read_saved_model, resolve_run_dir

        budget: Any = NotImplemented
        if path is None:
            if preset not in cls.presets:
                raise UsageError(f"{cls.name}: unknown preset {preset!r}; known: {sorted(cls.presets)}")
            budget = cls.config_knowledge_budget(cls._config_overrides(overrides), None, preset)
        else:
            saved = read_saved_model(resolve_run_dir(path))
            if saved is not None and saved.model_type == cls.name:
                budget = cls.config_knowledge_budget(cls._config_overrides(overrides), saved, preset)
        if budget is NotImplemented:
            model = cls.from_preset(preset, **overrides) if path is None else cls.from_pretrained(path, **overrides)
            budget = model.knowledge_budget()
        return budget

    @classmethod
    def config_knowledge_budget(cls, fields: dict[str, Any], saved: SavedModel | None,
                                preset: str) -> KnowledgeBudget | None:
        """The knowledge budget of the model ``from_saved(saved, ...)`` (saved None: preset
        ``preset``) with config ``fields`` on top (modalities already turned into fields) would
        have, read from its config and tokenizer without building it (a BLIP-2 over a real LM
        is gigabytes). Default: ``NotImplemented`` (the model is built and asked)."""
        return NotImplemented

    # -- building, saving, loading: one format for every model (tiktalk.models.saving) -----------

    @classmethod
    def modality_fields(cls, modalities: tuple[str, ...]) -> dict[str, Any]:
        """Config fields that make the model read ``modalities`` (a canonical tuple), checked
        against ``required_modalities`` / ``optional_modalities``. Default: none (the model's
        modalities are fixed)."""
        check_supported(cls.name, modalities, cls.required_modalities, cls.optional_modalities)
        return {}

    @classmethod
    def _config_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        """``overrides`` with a ``modalities`` tuple replaced by :meth:`modality_fields`."""
        overrides = dict(overrides)
        modalities = overrides.pop("modalities", None)
        return overrides if modalities is None else {**overrides, **cls.modality_fields(modalities)}

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> ChatModel:
        """A random-initialised model from ``presets[preset]``; ``overrides`` are config fields
        (and ``modalities``, a canonical tuple)."""
        if preset not in cls.presets:
            raise UsageError(f"{cls.name}: unknown preset {preset!r}; known: {sorted(cls.presets)}")
        return cls.build_preset(dict(cls.presets[preset]), cls._config_overrides(overrides))

    @classmethod
    def build_preset(cls, fields: dict[str, Any], overrides: dict[str, Any]) -> ChatModel:
        """The model of a preset's ``fields`` with ``overrides`` on top (a hook for models that
        merge nested fields or pick a tokenizer)."""
        return cls(cls.config_class.from_dict({**fields, **overrides}))

    def saved_config(self) -> Any:
        """The config written by :meth:`save_pretrained` (default: ``self.config``)."""
        return self.config

    def save_pretrained(self, path: str | os.PathLike, overwrite: bool = True) -> None:
        """Config JSON + ``model.safetensors`` (+ tokenizer files) into ``path``, atomically."""
        from tiktalk.models.saving import save_model_dir

        save_model_dir(self, path, self.name, self.saved_config(), getattr(self, "tokenizer", None),
                       overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> ChatModel:
        """A saved model of this class (or its ``tiktalk train`` run directory), else what
        :meth:`from_external` reads; ``overrides`` are config fields (and ``modalities``)."""
        from tiktalk.models.saving import read_saved_model, resolve_run_dir

        path = resolve_run_dir(path)
        saved = read_saved_model(path)
        if saved is not None and saved.model_type == cls.name:
            return cls.from_saved(saved, **overrides)
        return cls.from_external(path, saved, **overrides)

    @classmethod
    def from_saved(cls, saved: SavedModel, **overrides: Any) -> ChatModel:
        """Rebuild from the saved config (``overrides`` on top), then load the weights."""
        from tiktalk.models.saving import load_weights

        config = cls.config_class.from_dict(saved.config)
        overrides = cls._config_overrides(overrides)
        if overrides:
            config = config.replace(**overrides)
        model = cls(config, tokenizer=cls.saved_tokenizer(saved.path, config))
        load_weights(model, saved.path)
        return model

    @classmethod
    def saved_tokenizer(cls, path: Path, config: Any):
        """The tokenizer saved beside the weights (None when none was: a model without one)."""
        if not (path / "tokenizer_config.json").exists():
            return None
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(path),
                                                 trust_remote_code=getattr(config, "trust_remote_code", False))
        except (OSError, ValueError) as err:  # transformers' words for missing or unusable tokenizer files
            raise FormatError(f"cannot build the saved tokenizer ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:200]})", path=path) from None

    @classmethod
    def from_external(cls, path: Path, saved: SavedModel | None, **overrides: Any) -> ChatModel:
        """A directory that is not a saved model of this class: another library's checkpoint
        (models that read one override this), or the saved model of another class (``saved``)."""
        if saved is not None:
            raise UsageError(f"{path / saved.file}: holds a saved {saved.model_type} model, not {cls.name}")
        from tiktalk.models.saving import MODEL_FILE

        raise MissingInputError(f"{path}: not a saved {cls.name} model (no {MODEL_FILE})")


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
