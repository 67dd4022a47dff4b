"""The knowledge budget of a model config, read from its config and tokenizer, no model built.

A model's budget (:meth:`tiktalk.models.base.ChatModel.knowledge_budget`) depends only on its
config (how many tokens, whether it reads knowledge at all) and its tokenizer (how they are
counted). Building a whole model to read that number costs seconds and memory (a BLIP-2 over
a real LM: gigabytes), so each model family reads it from those two parts, next to its own
code (:meth:`~tiktalk.models.base.ChatModel.knowledge_budget_of`, over the family's
``config_knowledge_budget``); a model without that hook, or a directory of another library
given as ``--init``, is built once and asked. tests/tiktalk/test_runs.py checks both ways
agree for every registered model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tiktalk.errors import UsageError
from tiktalk.types import KnowledgeBudget


def model_knowledge_budget(model: str, model_path: str | Path | None = None,
                           **overrides: Any) -> KnowledgeBudget | None:
    """The knowledge budget of registered ``model`` loaded from ``model_path`` (a saved model or
    run's model directory; None: its tiny preset), with config ``overrides`` (e.g.
    ``modalities=("text", "knowledge")``); None when that config reads no knowledge."""
    from tiktalk.models.base import get_model_class

    return get_model_class(model).knowledge_budget_of(model_path, **overrides)


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
