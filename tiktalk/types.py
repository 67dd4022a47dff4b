"""Plain records every model consumes: one dialogue example, modality by modality.

The dataset (tiktalk.dataset) yields these; each model's ``collate`` turns a list of them
into tensors. Retrieval never runs here: ``knowledge`` comes from the annotate cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tiktalk.errors import UsageError


@dataclass
class DialogueExample:
    dialogue_id: str
    context: list[str]  # preceding turns, oldest first
    response: str | None = None  # the target; None at generation time
    references: list[str] = field(default_factory=list)  # val/test: 5 ground-truth responses
    video_id: str | None = None
    title: str | None = None
    frames: np.ndarray | None = None  # (n_frames <= 50, 2048) float32 ResNet-101 features, or token grids (n, tokens, 2048)
    audio: np.ndarray | None = None  # (n_patches <= 50, 128) float32 VGGish features
    knowledge: str | None = None  # linearised C3KG knowledge segment (kg.linearize)


@dataclass(frozen=True)
class KnowledgeBudget:
    """How long a model's knowledge segment may be: ``max_tokens`` as ``count_tokens`` counts
    them (the model's tokenizer; default: characters).

    A model states it (``ChatModel.knowledge_budget()``); ``kg.linearize`` cuts to it at piece
    boundaries; ``tokenizer`` names the counting (recorded in the knowledge cache, so a
    training run can tell a cache linearised for another model).
    """

    max_tokens: int
    count_tokens: Callable[[str], int] = len
    tokenizer: str = "characters"

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise UsageError(f"knowledge budget max_tokens ({self.max_tokens!r}) must be a positive integer")

    def as_dict(self) -> dict[str, int | str]:
        return {"max_tokens": self.max_tokens, "tokenizer": self.tokenizer}
