"""Livebot (Ma et al., AAAI 2019; lancopku/livebot) adapted to TikTalk.

Three pre-norm transformer stacks (width 512, FFN 2048, 8 heads, 6 blocks each,
dropout 0.1; SPEC section 4):

* video encoder: frame features (B, F, 2048) -> linear 2048 -> d -> self-attention blocks
  (no position encoding and no dropout on the frames, as Livebot's ``VideoEncoder`` reads
  its ResNet features as they are; the linear map is ours: Livebot's ResNet-18 gave d = 512);
* context encoder: ``[CLS] u1 [SEP] u2 [SEP] ...`` token embeddings (+ positions) ->
  blocks of self-attention then cross-attention to the encoded video;
* response decoder: ``[CLS] r`` -> blocks of masked self-attention, cross-attention to the
  video, cross-attention to the context -> linear to the vocabulary; target ``r [SEP]``.

Token embeddings are shared by the context encoder and the decoder (Livebot shares one
embedding table). Each stack ends with a LayerNorm (pre-norm). Decoding is greedy, at most
``max_new_tokens``, stopping at [SEP]; the encoders run once per batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import (
    decode,
    default_tokenizer,
    generation_options,
    has_responses,
    pad_right,
    stack_frames,
)
from tiktalk.errors import UsageError
from tiktalk.models.base import ChatModel
from tiktalk.models.config import ModelConfig
from tiktalk.models.scoring import IGNORE_INDEX, labelled_nll, require_responses
from tiktalk.types import DialogueExample


@dataclass
class LivebotConfig(ModelConfig):
    d_model: int = 512
    d_ff: int = 2048
    n_heads: int = 8
    n_layers: int = 6  # blocks per stack (video encoder, context encoder, decoder)
    dropout: float = 0.1
    frame_dim: int = 2048  # ResNet-101 pooled features
    max_frames: int = 50
    max_context_tokens: int = 128  # longer contexts keep their end
    max_response_tokens: int = 32  # training target length before [SEP]
    max_new_tokens: int = 25
    tokenizer_path: str | None = None  # None: the generated character vocabulary

    def validate(self) -> None:
        self._positive("d_model", "d_ff", "n_heads", "n_layers", "frame_dim", "max_frames",
                       "max_context_tokens", "max_response_tokens", "max_new_tokens")
        self._divisible("d_model", "n_heads")
        self._probability("dropout")

    @property
    def max_positions(self) -> int:
        return max(self.max_context_tokens, self.max_response_tokens + 1, self.max_new_tokens + 1)


TINY_PRESET: dict[str, Any] = {"d_model": 32, "d_ff": 64, "n_heads": 4, "n_layers": 2,
                               "dropout": 0.0, "max_context_tokens": 64}


@dataclass
class LivebotOutput:
    loss: torch.Tensor | None  # () mean cross-entropy over response tokens + [SEP]
    logits: torch.Tensor  # (B, T_dec, vocab)
    loss_lm: torch.Tensor | None  # same value as ``loss``


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """(n, d) fixed sine/cosine position encodings (Vaswani et al.)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return table


class Block(nn.Module):
    """Pre-norm block: self-attention, then ``n_cross`` cross-attentions, then FFN."""

    def __init__(self, c: LivebotConfig, n_cross: int):
        super().__init__()
        self.self_norm = nn.LayerNorm(c.d_model)
        self.self_attn = nn.MultiheadAttention(c.d_model, c.n_heads, dropout=c.dropout,
                                               batch_first=True)
        self.cross_norms = nn.ModuleList(nn.LayerNorm(c.d_model) for _ in range(n_cross))
        self.cross_attns = nn.ModuleList(
            nn.MultiheadAttention(c.d_model, c.n_heads, dropout=c.dropout, batch_first=True)
            for _ in range(n_cross))
        self.ffn_norm = nn.LayerNorm(c.d_model)
        self.ffn = nn.Sequential(nn.Linear(c.d_model, c.d_ff), nn.ReLU(), nn.Dropout(c.dropout),
                                 nn.Linear(c.d_ff, c.d_model))
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor, causal: torch.Tensor | None = None,
                memories: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        # x: (B, T, d); pad: (B, T) True = padding; causal: (T, T) True = blocked;
        # memories: one (states (B, S, d), padding (B, S)) per cross-attention.
        h = self.self_norm(x)
        x = x + self.dropout(self.self_attn(h, h, h, key_padding_mask=pad, attn_mask=causal,
                                            need_weights=False)[0])
        for norm, attn, (mem, mem_pad) in zip(self.cross_norms, self.cross_attns, memories,
                                              strict=True):
            x = x + self.dropout(attn(norm(x), mem, mem, key_padding_mask=mem_pad,
                                      need_weights=False)[0])
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Stack(nn.Module):
    def __init__(self, c: LivebotConfig, n_cross: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(c, n_cross) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model)

    def forward(self, x, pad, causal=None, memories=()):
        for block in self.blocks:
            x = block(x, pad, causal, memories)
        return self.norm(x)


class LivebotChat(ChatModel):
    name = "livebot"
    config_class = LivebotConfig
    required_modalities: ClassVar[tuple[str, ...]] = ("text", "vision")  # always reads frame features
    presets: ClassVar[dict[str, dict[str, Any]]] = {"tiny": TINY_PRESET}
    # lancopku/livebot@866be2f codes/transformer.py: -batch_size 64 (L33), -epoch 50 (L35),
    # -lr 3e-4 (L37); plain Adam at a constant rate, no weight decay, no clipping (L263); one GPU.
    default_recipe: ClassVar[dict[str, Any]] = {
        "lr": 3e-4,
        "lr_schedule": "constant",
        "weight_decay": 0.0,
        "max_grad_norm": 0.0,
        "batch_size": 64,
        "global_batch_size": 64,
        "epochs": 50,
    }

    def __init__(self, config: LivebotConfig, tokenizer=None):
        super().__init__()
        self.config = config
        if tokenizer is None:
            tokenizer = default_tokenizer(config.tokenizer_path)
        self.tokenizer = tokenizer
        self.bos_id, self.eos_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id = tokenizer.pad_token_id
        if None in (self.bos_id, self.eos_id, self.pad_id):
            raise UsageError("livebot tokenizer needs [CLS], [SEP] and [PAD] tokens")
        c, vocab = config, len(tokenizer)
        self.embedding = nn.Embedding(vocab, c.d_model, padding_idx=self.pad_id)
        self.frame_proj = nn.Linear(c.frame_dim, c.d_model)  # 2048 -> d for ResNet features
        self.register_buffer("positions", sinusoidal_positions(c.max_positions, c.d_model),
                             persistent=False)
        self.embed_dropout = nn.Dropout(c.dropout)
        self.video_encoder = Stack(c, n_cross=0)
        self.context_encoder = Stack(c, n_cross=1)  # cross: video
        self.decoder = Stack(c, n_cross=2)  # cross: video, context
        self.output = nn.Linear(c.d_model, vocab)

    # ------------------------------------------------------------------ data

    def _context_ids(self, ex: DialogueExample) -> list[int]:
        ids = [self.bos_id]
        for turn in ex.context:
            ids += self.tokenizer.encode(turn, add_special_tokens=False) + [self.eos_id]
        limit = self.config.max_context_tokens
        return ids if len(ids) <= limit else [self.bos_id] + ids[len(ids) - limit + 1:]

    def collate(self, examples: Sequence[DialogueExample], train: bool = True,
                generator: torch.Generator | None = None) -> dict[str, Any]:
        """frames (B, F, 2048) + frame_mask (B, F); context_ids (B, Tc); with responses
        (required for train=True) also decoder_ids and labels (B, Td). Deterministic:
        ``generator`` is not drawn from."""
        if train:
            require_responses(examples)
        frames, frame_mask = stack_frames(examples, self.config.max_frames, self.config.frame_dim)
        batch = {"frames": frames, "frame_mask": frame_mask,
                 "context_ids": pad_right([self._context_ids(ex) for ex in examples], self.pad_id)}
        if train or has_responses(examples):
            targets = [self.tokenizer.encode(ex.response, add_special_tokens=False)
                       [: self.config.max_response_tokens] for ex in examples]
            batch["decoder_ids"] = pad_right([[self.bos_id] + t for t in targets], self.pad_id)
            batch["labels"] = pad_right([t + [self.eos_id] for t in targets], IGNORE_INDEX)
        return batch

    # ------------------------------------------------------------------ model

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        # token embeddings x: (B, T, d) -> + positions, dropout (Livebot's PositionalEncoding)
        return self.embed_dropout(x + self.positions[: x.size(1)])

    def encode(self, frames: torch.Tensor, frame_mask: torch.Tensor, context_ids: torch.Tensor):
        """-> ((video (B, F, d), video padding (B, F)), (context (B, Tc, d), padding (B, Tc)))."""
        video_pad = ~frame_mask
        video = self.video_encoder(self.frame_proj(frames), video_pad)
        ctx_pad = context_ids.eq(self.pad_id)
        ctx = self.context_encoder(self._embed(self.embedding(context_ids)), ctx_pad,
                                   memories=[(video, video_pad)])
        return (video, video_pad), (ctx, ctx_pad)

    def decode_logits(self, decoder_ids: torch.Tensor, video, context) -> torch.Tensor:
        # decoder_ids: (B, Td) -> logits (B, Td, vocab); position t sees decoder_ids[:, :t+1].
        n = decoder_ids.size(1)
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool, device=decoder_ids.device), 1)
        h = self.decoder(self._embed(self.embedding(decoder_ids)), decoder_ids.eq(self.pad_id),
                         causal=causal, memories=[video, context])
        return self.output(h)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor, context_ids: torch.Tensor,
                decoder_ids: torch.Tensor, labels: torch.Tensor | None = None) -> LivebotOutput:
        video, context = self.encode(frames, frame_mask, context_ids)
        logits = self.decode_logits(decoder_ids, video, context)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return LivebotOutput(loss=loss, logits=logits, loss_lm=loss)

    def score_batch(self, examples: Sequence[DialogueExample]) -> list[tuple[float, int]]:
        """Per example: summed NLL (nats) of its response tokens and closing EOS, teacher-forced
        as in training (the response cut to ``max_response_tokens``), and their count."""
        device = next(self.parameters()).device
        batch = {k: v.to(device) for k, v in self.collate(examples).items()}
        labels = batch.pop("labels")
        return labelled_nll(self(**batch).logits, labels, shift=False)

    @torch.no_grad()
    def generate(self, examples: Sequence[DialogueExample], max_new_tokens: int | None = None,
                 **kwargs: Any) -> list[str]:
        """Greedy decoding, one response per example; ``max_length`` is an alias of
        ``max_new_tokens``; other kwargs (num_beams, ...) do not apply and are ignored."""
        steps = max_new_tokens or generation_options(kwargs).get("max_new_tokens") \
            or self.config.max_new_tokens
        if steps + 1 > self.config.max_positions:
            raise UsageError(f"max_new_tokens ({steps}) exceeds the position table "
                             f"({self.config.max_positions - 1})")
        batch = self.collate(examples, train=False)
        device = self.output.weight.device
        was_training = self.training
        self.eval()
        try:
            video, context = self.encode(batch["frames"].to(device),
                                         batch["frame_mask"].to(device),
                                         batch["context_ids"].to(device))
            ids = torch.full((len(examples), 1), self.bos_id, dtype=torch.long, device=device)
            done = torch.zeros(len(examples), dtype=torch.bool, device=device)
            for _ in range(steps):
                next_ids = self.decode_logits(ids, video, context)[:, -1].argmax(-1)
                next_ids = next_ids.masked_fill(done, self.pad_id)
                ids = torch.cat([ids, next_ids[:, None]], dim=1)
                done |= next_ids.eq(self.eos_id)
                if done.all():
                    break
        finally:
            self.train(was_training)
        out = []
        for row in ids[:, 1:].tolist():
            row = row[: row.index(self.eos_id)] if self.eos_id in row else row
            out.append(decode(self.tokenizer, row))
        return out
