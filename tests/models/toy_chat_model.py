"""A tiny byte-level ChatModel for trainer / checkpoint / CLI tests (test-only name).

Embedding + causal Conv1d + LayerNorm + dropout + linear head over UTF-8 bytes. ``collate(train=True)``
masks context bytes at random (drawn from its ``generator``, like a real MLM collator) and
dropout draws from the global torch RNG, so exact-resume tests exercise both random streams. Two named
losses (``loss_response``, ``loss_context``) exercise per-objective logging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tiktalk.models.base import ChatModel, register_model
from tiktalk.models.config import ModelConfig
from tiktalk.types import DialogueExample

PAD, SEP, EOS, MASK = 256, 257, 258, 259


@dataclass
class ToyConfig(ModelConfig):
    hidden: int = 32
    dropout: float = 0.1
    max_context: int = 48
    max_response: int = 16
    mask_prob: float = 0.15
    context_weight: float = 0.1
    modalities: tuple[str, ...] = ("text",)
    vocab_size: int = 260


@dataclass
class ToyOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor
    loss_response: torch.Tensor | None = None
    loss_context: torch.Tensor | None = None


class ToyChatModel(ChatModel):
    name = "toy-char-lm"
    config_class = ToyConfig
    optional_modalities: ClassVar[tuple[str, ...]] = ("vision", "audio", "knowledge")
    presets: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {}}

    def __init__(self, config: ToyConfig, tokenizer=None):  # bytes: no tokenizer
        super().__init__()
        self.config = config
        self.embed = torch.nn.Embedding(config.vocab_size, config.hidden)
        self.frame_proj = torch.nn.Linear(4, config.hidden)  # unused unless frames exist
        self.conv = torch.nn.Conv1d(config.hidden, config.hidden, kernel_size=4)  # causal via left pad
        self.LayerNorm = torch.nn.LayerNorm(config.hidden)
        self.dropout = torch.nn.Dropout(config.dropout)
        self.head = torch.nn.Linear(config.hidden, config.vocab_size)

    # -- data
    def _encode(self, ex: DialogueExample, with_response: bool) -> tuple[list[int], int]:
        ctx = list("\n".join(ex.context).encode())[-self.config.max_context :]
        if ex.knowledge:
            ctx = list(ex.knowledge.encode())[: self.config.max_context // 2] + ctx[-self.config.max_context // 2 :]
        ids = ctx + [SEP]
        if with_response:
            ids += list((ex.response or "").encode())[: self.config.max_response] + [EOS]
        return ids, len(ctx) + 1

    def collate(
        self, examples: Sequence[DialogueExample], train: bool = True, generator: torch.Generator | None = None
    ) -> dict[str, Any]:
        encoded = [self._encode(ex, True) for ex in examples]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), width), PAD)
        labels = torch.full((len(encoded), width), -100)
        context_mask = torch.zeros((len(encoded), width), dtype=torch.bool)
        for row, (ids, n_src) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids) - 1] = torch.tensor(ids[1:])
            context_mask[row, : n_src - 1] = True
        if train:  # random context masking: the collator's own randomness
            masked = (torch.rand(input_ids.shape, generator=generator) < self.config.mask_prob) & context_mask
            input_ids = input_ids.masked_fill(masked, MASK)
        return {"input_ids": input_ids, "labels": labels, "context_mask": context_mask}

    # -- model
    def forward(self, input_ids, labels=None, context_mask=None) -> ToyOutput:
        # input_ids, labels: (B, T); context_mask: (B, T) bool
        x = self.embed(input_ids).transpose(1, 2)  # (B, H, T)
        hidden = torch.tanh(self.conv(torch.nn.functional.pad(x, (3, 0)))).transpose(1, 2)  # (B, T, H)
        logits = self.head(self.dropout(self.LayerNorm(hidden)))  # (B, T, V)
        if labels is None:
            return ToyOutput(loss=None, logits=logits)
        per_token = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), labels, ignore_index=-100, reduction="none"
        )  # (B, T)
        valid = labels != -100
        resp = valid & ~context_mask
        ctx = valid & context_mask
        loss_response = per_token[resp].mean()
        loss_context = per_token[ctx].mean() if ctx.any() else per_token.sum() * 0
        loss = loss_response + self.config.context_weight * loss_context
        return ToyOutput(loss=loss, logits=logits, loss_response=loss_response, loss_context=loss_context)

    @torch.no_grad()
    def generate(self, examples: Sequence[DialogueExample], max_length: int = 8, num_beams: int = 1, **_: Any) -> list[str]:
        self.eval()
        device = self.head.weight.device
        out = []
        for ex in examples:
            ids, _ = self._encode(ex, False)
            tokens: list[int] = []
            for _ in range(max_length):
                logits = self(torch.tensor([ids + tokens], device=device)).logits[0, -1]
                logits[[PAD, SEP, MASK]] = -1e9
                nxt = int(logits.argmax())
                if nxt == EOS:
                    break
                tokens.append(nxt)
            out.append(bytes(t for t in tokens if t < 256).decode("utf-8", errors="ignore"))
        return out

    # -- modalities (saving, loading and presets are the platform's)
    def modalities(self) -> tuple[str, ...]:
        return self.config.modalities

    @classmethod
    def modality_fields(cls, modalities: tuple[str, ...]) -> dict[str, Any]:
        super().modality_fields(modalities)
        return {"modalities": modalities}


register_model(ToyChatModel)


def toy_examples(n: int = 12) -> list[DialogueExample]:
    words = ["你好", "吃饭了吗", "今天天气很好", "我们去公园", "好的", "哈哈哈", "这个视频真好看", "晚安"]
    return [
        DialogueExample(
            dialogue_id=f"d{i}",
            context=[words[i % len(words)], words[(i * 3 + 1) % len(words)]],
            response=words[(i * 5 + 2) % len(words)],
            references=[words[(i * 5 + 2) % len(words)]],
        )
        for i in range(n)
    ]
