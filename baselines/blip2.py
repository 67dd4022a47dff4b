"""BLIP-2 (Li et al., 2023) over TikTalk video frames: ``blip2-img`` and ``blip2-video``.

Frozen vision encoder -> Q-Former (transformers' ``Blip2QFormerModel``) with
``num_query_tokens`` (32) learned queries cross-attending to the vision tokens -> linear
projection into the frozen causal LM's embedding space, prepended to the chat prompt
(:mod:`baselines.prompt_lm`, the same prompt as the causal-lm baseline, knowledge
included when ``use_knowledge``). Labels cover only the response, as in the causal-lm row.

Vision tokens. The vision encoder is frozen, so its outputs are precomputed: by default
the dataset's ResNet-101 frame features (2048-d, one pooled vector per frame), each frame
one vision token, mapped to the Q-Former's ``encoder_hidden_size`` by a trainable
``frame_proj`` (2048 -> encoder_hidden_size; it stands in for the width of the vision
encoder the Q-Former expects). With ``vision_model_path`` a local transformers vision
model (frozen) is loaded and ``forward(pixel_values=...)`` (B, 3, H, W) uses its
``last_hidden_state`` tokens instead (a 4-D conv map is flattened to H*W tokens).

Frames, exactly:

* ``blip2-img`` (BLIP-2_Img, "one randomly sampled frame"): one frame per example, drawn
  with a generator seeded by ``(frame_seed, dialogue_id)``, so an example always sees the
  same frame (reproducible runs and equal logits after save/load).
* ``blip2-video`` (BLIP-2_Video, "extracts multiple frame features and averages them"):
  with ``video_pooling="features"`` (default, the paper's wording) the per-frame features
  are averaged *before* the Q-Former (one averaged vision token); with
  ``"query_outputs"`` each frame goes through the Q-Former alone and the 32 query outputs
  are averaged over frames.

Trainable: ``frame_proj``, ``query_tokens``, ``qformer``, ``language_projection``. The
LM (and a vision model, if any) is frozen and kept in eval mode.

Saving writes the whole state dict (frozen LM and vision model included) so a directory is
self-contained; loading rebuilds the LM from the stored ``lm_config`` (no ``lm_path``
needed) but a vision model's architecture is rebuilt from ``vision_model_path``, which must
still exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import (
    IGNORE_INDEX,
    decode,
    has_responses,
    load_tokenizer,
    load_weights,
    read_model_config,
    save_model_dir,
    stable_seed,
    stack_frames,
)
from baselines.prompt_lm import (
    TINY_LLAMA,
    PromptEncoder,
    PromptLMConfig,
    apply_modalities,
    build_lm,
    lm_config_dict,
    response_nll,
)
from tiktalk.errors import UsageError
from tiktalk.models.base import ChatModel
from tiktalk.types import DialogueExample, KnowledgeBudget


@dataclass
class Blip2ChatConfig(PromptLMConfig):
    """Q-Former defaults are BLIP-2's (BERT-base sized, cross-attention every 2nd layer;
    encoder_hidden_size 1408 = EVA ViT-g)."""

    num_query_tokens: int = 32
    qformer_hidden_size: int = 768
    qformer_layers: int = 12
    qformer_heads: int = 12
    qformer_intermediate_size: int = 3072
    qformer_dropout: float = 0.1
    cross_attention_frequency: int = 2
    encoder_hidden_size: int = 1408  # width of the vision tokens the Q-Former reads
    frame_dim: int = 2048  # precomputed ResNet-101 features
    max_frames: int = 50
    frame_seed: int = 0  # blip2-img: seeds the per-example frame choice
    video_pooling: str = "features"  # blip2-video: "features" | "query_outputs"
    vision_model_path: str | None = None  # a local frozen vision model (pixel_values input)

    def validate(self) -> None:
        super().validate()
        self._positive("num_query_tokens", "qformer_hidden_size", "qformer_layers",
                       "qformer_heads", "qformer_intermediate_size",
                       "cross_attention_frequency", "encoder_hidden_size", "frame_dim",
                       "max_frames")
        if self.qformer_hidden_size % self.qformer_heads:
            self._fail("qformer_hidden_size", self.qformer_hidden_size,
                       f"is not a multiple of qformer_heads ({self.qformer_heads})")
        self._probability("qformer_dropout")
        self._choice("video_pooling", ("features", "query_outputs"))


@dataclass
class Blip2ChatOutput:
    loss: torch.Tensor | None  # () mean cross-entropy over response tokens
    logits: torch.Tensor  # (B, Q + T, vocab): query positions first, then text
    loss_lm: torch.Tensor | None  # same value as ``loss``


TINY_QFORMER: dict[str, Any] = {
    "num_query_tokens": 32, "qformer_hidden_size": 32, "qformer_layers": 2, "qformer_heads": 4,
    "qformer_intermediate_size": 64, "encoder_hidden_size": 48, "qformer_dropout": 0.0,
    "max_prompt_tokens": 96,
}


def frozen(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class _Blip2Chat(ChatModel):
    """Shared body of blip2-img and blip2-video; subclasses set ``frame_mode``."""

    config_class = Blip2ChatConfig
    frame_mode: ClassVar[str] = ""  # "one_random" | "average"

    def __init__(self, config: Blip2ChatConfig, tokenizer=None, lm=None):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        if lm is None:
            lm, tokenizer = build_lm(config, tokenizer)
        self.config = config.replace(lm_config=lm_config_dict(lm))
        self.tokenizer = tokenizer
        self.prompts = PromptEncoder(tokenizer, self.config)
        c = self.config
        self.vision_model = None
        encoder_width = c.encoder_hidden_size
        if c.vision_model_path:
            from transformers import AutoModel

            self.vision_model = frozen(AutoModel.from_pretrained(c.vision_model_path))
            vcfg = self.vision_model.config
            encoder_width = getattr(vcfg, "hidden_size", None) or vcfg.hidden_sizes[-1]
        self.frame_proj = nn.Linear(c.frame_dim, encoder_width)
        self.query_tokens = nn.Parameter(torch.randn(1, c.num_query_tokens,
                                                     c.qformer_hidden_size) * 0.02)
        self.qformer = Blip2QFormerModel(Blip2QFormerConfig(
            hidden_size=c.qformer_hidden_size, num_hidden_layers=c.qformer_layers,
            num_attention_heads=c.qformer_heads, intermediate_size=c.qformer_intermediate_size,
            hidden_dropout_prob=c.qformer_dropout, attention_probs_dropout_prob=c.qformer_dropout,
            cross_attention_frequency=c.cross_attention_frequency,
            encoder_hidden_size=encoder_width))
        self.language_projection = nn.Linear(c.qformer_hidden_size,
                                             lm.get_input_embeddings().embedding_dim)
        self.lm = frozen(lm)

    def train(self, mode: bool = True):
        super().train(mode)
        self.lm.eval()  # frozen parts never run dropout
        if self.vision_model is not None:
            self.vision_model.eval()
        return self

    def feature_modalities(self) -> tuple[str, ...]:
        return ("vision",)  # always: it reads frame features (a --modalities override must have I)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any):
        if preset != "tiny":
            raise UsageError(f"{cls.name}: unknown preset {preset!r}; known: ['tiny']")
        apply_modalities(cls.name, overrides, required=("text", "vision"))
        return cls(Blip2ChatConfig.from_dict({"lm_config": dict(TINY_LLAMA), **TINY_QFORMER,
                                              **overrides}))

    def save_pretrained(self, path) -> None:
        save_model_dir(self, path, self.name, self.config, self.tokenizer)

    @classmethod
    def from_pretrained(cls, path, **overrides: Any):
        apply_modalities(cls.name, overrides, required=("text", "vision"))
        config = read_model_config(path, cls.name, Blip2ChatConfig).replace(**overrides)
        model = cls(config, tokenizer=load_tokenizer(path, config.trust_remote_code))
        load_weights(model, path)
        return model

    # ------------------------------------------------------------------ frames

    def select_frames(self, examples: Sequence[DialogueExample]) -> list[DialogueExample]:
        """blip2-img: each example keeps one frame, chosen by (frame_seed, dialogue_id)."""
        if self.frame_mode != "one_random":
            return list(examples)
        picked = []
        for ex in examples:
            if ex.frames is not None and len(ex.frames) > 1:
                rng = np.random.default_rng(stable_seed(self.config.frame_seed, ex.dialogue_id))
                index = int(rng.integers(len(ex.frames)))
                ex = DialogueExample(**{**ex.__dict__, "frames": ex.frames[index:index + 1]})
            picked.append(ex)
        return picked

    def knowledge_budget(self) -> KnowledgeBudget | None:
        """``max_knowledge_tokens`` LM tokens (None with ``use_knowledge`` off)."""
        return self.prompts.knowledge_budget() if self.config.use_knowledge else None

    def collate(self, examples: Sequence[DialogueExample], train: bool = True,
                generator: torch.Generator | None = None) -> dict[str, Any]:
        """frames (B, F, 2048) + frame_mask (B, F) (F = 1 for blip2-img) and the text:
        prompt+response with labels (B, T) when responses exist (required for train=True),
        else left-padded prompts. Deterministic (blip2-img's frame is fixed per example):
        ``generator`` is not drawn from."""
        frames, frame_mask = stack_frames(self.select_frames(examples), self.config.max_frames,
                                          self.config.frame_dim)
        text = (self.prompts.training_batch(examples) if train or has_responses(examples)
                else self.prompts.prompt_batch(examples))
        return {"frames": frames, "frame_mask": frame_mask, **text}

    # ------------------------------------------------------------------ model

    def _qformer(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # tokens: (N, S, enc) vision tokens, mask: (N, S) 1 = valid -> (N, Q, dq)
        queries = self.query_tokens.expand(tokens.size(0), -1, -1)
        return self.qformer(query_embeds=queries, encoder_hidden_states=tokens,
                            encoder_attention_mask=mask.long()).last_hidden_state

    def query_outputs(self, frames: torch.Tensor | None = None,
                      frame_mask: torch.Tensor | None = None,
                      pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        """Vision input -> Q-Former query outputs (B, Q, dq).

        frames: (B, F, frame_dim) + frame_mask (B, F) bool; or pixel_values (B, 3, H, W)
        for a local vision model.
        """
        if pixel_values is not None:
            if self.vision_model is None:
                raise UsageError("pixel_values given but the config has no vision_model_path")
            with torch.no_grad():
                hidden = self.vision_model(pixel_values=pixel_values).last_hidden_state
            if hidden.dim() == 4:  # conv map (B, C, H, W) -> (B, H*W, C)
                hidden = hidden.flatten(2).transpose(1, 2)
            return self._qformer(hidden, torch.ones(hidden.shape[:2], device=hidden.device))
        tokens = self.frame_proj(frames)  # (B, F, enc)
        weights = frame_mask.to(tokens.dtype)  # (B, F)
        if self.frame_mode == "average" and self.config.video_pooling == "query_outputs":
            b, f = frame_mask.shape
            per_frame = self._qformer(tokens.reshape(b * f, 1, -1),
                                      torch.ones(b * f, 1, device=tokens.device))
            per_frame = per_frame.reshape(b, f, *per_frame.shape[1:])  # (B, F, Q, dq)
            return (per_frame * weights[:, :, None, None]).sum(1) / weights.sum(1)[:, None, None]
        if self.frame_mode == "average":  # mean of the valid frames' features: one token
            tokens = (tokens * weights[..., None]).sum(1, keepdim=True) / weights.sum(1)[:, None, None]
            frame_mask = frame_mask[:, :1]
        return self._qformer(tokens, frame_mask)

    def _inputs(self, input_ids, attention_mask, frames, frame_mask, pixel_values):
        prefix = self.language_projection(self.query_outputs(frames, frame_mask, pixel_values))
        embeds = torch.cat([prefix, self.lm.get_input_embeddings()(input_ids)], dim=1)
        mask = torch.cat([torch.ones(prefix.shape[:2], dtype=attention_mask.dtype,
                                     device=attention_mask.device), attention_mask], dim=1)
        return embeds, mask  # (B, Q + T, d_lm), (B, Q + T)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                frames: torch.Tensor | None = None, frame_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None) -> Blip2ChatOutput:
        # input_ids, attention_mask, labels: (B, T); frames (B, F, frame_dim), frame_mask (B, F)
        embeds, mask = self._inputs(input_ids, attention_mask, frames, frame_mask, pixel_values)
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask).logits
        loss = None
        if labels is not None:
            n_query = embeds.size(1) - input_ids.size(1)
            full = F.pad(labels, (n_query, 0), value=IGNORE_INDEX)  # no loss on query slots
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(),
                                   full[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
        return Blip2ChatOutput(loss=loss, logits=logits, loss_lm=loss)

    @torch.no_grad()
    def generate(self, examples: Sequence[DialogueExample], **kwargs: Any) -> list[str]:
        """One response per example; kwargs: see :meth:`PromptEncoder.generation_kwargs`
        (seed the global torch RNG for reproducible sampling)."""
        batch = self.collate(examples, train=False)
        if "labels" in batch:  # examples with responses: generate from the prompt alone
            batch = {**batch, **self.prompts.prompt_batch(examples)}
            batch.pop("labels", None)
        device = self.language_projection.weight.device
        batch = {k: v.to(device) for k, v in batch.items()}
        was_training = self.training
        self.eval()
        try:
            embeds, mask = self._inputs(batch["input_ids"], batch["attention_mask"],
                                        batch["frames"], batch["frame_mask"], None)
            out = self.lm.generate(inputs_embeds=embeds, attention_mask=mask,
                                   **self.prompts.generation_kwargs(kwargs))
        finally:
            self.train(was_training)
        # With only inputs_embeds, decoder-only generate returns just the new tokens.
        return [decode(self.tokenizer, row.tolist()) for row in out]

    @torch.no_grad()
    def score(self, examples: Sequence[DialogueExample], batch_size: int = 32) -> list[tuple[float, int]]:
        """Per example: summed NLL (nats) of its response tokens and closing EOS after the query
        prefix and the prompt (the labels of training), and their count."""
        device = self.language_projection.weight.device
        was_training = self.training
        self.eval()
        out: list[tuple[float, int]] = []
        try:
            for start in range(0, len(examples), batch_size):
                batch = {k: v.to(device) for k, v in self.collate(examples[start : start + batch_size]).items()}
                embeds, mask = self._inputs(batch["input_ids"], batch["attention_mask"],
                                            batch["frames"], batch["frame_mask"], None)
                logits = self.lm(inputs_embeds=embeds, attention_mask=mask).logits
                n_query = embeds.size(1) - batch["input_ids"].size(1)
                out += response_nll(logits, F.pad(batch["labels"], (n_query, 0), value=IGNORE_INDEX))
        finally:
            self.train(was_training)
        return out


class Blip2ImgChat(_Blip2Chat):
    name = "blip2-img"
    frame_mode = "one_random"


class Blip2VideoChat(_Blip2Chat):
    name = "blip2-video"
    frame_mode = "average"
