"""Configuration of Maria adapted to TikTalk (SPEC section 3): one dataclass, defaults in one place.

Sequence layout (Maria's order, TikTalk additions after the context)::

    [CLS] response [SEP] [PAD]...   | context turns joined by [SEP] | knowledge [SEP] | frames | audio
    <---- response_budget slots ---> <-------- source text (text_budget - response_budget) -->

Segment / token-type ids (``SEGMENT_IDS``; one id per segment):

    0 response   1 context   2 knowledge   3 vision   4 audio      (-1 marks padding in masks)

bert-base-chinese has 2 token-type rows. Maria's type vocabulary is ``TYPE_VOCAB_SIZE = 5``;
on loading a 2-row BERT checkpoint, rows 0-1 are copied, the knowledge row (2) is
initialised from the context row (1) (knowledge is text that plays the context's role)
and the feature rows (3, 4) start at zero, so that turning ``feature_type_embeddings`` on
starts exactly where Maria (no type embedding on visual rows) starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiktalk.errors import UsageError
from tiktalk.models.config import ModelConfig
from tiktalk.models.modalities import modality_string
from tiktalk.models.tokenization import TOKENIZATIONS

RESPONSE, CONTEXT, KNOWLEDGE, VISION, AUDIO = 0, 1, 2, 3, 4
PAD_SEGMENT = -1
SEGMENT_IDS: dict[str, int] = {
    "response": RESPONSE,
    "context": CONTEXT,
    "knowledge": KNOWLEDGE,
    "vision": VISION,
    "audio": AUDIO,
}
TYPE_VOCAB_SIZE = 5
OUTPUT_LAYERS = ("maria", "tied")

# A tiny random BERT for tests / smoke runs (vocab size filled in from the char tokenizer).
TINY_BACKBONE: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 256,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}


@dataclass
class MariaConfig(ModelConfig):
    """Every option of the Maria model and its collator (saved in the platform's format,
    :mod:`tiktalk.models.saving`)."""

    backbone: dict[str, Any] | str = field(default_factory=lambda: dict(TINY_BACKBONE))
    """BertConfig keyword arguments, or a local directory holding a BERT ``config.json``
    (e.g. bert-base-chinese). A path is resolved to its dict by :meth:`bert_config` and
    stored as a dict when saved, so a run directory is self-contained."""
    modalities: tuple[str, ...] = ("text", "vision", "audio", "knowledge")
    """Which source segments exist: any non-empty subset of text (context), vision
    (frames), audio, knowledge, as the canonical tuple of
    :func:`~tiktalk.models.modalities.parse_modalities` (which reads ``"T+I+K"``). The
    response segment always exists."""
    text_budget: int = 180
    """All text tokens: response segment + context + knowledge (Maria: 180)."""
    response_budget: int = 40
    """Slots of the response segment, [CLS] and [SEP] included; always this wide, so the
    source's positions never depend on the response length."""
    knowledge_share: float = 0.5
    """Share of the source text budget (text_budget - response_budget) that is the knowledge
    segment's budget, its [SEP] included (:attr:`knowledge_tokens`), when there is a context
    segment; without one knowledge may use the whole source budget. A fixed number, so the
    knowledge is cut once, by ``kg.linearize`` at piece boundaries; the context gets whatever
    the knowledge leaves. TikTalk does not state it: 0.5 is our choice."""
    max_frames: int = 50
    """Frames kept per example (uniformly subsampled if more are given)."""
    max_audio_frames: int = 50
    """VGGish patches kept per example (uniformly subsampled if more are given)."""
    frame_dim: int = 2048
    """ResNet-101 pooled feature size."""
    audio_dim: int = 128
    """VGGish embedding size."""
    feature_dropout: float = 0.1
    """Dropout after the frame / audio projections (Maria: 0.1; no LayerNorm)."""
    frame_position_embeddings: bool = False
    """Add a learned frame-index embedding to frame and audio rows (Maria: off)."""
    feature_type_embeddings: bool = False
    """Add token-type rows 3 (vision) / 4 (audio) to feature rows (Maria: no type
    embedding on visual rows)."""
    mrp_prob: float = 0.7
    """Masked response prediction: share of response tokens masked (>= 1; [SEP] may be, [CLS] never)."""
    mcp_prob: float = 0.15
    """Masked context prediction: share of context tokens masked."""
    mkp_prob: float = 0.15
    """Masked knowledge prediction: share of knowledge tokens masked."""
    mask_token_prob: float = 0.8
    """Of the chosen positions: share replaced by [MASK]."""
    random_token_prob: float = 0.1
    """Of the chosen positions: share replaced by a random vocabulary character
    (the rest, 1 - mask - random, stays unchanged)."""
    output_layer: str = "maria"
    """The layer from hidden states to vocabulary logits. ``"maria"`` (Maria's own,
    ``modeling_bert.py`` L491-496, re-created after loading in ``run_dialog_generate.py``
    L1000-1001): a fresh transform (dense, GELU, LayerNorm) and a fresh decoder without bias,
    untied from the word embeddings, both at PyTorch's default init even when BERT weights are
    loaded (BERT's MLM head is ignored). ``"tied"``: BERT's pretrained MLM head
    (``cls.predictions``), decoder tied to the word embeddings, with its bias. Saved models
    from before this option had the tied head and load as ``"tied"``."""
    tokenization: str = "wordpiece"
    """How text becomes ids over the tokenizer's vocabulary (``tiktalk.models.tokenization``).
    ``"wordpiece"``: the BERT tokenizer's own tokenisation, as Maria's ``BertTokenizer`` over
    bert-base-chinese (one token per Chinese character, WordPiece for runs of Latin letters and
    digits: "666", "hhh"). ``"char"``: one id per character, Latin letters and digits too (the
    ``tiny`` preset's, over the generated vocabulary). The knowledge budget counts with the
    same one. Saved models from before this option used ``"char"`` and load so."""
    attn_implementation: str = "sdpa"
    """Attention kernel of the BERT layers: "sdpa" or "eager"."""
    tokenizer_vocab_size: int | None = None
    """Size of the tokenizer saved beside the weights (checked on load); None: unchecked."""

    def validate(self) -> None:
        self._modalities()
        if isinstance(self.backbone, os.PathLike):
            self.backbone = str(self.backbone)
        if not isinstance(self.backbone, (dict, str)):
            raise UsageError(f"backbone must be a BertConfig dict or a directory, got {type(self.backbone).__name__}")
        for name in ("text_budget", "response_budget", "max_frames", "max_audio_frames", "frame_dim", "audio_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if self.response_budget < 3:
            raise UsageError(f"response_budget ({self.response_budget}) must hold [CLS], one token and [SEP] (>= 3)")
        if self.response_budget >= self.text_budget:
            raise UsageError(
                f"response_budget ({self.response_budget}) must be smaller than text_budget ({self.text_budget})"
            )
        for name in ("knowledge_share", "feature_dropout", "mrp_prob", "mcp_prob", "mkp_prob",
                     "mask_token_prob", "random_token_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise UsageError(f"{name} must be in [0, 1], got {value!r}")
        if self.has("knowledge") and self.knowledge_tokens < 1:
            raise UsageError(
                f"knowledge_share ({self.knowledge_share}) of the source text budget ({self.source_text_budget}) "
                "leaves no knowledge token besides [SEP]"
            )
        if self.mask_token_prob + self.random_token_prob > 1.0 + 1e-9:
            raise UsageError(
                f"mask_token_prob ({self.mask_token_prob}) + random_token_prob ({self.random_token_prob}) exceeds 1"
            )
        if self.output_layer not in OUTPUT_LAYERS:
            raise UsageError(f"output_layer must be one of {list(OUTPUT_LAYERS)}, got {self.output_layer!r}")
        if self.tokenization not in TOKENIZATIONS:
            raise UsageError(f"tokenization must be one of {list(TOKENIZATIONS)}, got {self.tokenization!r}")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise UsageError(f"attn_implementation must be 'sdpa' or 'eager', got {self.attn_implementation!r}")
        if isinstance(self.backbone, dict):
            self._check_backbone(self.backbone)

    def _check_backbone(self, backbone: dict[str, Any]) -> None:
        hidden, heads = backbone.get("hidden_size", 768), backbone.get("num_attention_heads", 12)
        for name, value in (("hidden_size", hidden), ("num_attention_heads", heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"backbone {name} must be a positive integer, got {value!r}")
        if hidden % heads:
            raise UsageError(f"backbone hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads})")
        max_pos = backbone.get("max_position_embeddings", 512)
        if isinstance(max_pos, bool) or not isinstance(max_pos, int):
            raise UsageError(f"backbone max_position_embeddings must be an integer, got {max_pos!r}")
        if self.text_budget > max_pos:
            raise UsageError(
                f"text_budget ({self.text_budget}) exceeds the backbone's max_position_embeddings ({max_pos})"
            )

    # -- derived values ------------------------------------------------------------------
    @property
    def source_text_budget(self) -> int:
        """Text tokens shared by context and knowledge."""
        return self.text_budget - self.response_budget

    @property
    def knowledge_tokens(self) -> int:
        """The knowledge segment's text tokens, [SEP] not counted (see ``knowledge_share``)."""
        share = self.knowledge_share if self.has("text") else 1.0
        return int(share * self.source_text_budget) - 1

    @property
    def modality_string(self) -> str:
        return modality_string(self.modalities)

    def has(self, modality: str) -> bool:
        return modality in self.modalities

    def backbone_dict(self) -> dict[str, Any]:
        """The backbone as BertConfig kwargs (reads ``config.json`` when it is a directory)."""
        if isinstance(self.backbone, dict):
            return dict(self.backbone)
        path = Path(self.backbone)
        config_file = path / "config.json" if path.is_dir() else path
        if not config_file.exists():
            raise UsageError(f"backbone {self.backbone!r}: no BERT config.json there")
        data = json.loads(config_file.read_text(encoding="utf-8"))
        self._check_backbone(data)
        return data

    def bert_config(self):
        """A transformers BertConfig with Maria's type vocabulary (5 rows)."""
        from transformers import BertConfig

        data = self.backbone_dict()
        for key in ("architectures", "transformers_version", "model_type", "_name_or_path"):
            data.pop(key, None)
        data["type_vocab_size"] = TYPE_VOCAB_SIZE
        data["is_decoder"] = False
        data["add_cross_attention"] = False
        config = BertConfig(**data)
        config._attn_implementation = self.attn_implementation
        return config
