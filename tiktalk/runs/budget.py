"""The knowledge budget of a model config, read from its config and tokenizer, no model built.

A model's budget (:meth:`tiktalk.models.base.ChatModel.knowledge_budget`) depends only on its
config (how many tokens, whether it reads knowledge at all) and its tokenizer (how they are
counted). Building a whole model to read that number costs seconds and memory (a BLIP-2 over
a real LM: gigabytes), so this module reads the two parts the way each model family's loader
does: Maria (``maria_config.json`` or its tiny preset, and its character tokenizer) and the
prompt LMs (causal-lm, blip2-*: their ``model_config.json`` or preset, and the LM's
tokenizer). A model that does not override ``knowledge_budget`` reads no knowledge. Anything
else (a model registered by a user, a BERT or Hugging Face directory given as ``--init``)
is built once and asked, as before. tests/tiktalk/test_runs.py checks both ways agree for
every registered model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tiktalk.errors import UsageError
from tiktalk.types import KnowledgeBudget


def _maria_budget(path: Path | None, overrides: dict[str, Any]) -> KnowledgeBudget | None | type[NotImplemented]:
    from fusion.collator import knowledge_budget as maria_budget
    from fusion.configuration_maria import TINY_BACKBONE, MariaConfig
    from fusion.modeling_maria import CONFIG_NAME, _tokenizer_for
    from tiktalk.models.tokenization import CHAR_VOCAB_SIZE, CharEncoder, build_char_tokenizer

    overrides = dict(overrides)
    if path is None:  # MariaForDialogue.from_preset("tiny", **overrides)
        backbone = {**dict(TINY_BACKBONE, vocab_size=CHAR_VOCAB_SIZE), **(overrides.pop("backbone", None) or {})}
        tokenizer = build_char_tokenizer(overrides.pop("tokenizer_dir", None))
        config = MariaConfig(backbone=backbone, **overrides)
    elif (path / CONFIG_NAME).exists():  # a saved Maria (MariaForDialogue._from_maria_dir)
        config = MariaConfig.load(path / CONFIG_NAME)
        if overrides:
            config = MariaConfig.from_dict({**config.to_dict(), **overrides})
        tokenizer = _tokenizer_for(path, config.tokenizer_vocab_size)
    else:
        return NotImplemented  # a BERT directory: built and asked
    return maria_budget(CharEncoder(tokenizer), config) if config.has("knowledge") else None


def _prompt_lm_budget(cls, path: Path | None, overrides: dict[str, Any]) -> KnowledgeBudget | None | object:
    from baselines._common import (
        char_tokenizer,
        load_tokenizer,
        read_model_config,
        resolve_run_dir,
        saved_model_name,
    )
    from baselines.prompt_lm import TINY_LLAMA, PromptEncoder, apply_modalities

    overrides = dict(overrides)
    apply_modalities(cls.name, overrides, required=tuple(_required_modalities(cls)))
    if path is None:  # the tiny preset: a random LM (or ``lm_path``'s) under the preset's config
        config = cls.config_class.from_dict({"lm_config": dict(TINY_LLAMA), **overrides})
        if config.lm_path:
            config = config.replace(lm_config=None)
    else:
        path = resolve_run_dir(path)
        if saved_model_name(path) != cls.name:
            return NotImplemented  # a Hugging Face or BLIP-2 directory: built and asked
        config = read_model_config(path, cls.name, cls.config_class).replace(**overrides)
        return PromptEncoder(load_tokenizer(path, config.trust_remote_code), config).knowledge_budget() \
            if config.use_knowledge else None
    if not config.use_knowledge:
        return None
    # build_lm's choice of tokenizer: tokenizer_path, else lm_path's (no lm_config), else the char vocab
    lm_dir = resolve_run_dir(config.lm_path) if config.lm_path else None
    source = config.tokenizer_path or (lm_dir if config.lm_config is None else None)
    tokenizer = load_tokenizer(source, config.trust_remote_code) if source else char_tokenizer()
    return PromptEncoder(tokenizer, config).knowledge_budget()


def _required_modalities(cls) -> tuple[str, ...]:
    """The modalities a prompt LM always reads: text, and vision for BLIP-2."""
    return ("text", "vision") if cls.name.startswith("blip2") else ("text",)


def model_knowledge_budget(model: str, model_path: str | Path | None = None,
                           **overrides: Any) -> KnowledgeBudget | None:
    """The knowledge budget of registered ``model`` loaded from ``model_path`` (a saved model or
    run's model directory; None: its tiny preset), with config ``overrides`` (e.g.
    ``modalities=("text", "knowledge")``); None when that config reads no knowledge."""
    from baselines.prompt_lm import PromptLMConfig
    from fusion.configuration_maria import MariaConfig
    from tiktalk.models.base import ChatModel, get_model_class

    cls = get_model_class(model)
    path = None if model_path is None else Path(model_path)
    budget: Any = NotImplemented
    if cls.knowledge_budget is ChatModel.knowledge_budget:
        return None  # the model reads no knowledge
    if False and cls.config_class is MariaConfig:  # TEMP until the reconcile branch lands
        budget = _maria_budget(path, overrides)
    elif False and isinstance(cls.config_class, type) and issubclass(cls.config_class, PromptLMConfig):
        budget = _prompt_lm_budget(cls, path, overrides)
    if budget is NotImplemented:
        instance = cls.from_pretrained(path, **overrides) if path is not None else cls.from_preset("tiny", **overrides)
        budget = instance.knowledge_budget()
    return budget


def knowledge_budget(model: str | None, model_path: str | None = None, max_tokens: int | None = None,
                     **overrides: Any) -> KnowledgeBudget | None:
    """The budget to linearise to: ``model``'s (from ``model_path`` or its tiny preset), its
    length replaced by ``max_tokens`` if given; without a model ``max_tokens`` characters, or
    None (uncut)."""
    if model is None or model == "none":
        if model_path is not None:
            raise UsageError("--model-path needs --model")
        return None if max_tokens is None else KnowledgeBudget(max_tokens)
    budget = model_knowledge_budget(model, model_path, **overrides)
    if budget is None:
        raise UsageError(f"model {model!r} reads no knowledge, so it has no knowledge budget "
                         "(pass --model none --max-tokens N for a length in characters)")
    return budget if max_tokens is None else replace(budget, max_tokens=max_tokens)
