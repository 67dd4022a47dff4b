"""BLIP-2 (Li et al., 2023) over TikTalk video frames: ``blip2-img`` and ``blip2-video``.

Frozen vision encoder -> Q-Former (transformers' ``Blip2QFormerModel``) with
``num_query_tokens`` (32) learned queries cross-attending to the vision tokens -> linear
projection into the frozen causal LM's embedding space, prepended to the chat prompt
(:mod:`baselines.prompt_lm`, the same prompt as the causal-lm baseline, knowledge
included when ``use_knowledge``). Labels cover only the response, as in the causal-lm row.

Where the weights come from (``from_pretrained`` / ``tiktalk train --init PATH [--lm LM]``):

* a ``Blip2ForConditionalGeneration`` directory (Hugging Face, safetensors): the Q-Former,
  its query tokens and the language projection are read from it (:meth:`from_blip2`, which
  reads only those tensors), and so are the language model and tokenizer unless ``lm_path``
  (``--lm``) names another one; a projection of another width than that LM starts random;
* a causal LM (a plain Hugging Face directory or a ``causal-lm`` run, e.g. the fine-tuned
  ChatGLM-6B the paper used): BLIP-2 over it with a new Q-Former;
* a saved blip2 model (or its run): everything.

Vision tokens. The vision encoder is frozen, so its outputs are precomputed: the dataset's
ResNet-101 frame features, each frame either one pooled 2048-d vector or a token grid
``(tokens, 2048)`` (``tiktalk features extract --grid``: the 7x7 map of the last stage, 49
tokens per frame). They are mapped to the Q-Former's ``encoder_hidden_size`` (1408, EVA
ViT-g's width) by a trainable ``frame_proj``. What still differs from BLIP-2: its Q-Former
was pretrained on EVA ViT-g/14 tokens (257 per 224x224 image, 1408-d, the penultimate
layer), not on ResNet-101 grids, so ``frame_proj`` has to learn to stand in for that
encoder; see docs/deviations.md. With ``vision_model_path`` a local transformers vision
model (frozen) is loaded and ``forward(pixel_values=...)`` (B, 3, H, W) uses its
``last_hidden_state`` tokens instead (a 4-D conv map is flattened to H*W tokens).

Frames, exactly:

* ``blip2-img`` (BLIP-2_Img, "one randomly sampled frame"): one frame per example, drawn
  with a generator seeded by ``(frame_seed, dialogue_id)``, so an example always sees the
  same frame (reproducible runs and equal logits after save/load).
* ``blip2-video`` (BLIP-2_Video, "extracts multiple frame features and averages them"):
  ``video_pooling="features"`` (default, the paper's words) averages the frames' tokens
  position by position before one Q-Former pass; ``"query_outputs"`` runs each frame's
  tokens through the Q-Former alone and averages the 32 query outputs over the frames;
  ``"concat"`` keeps every frame's 32 outputs (F x 32 prefix tokens).

Before the Q-Former, the vision tokens pass ``ln_vision``, a LayerNorm, as in LAVIS
(``blip2_opt.py`` L110: ``self.ln_vision(self.visual_encoder(image))``); it loads from a
``Blip2ForConditionalGeneration`` checkpoint's ``vision_model.post_layernorm``, which is
that LayerNorm under Hugging Face's names.

Trainable: ``frame_proj``, ``ln_vision``, ``query_tokens``, ``qformer``, ``language_projection``. The
LM (and a vision model, if any) is frozen and kept in eval mode.

Saving writes the whole state dict (frozen LM and vision model included) so a directory is
self-contained; loading rebuilds the LM from the stored ``lm_config`` (no ``lm_path``
needed) but a vision model's architecture is rebuilt from ``vision_model_path``, which must
still exist.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import (
    decode,
    frame_array,
    has_responses,
    load_tokenizer,
    read_checkpoint_tensors,
    stable_seed,
    subsample_frames,
)
from baselines.prompt_lm import (
    TINY_LLAMA,
    TINY_PROMPT,
    PromptEncoder,
    PromptLMChat,
    PromptLMConfig,
    build_lm,
    lm_config_dict,
)
from tiktalk.errors import MissingInputError, UsageError
from tiktalk.io import read_json
from tiktalk.models.saving import SavedModel
from tiktalk.models.scoring import IGNORE_INDEX, labelled_nll
from tiktalk.types import DialogueExample

VIDEO_POOLING = ("query_outputs", "concat", "features")
# Q-Former settings our config does not carry: a checkpoint must use these values.
QFORMER_FIXED = {"hidden_act": "gelu", "layer_norm_eps": 1e-12}


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
    frame_dim: int = 2048  # precomputed ResNet-101 features (pooled vectors or token grids)
    max_frames: int = 50
    frame_seed: int = 0  # blip2-img: seeds the per-example frame choice
    video_pooling: str = "features"  # blip2-video: "features" (the paper's "averages them") | "query_outputs" | "concat"
    ln_vision: bool = True  # LAVIS's LayerNorm over the vision tokens (saves from before it load without one)
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
        self._choice("video_pooling", VIDEO_POOLING)


@dataclass
class Blip2ChatOutput:
    loss: torch.Tensor | None  # () mean cross-entropy over response tokens
    logits: torch.Tensor  # (B, P + T, vocab): P query-output positions first, then text
    loss_lm: torch.Tensor | None  # same value as ``loss``


TINY_QFORMER: dict[str, Any] = {
    "num_query_tokens": 32, "qformer_hidden_size": 32, "qformer_layers": 2, "qformer_heads": 4,
    "qformer_intermediate_size": 64, "encoder_hidden_size": 48, "qformer_dropout": 0.0,
    **TINY_PROMPT,
}


def frozen(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def stack_frame_tokens(
    examples: Sequence[DialogueExample], max_frames: int, frame_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames of a batch as token grids -> tokens (B, F, T, frame_dim) float32, token_mask
    (B, F, T) bool, frame_mask (B, F) bool.

    A pooled frame (n, frame_dim) is one token. More than ``max_frames`` frames are
    subsampled evenly. An example without frames gets one all-zero token marked valid, so
    cross-attention never sees an all-masked row.
    """
    rows = []
    for ex in examples:
        frames = frame_array(ex, frame_dim)
        if frames is None:
            frames = np.zeros((1, 1, frame_dim), dtype=np.float32)
        elif frames.ndim == 2:
            frames = frames[:, None]
        rows.append(subsample_frames(frames, max_frames))
    n_frames, n_tokens = max(len(r) for r in rows), max(r.shape[1] for r in rows)
    tokens = torch.zeros(len(rows), n_frames, n_tokens, frame_dim)
    token_mask = torch.zeros(len(rows), n_frames, n_tokens, dtype=torch.bool)
    for b, r in enumerate(rows):
        tokens[b, : len(r), : r.shape[1]] = torch.from_numpy(r)
        token_mask[b, : len(r), : r.shape[1]] = True
    return tokens, token_mask, token_mask.any(-1)


class _Blip2Chat(PromptLMChat):
    """Shared body of blip2-img and blip2-video; subclasses set ``frame_mode``."""

    config_class = Blip2ChatConfig
    required_modalities: ClassVar[tuple[str, ...]] = ("text", "vision")  # always reads frame features
    # ``tiny``: a tiny random Q-Former, over a tiny random Llama unless ``lm_path`` is given.
    presets: ClassVar[dict[str, dict[str, Any]]] = {"tiny": TINY_QFORMER}
    # BLIP-2 fine-tuning for captioning (its generation task), salesforce/LAVIS@506965b
    # lavis/projects/blip2/train/caption_coco_ft.yaml: init_lr 1e-5 (L36), warmup_steps 1000
    # (L39), weight_decay 0.05 (L40), max_epoch 5 (L41), batch_size_train 16 (L42) on 16 GPUs
    # (run_scripts/blip2/train/train_caption_coco.sh: --nproc_per_node=16), linear warmup then
    # cosine decay (lr_sched: linear_warmup_cosine_lr, L35); AdamW, no gradient clipping
    # (lavis/runners/runner_base.py L113-119).
    frozen_lm: ClassVar[bool] = True  # only the Q-Former and projection train (`tiktalk train` warns over a random LM)
    default_recipe: ClassVar[dict[str, Any]] = {
        "lr": 1e-5,
        "warmup_steps": 1000,
        "weight_decay": 0.05,
        "max_grad_norm": 0.0,
        "lr_schedule": "cosine",
        "batch_size": 16,
        "global_batch_size": 256,
        "epochs": 5,
    }
    frame_mode: ClassVar[str] = ""  # "one_random" | "all"

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
        # LAVIS: nn.LayerNorm(visual_encoder.num_features), eps 1e-5 (blip2.py init_vision_encoder)
        self.ln_vision = nn.LayerNorm(encoder_width) if c.ln_vision else nn.Identity()
        self.query_tokens = nn.Parameter(torch.randn(1, c.num_query_tokens,
                                                     c.qformer_hidden_size) * 0.02)
        self.qformer = Blip2QFormerModel(Blip2QFormerConfig(
            hidden_size=c.qformer_hidden_size, num_hidden_layers=c.qformer_layers,
            num_attention_heads=c.qformer_heads, intermediate_size=c.qformer_intermediate_size,
            hidden_dropout_prob=c.qformer_dropout, attention_probs_dropout_prob=c.qformer_dropout,
            cross_attention_frequency=c.cross_attention_frequency,
            encoder_hidden_size=encoder_width, **QFORMER_FIXED))
        self.language_projection = nn.Linear(c.qformer_hidden_size,
                                             lm.get_input_embeddings().embedding_dim)
        self.lm = frozen(lm)

    def train(self, mode: bool = True):
        super().train(mode)
        self.lm.eval()  # frozen parts never run dropout
        if self.vision_model is not None:
            self.vision_model.eval()
        return self

    # ------------------------------------------------------------------ building

    @classmethod
    def preset_config(cls, fields: dict[str, Any], overrides: dict[str, Any]) -> Blip2ChatConfig:
        """Over ``lm_path``'s LM when given, else a tiny random Llama."""
        lm = {} if overrides.get("lm_path") else {"lm_config": dict(TINY_LLAMA)}
        return Blip2ChatConfig.from_dict({**lm, **fields, **overrides})

    @classmethod
    def from_saved(cls, saved: SavedModel, **overrides: Any):
        """(A save from before ``ln_vision`` existed has none, and before ``"features"`` became
        the default pooled per-frame query outputs: both kept.)"""
        if overrides.get("lm_path"):
            raise UsageError(f"{saved.path} is a saved {cls.name} model with its own LM; lm_path "
                             "(--lm) applies to a BLIP-2 checkpoint")
        if "ln_vision" not in saved.config:
            import dataclasses

            saved = dataclasses.replace(saved, config={"video_pooling": "query_outputs", **saved.config,
                                                       "ln_vision": False})
        return super().from_saved(saved, **overrides)

    @classmethod
    def from_external(cls, path, saved: SavedModel | None, **overrides: Any):
        """A ``Blip2ForConditionalGeneration`` directory, or a causal LM (a Hugging Face
        directory or a saved causal-lm: see the module docstring); ``overrides`` are config
        fields (``lm_path`` picks the LM of a BLIP-2 checkpoint)."""
        if saved is not None and saved.model_type != "causal-lm":
            raise UsageError(f"{path} holds a saved {saved.model_type} model: {cls.name} starts from a saved "
                             f"{cls.name}, a BLIP-2 checkpoint or a causal LM")
        if not (path / "config.json").exists():
            raise MissingInputError(f"{path}: not a saved {cls.name} model, a Hugging Face "
                                    "directory (config.json) or a run")
        overrides = cls._config_overrides(overrides)
        if read_json(path / "config.json").get("model_type") == "blip-2":
            return cls.from_blip2(path, **overrides)
        if overrides.get("lm_path"):
            raise UsageError(f"{path} is a language model already; lm_path (--lm) goes with a "
                             "BLIP-2 checkpoint")
        return cls(Blip2ChatConfig.from_dict({"lm_path": str(path), **overrides}))

    @classmethod
    def from_blip2(cls, path, **overrides: Any):
        """Q-Former, query tokens and language projection from a local
        ``Blip2ForConditionalGeneration`` directory; the LM from ``lm_path`` if given, else the
        checkpoint's own (decoder-only) LM and tokenizer; ``ln_vision`` from the vision model's
        ``post_layernorm`` (LAVIS's ln_vision). The rest of the vision model is not read."""
        from transformers import AutoModelForCausalLM, Blip2Config
        from transformers.utils import logging as hf_logging

        path = Path(path)
        hf = Blip2Config.from_pretrained(str(path))
        q = hf.qformer_config
        for field, value in QFORMER_FIXED.items():
            if getattr(q, field) != value:
                raise UsageError(f"{path}: qformer_config.{field} is {getattr(q, field)!r}; "
                                 f"{cls.name} builds its Q-Former with {value!r}")
        if q.attention_probs_dropout_prob != q.hidden_dropout_prob:
            raise UsageError(f"{path}: the Q-Former's attention and hidden dropout differ "
                             f"({q.attention_probs_dropout_prob} vs {q.hidden_dropout_prob}); "
                             f"{cls.name} has one qformer_dropout")
        fields = {"num_query_tokens": hf.num_query_tokens, "qformer_hidden_size": q.hidden_size,
                  "qformer_layers": q.num_hidden_layers, "qformer_heads": q.num_attention_heads,
                  "qformer_intermediate_size": q.intermediate_size,
                  "qformer_dropout": q.hidden_dropout_prob,
                  "cross_attention_frequency": q.cross_attention_frequency,
                  "encoder_hidden_size": q.encoder_hidden_size}
        clash = sorted(set(fields) & set(overrides))
        if clash:
            raise UsageError(f"{path}: {clash} come from the checkpoint and cannot be overridden")
        lm = tokenizer = None
        if not overrides.get("lm_path"):
            if not hf.use_decoder_only_language_model:
                raise UsageError(f"{path}: its language model ({hf.text_config.model_type}) is an "
                                 f"encoder-decoder; {cls.name} needs a causal LM: give one as lm_path (--lm)")
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # the rest of the checkpoint is "unexpected" here
            try:
                lm, info = AutoModelForCausalLM.from_pretrained(
                    str(path), config=hf.text_config, key_mapping={r"^language_model\.": ""},
                    output_loading_info=True)
            finally:
                hf_logging.set_verbosity(verbosity)
            if info["missing_keys"]:
                raise UsageError(f"{path}: the checkpoint lacks language_model weights "
                                 f"{sorted(info['missing_keys'])[:3]}")
            tokenizer = load_tokenizer(path)
            fields["lm_config"] = lm_config_dict(lm)
        model = cls(Blip2ChatConfig.from_dict({**fields, **overrides}), tokenizer=tokenizer, lm=lm)
        tensors = read_checkpoint_tensors(path, ("qformer.", "query_tokens", "language_projection.",
                                                 "vision_model.post_layernorm."))
        with torch.no_grad():
            model.query_tokens.copy_(tensors["query_tokens"])
            if isinstance(model.ln_vision, nn.LayerNorm):
                model.ln_vision.weight.copy_(tensors["vision_model.post_layernorm.weight"])
                model.ln_vision.bias.copy_(tensors["vision_model.post_layernorm.bias"])
            model.qformer.load_state_dict(
                {k.removeprefix("qformer."): v for k, v in tensors.items() if k.startswith("qformer.")},
                strict=True)
            weight, bias = tensors["language_projection.weight"], tensors["language_projection.bias"]
            if weight.shape == model.language_projection.weight.shape:
                model.language_projection.weight.copy_(weight)
                model.language_projection.bias.copy_(bias)
            else:
                warnings.warn(f"{path}: its language projection maps to width {weight.shape[0]}, "
                              f"the LM is {model.language_projection.out_features} wide: the "
                              "projection starts random", stacklevel=2)
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

    def collate(self, examples: Sequence[DialogueExample], train: bool = True,
                generator: torch.Generator | None = None) -> dict[str, Any]:
        """frames (B, F, T, 2048) + token_mask (B, F, T) + frame_mask (B, F) (F = 1 for
        blip2-img; T = 1 for pooled features) and the text: prompt+response with labels (B, L)
        when responses exist (required for train=True), else left-padded prompts. Deterministic
        (blip2-img's frame is fixed per example): ``generator`` is not drawn from."""
        frames, token_mask, frame_mask = stack_frame_tokens(
            self.select_frames(examples), self.config.max_frames, self.config.frame_dim)
        text = (self.prompts.training_batch(examples) if train or has_responses(examples)
                else self.prompts.prompt_batch(examples))
        return {"frames": frames, "token_mask": token_mask, "frame_mask": frame_mask, **text}

    # ------------------------------------------------------------------ model

    def _qformer(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # tokens: (N, S, enc) vision tokens, mask: (N, S) 1 = valid -> (N, Q, dq)
        queries = self.query_tokens.expand(tokens.size(0), -1, -1)
        return self.qformer(query_embeds=queries, encoder_hidden_states=self.ln_vision(tokens),
                            encoder_attention_mask=mask.long()).last_hidden_state

    def query_outputs(self, frames: torch.Tensor | None = None,
                      token_mask: torch.Tensor | None = None,
                      frame_mask: torch.Tensor | None = None,
                      pixel_values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Vision input -> (Q-Former outputs (B, P, dq), their mask (B, P) bool): P = Q, or
        F x Q with ``video_pooling="concat"``.

        frames: (B, F, T, frame_dim) + token_mask (B, F, T) + frame_mask (B, F) bool; or
        pixel_values (B, 3, H, W) for a local vision model.
        """
        if pixel_values is not None:
            if self.vision_model is None:
                raise UsageError("pixel_values given but the config has no vision_model_path")
            with torch.no_grad():
                hidden = self.vision_model(pixel_values=pixel_values).last_hidden_state
            if hidden.dim() == 4:  # conv map (B, C, H, W) -> (B, H*W, C)
                hidden = hidden.flatten(2).transpose(1, 2)
            out = self._qformer(hidden, torch.ones(hidden.shape[:2], device=hidden.device))
            return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)
        tokens = self.frame_proj(frames)  # (B, F, T, enc)
        b, f, t, _ = tokens.shape
        weights = frame_mask.to(tokens.dtype)  # (B, F)
        if self.config.video_pooling == "features":  # frames averaged token by token: (B, T, enc)
            pooled = (tokens * weights[:, :, None, None]).sum(1) / weights.sum(1)[:, None, None]
            out = self._qformer(pooled, token_mask.any(1))
            return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)
        # Each frame alone through the Q-Former; padding frames get a valid (zero) mask, then no weight.
        per_frame = self._qformer(tokens.reshape(b * f, t, -1),
                                  (token_mask | ~frame_mask[..., None]).reshape(b * f, t))
        per_frame = per_frame.reshape(b, f, *per_frame.shape[1:])  # (B, F, Q, dq)
        if self.config.video_pooling == "concat":
            n_query = per_frame.shape[2]
            return per_frame.reshape(b, f * n_query, -1), frame_mask.repeat_interleave(n_query, dim=1)
        out = (per_frame * weights[:, :, None, None]).sum(1) / weights.sum(1)[:, None, None]
        return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)

    def _inputs(self, input_ids, attention_mask, frames, token_mask, frame_mask, pixel_values):
        queries, query_mask = self.query_outputs(frames, token_mask, frame_mask, pixel_values)
        prefix = self.language_projection(queries)
        embeds = torch.cat([prefix, self.lm.get_input_embeddings()(input_ids)], dim=1)
        mask = torch.cat([query_mask.to(attention_mask.dtype), attention_mask], dim=1)
        return embeds, mask  # (B, P + L, d_lm), (B, P + L)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                frames: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
                frame_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None) -> Blip2ChatOutput:
        # input_ids, attention_mask, labels: (B, L); frames (B, F, T, frame_dim), masks as collate
        embeds, mask = self._inputs(input_ids, attention_mask, frames, token_mask, frame_mask,
                                    pixel_values)
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
            embeds, mask = self._inputs(batch["input_ids"], batch["attention_mask"], batch["frames"],
                                        batch["token_mask"], batch["frame_mask"], None)
            out = self.lm.generate(inputs_embeds=embeds, attention_mask=mask,
                                   **self.prompts.generation_kwargs(kwargs))
        finally:
            self.train(was_training)
        # With only inputs_embeds, decoder-only generate returns just the new tokens.
        return [decode(self.tokenizer, row.tolist()) for row in out]

    def score_batch(self, examples: Sequence[DialogueExample]) -> list[tuple[float, int]]:
        """Per example: summed NLL (nats) of its response tokens and closing EOS, the labels of
        training (masked over the prompt and the query outputs), and their count."""
        device = self.language_projection.weight.device
        batch = {k: v.to(device) for k, v in self.collate(examples).items()}
        embeds, mask = self._inputs(batch["input_ids"], batch["attention_mask"], batch["frames"],
                                    batch["token_mask"], batch["frame_mask"], None)
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask).logits
        n_query = embeds.size(1) - batch["input_ids"].size(1)
        return labelled_nll(logits, F.pad(batch["labels"], (n_query, 0), value=IGNORE_INDEX))


class Blip2ImgChat(_Blip2Chat):
    name = "blip2-img"
    frame_mode = "one_random"


class Blip2VideoChat(_Blip2Chat):
    name = "blip2-video"
    frame_mode = "all"
