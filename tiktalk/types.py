"""Plain records every model consumes: one dialogue example, modality by modality.

The dataset (tiktalk.dataset) yields these; each model's ``collate`` turns a list of them
into tensors. Retrieval never runs here: ``knowledge`` comes from the annotate cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
    knowledge: str | None = None  # linearised C3KG knowledge segment
