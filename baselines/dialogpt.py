"""DialoGPT, Chinese (GPT2-chitchat, github.com/yangjianxin1/GPT2-chitchat): the TikTalk
text-only baseline.

A GPT2LMHeadModel over a character vocabulary. One dialogue is one sequence
``[CLS] u1 [SEP] u2 [SEP] ... un [SEP]``; training is next-token cross-entropy over the
whole sequence (GPT2-chitchat's choice; ``loss_on="response"`` keeps only the response and
its closing [SEP]). Decoding follows GPT2-chitchat's ``interact.py``: the prompt is the last
``max_history`` (3) utterances, each step samples from the top-k (8) logits after a
CTRL-style repetition penalty, [UNK] is never sampled, at most ``max_new_tokens`` (25)
tokens, stop at [SEP]. Key/value caching replaces the per-step recompute of interact.py;
tests check the two agree.

``from_pretrained`` reads both our own save directory and a GPT2-chitchat checkpoint
directory (``config.json`` GPT2 config + weights + ``vocab.txt``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from baselines._common import (
    decode,
    default_tokenizer,
    generation_options,
    has_responses,
    pad_right,
)
from tiktalk.errors import MissingInputError, UsageError
from tiktalk.models.base import ChatModel
from tiktalk.models.config import ModelConfig
from tiktalk.models.saving import MODEL_FILE, SavedModel
from tiktalk.models.scoring import IGNORE_INDEX, labelled_nll, require_responses
from tiktalk.types import DialogueExample


@dataclass
class DialoGPTConfig(ModelConfig):
    """Defaults are GPT2-chitchat's (config.json and train.py/interact.py arguments)."""

    n_embd: int = 768
    n_layer: int = 10
    n_head: int = 12
    n_positions: int = 300  # GPT2-chitchat n_ctx
    dropout: float = 0.1  # resid/embd/attn dropout
    max_len: int = 150  # training sequence length (tokens); longer dialogues keep their end
    loss_on: str = "all"  # "all": whole sequence (GPT2-chitchat); "response": response only
    max_history: int = 3  # utterances fed to the model when generating
    max_new_tokens: int = 25
    top_k: int = 8  # 0 disables top-k
    top_p: float = 0.0  # 0 disables nucleus filtering
    temperature: float = 1.0
    repetition_penalty: float = 1.0  # CTRL-style; 1.0 = off (GPT2-chitchat default)
    do_sample: bool = True  # False: greedy (argmax) decoding
    tokenizer_path: str | None = None  # None: the generated character vocabulary

    def validate(self) -> None:
        self._positive("n_embd", "n_layer", "n_head", "n_positions", "max_len",
                       "max_history", "max_new_tokens")
        self._divisible("n_embd", "n_head")
        self._probability("dropout")
        self._choice("loss_on", ("all", "response"))
        if self.max_len > self.n_positions:
            self._fail("max_len", self.max_len, f"exceeds n_positions ({self.n_positions})")
        if self.max_new_tokens >= self.n_positions:
            self._fail("max_new_tokens", self.max_new_tokens,
                       f"must be below n_positions ({self.n_positions})")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            self._fail("top_k", self.top_k, "must be an integer >= 0")
        if not 0.0 <= self.top_p <= 1.0:
            self._fail("top_p", self.top_p, "must lie in [0, 1]")
        if self.temperature <= 0:
            self._fail("temperature", self.temperature, "must be > 0")
        if self.repetition_penalty <= 0:
            self._fail("repetition_penalty", self.repetition_penalty, "must be > 0")


@dataclass
class DialoGPTOutput:
    loss: torch.Tensor | None  # () mean next-token cross-entropy over labelled positions
    logits: torch.Tensor  # (B, T, vocab)
    loss_lm: torch.Tensor | None  # same value as ``loss`` (the only objective)


TINY_PRESET: dict[str, Any] = {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 128,
                               "dropout": 0.0, "max_len": 96}


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then nucleus filtering of (vocab,) logits (GPT2-chitchat's top_k_top_p_filtering)."""
    logits = logits.clone()
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits[logits < kth] = -float("inf")
    if 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum > top_p
        remove[1:] = remove[:-1].clone()  # keep the first token that crosses top_p
        remove[0] = False
        logits[order[remove]] = -float("inf")
    return logits


class DialoGPTChat(ChatModel):
    name = "dialogpt"
    config_class = DialoGPTConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {"tiny": TINY_PRESET}
    # GPT2-chitchat train.py (yangjianxin1/GPT2-chitchat@9066954): --lr 2.6e-5 (L47), --eps 1e-9
    # (L48), --epochs 100 (L44), --batch_size 4 (L45), --gradient_accumulation_steps 4 (L50),
    # --max_grad_norm 2.0 (L51), --warmup_steps 4000 (L59); transformers.AdamW without weight
    # decay and a linear schedule with warmup (L276-280).
    default_recipe: ClassVar[dict[str, Any]] = {
        "lr": 2.6e-5,
        "adam_eps": 1e-9,
        "weight_decay": 0.0,
        "warmup_steps": 4000,
        "max_grad_norm": 2.0,
        "batch_size": 4,
        "grad_accum_steps": 4,
        "global_batch_size": 16,  # one GPU: 4 x 4 accumulation
        "epochs": 100,
    }

    def __init__(self, config: DialoGPTConfig, tokenizer=None, gpt2=None):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.config = config
        if tokenizer is None:
            tokenizer = default_tokenizer(config.tokenizer_path)
        self.tokenizer = tokenizer
        for special in ("cls_token_id", "sep_token_id", "pad_token_id"):
            if getattr(tokenizer, special) is None:
                raise UsageError(f"dialogpt tokenizer has no {special[:-3]} (needs [CLS]/[SEP]/[PAD])")
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id, self.unk_id = tokenizer.pad_token_id, tokenizer.unk_token_id
        if gpt2 is None:
            gpt2 = GPT2LMHeadModel(GPT2Config(
                vocab_size=len(tokenizer), n_positions=config.n_positions, n_embd=config.n_embd,
                n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=config.dropout,
                embd_pdrop=config.dropout, attn_pdrop=config.dropout,
                bos_token_id=self.cls_id, eos_token_id=self.sep_id, pad_token_id=self.pad_id,
            ))
        if gpt2.config.vocab_size < len(tokenizer):
            raise UsageError(f"GPT2 vocab_size ({gpt2.config.vocab_size}) is smaller than the "
                             f"tokenizer ({len(tokenizer)} tokens)")
        self.gpt2 = gpt2

    # ------------------------------------------------------------------ building

    @classmethod
    def from_external(cls, path: Path, saved: SavedModel | None, **overrides: Any) -> DialoGPTChat:
        """A GPT2-chitchat checkpoint (GPT2 config.json + weights + vocab.txt); ``overrides``
        replace decoding/training options (not the architecture's)."""
        if saved is None and (path / "config.json").exists() and (path / "vocab.txt").exists():
            return cls._from_chitchat(path, **cls._config_overrides(overrides))
        if saved is not None:
            return super().from_external(path, saved, **overrides)
        raise MissingInputError(f"{path}: neither a saved dialogpt model ({MODEL_FILE}) nor a "
                                "GPT2-chitchat checkpoint (config.json + vocab.txt)")

    @classmethod
    def _from_chitchat(cls, path: Path, **overrides: Any) -> DialoGPTChat:
        from transformers import BertTokenizer, GPT2LMHeadModel

        gpt2 = GPT2LMHeadModel.from_pretrained(str(path))
        # GPT2-chitchat ships only vocab.txt: from_pretrained(dir) reads it (vocab_file= would not).
        tokenizer = BertTokenizer.from_pretrained(str(path))
        c = gpt2.config
        config = DialoGPTConfig.from_dict({
            "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head,
            "n_positions": c.n_positions, "dropout": c.resid_pdrop,
            "max_len": min(DialoGPTConfig.max_len, c.n_positions), **overrides})
        return cls(config, tokenizer=tokenizer, gpt2=gpt2)

    # ------------------------------------------------------------------ data

    def _utterance_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def dialogue_ids(self, turns: Sequence[str]) -> list[int]:
        """``[CLS] u1 [SEP] u2 [SEP] ...`` for the given turns."""
        ids = [self.cls_id]
        for turn in turns:
            ids += self._utterance_ids(turn) + [self.sep_id]
        return ids

    def _truncate(self, ids: list[int], limit: int) -> list[int]:
        # Keep [CLS] and the most recent tokens: the response sits at the end.
        return ids if len(ids) <= limit else [self.cls_id] + ids[len(ids) - limit + 1:]

    def collate(self, examples: Sequence[DialogueExample], train: bool = True,
                generator: torch.Generator | None = None) -> dict[str, Any]:
        """Right-padded ``input_ids``/``attention_mask`` (B, T); ``labels`` (B, T) when the
        examples carry responses (always for ``train=True``). Without responses (generation
        inputs) the sequence is the last ``max_history`` context turns. Deterministic:
        ``generator`` (the ChatModel contract) is not drawn from.
        """
        if train:
            require_responses(examples)
        with_labels = train or has_responses(examples)
        seqs, labels = [], []
        for ex in examples:
            if with_labels:
                ids, lab = self._labelled(ex, response_only=self.config.loss_on == "response")
                labels.append(lab)
            else:
                ids = self._prompt_ids(ex)
            seqs.append(ids)
        batch = {"input_ids": pad_right(seqs, self.pad_id)}
        batch["attention_mask"] = pad_right([[1] * len(s) for s in seqs], 0)
        if with_labels:
            batch["labels"] = pad_right(labels, IGNORE_INDEX)
        return batch

    def _labelled(self, ex: DialogueExample, response_only: bool) -> tuple[list[int], list[int]]:
        """The dialogue's ids (context turns, then the response, each closed by EOS) and their
        labels: all of them, or only the response and its EOS."""
        ids = self._truncate(self.dialogue_ids(list(ex.context) + [ex.response]), self.config.max_len)
        if not response_only:
            return ids, list(ids)
        n_resp = min(len(self._utterance_ids(ex.response)) + 1, len(ids) - 1)
        return ids, [IGNORE_INDEX] * (len(ids) - n_resp) + ids[len(ids) - n_resp:]

    def score_batch(self, examples: Sequence[DialogueExample]) -> list[tuple[float, int]]:
        """Per example: summed NLL (nats) of its response tokens and closing EOS given the
        context turns (whatever ``loss_on`` trained), and their count."""
        device = next(self.parameters()).device
        pairs = [self._labelled(ex, response_only=True) for ex in examples]
        ids = pad_right([i for i, _ in pairs], self.pad_id).to(device)
        mask = pad_right([[1] * len(i) for i, _ in pairs], 0).to(device)
        logits = self.gpt2(input_ids=ids, attention_mask=mask).logits
        return labelled_nll(logits, pad_right([lab for _, lab in pairs], IGNORE_INDEX).to(device))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> DialoGPTOutput:
        # input_ids, attention_mask, labels: (B, T); labels are aligned with input_ids.
        logits = self.gpt2(input_ids=input_ids, attention_mask=attention_mask).logits
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                   labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
        return DialoGPTOutput(loss=loss, logits=logits, loss_lm=loss)

    # ------------------------------------------------------------------ decoding

    def _prompt_ids(self, ex: DialogueExample) -> list[int]:
        history = list(ex.context)[-self.config.max_history:]
        ids = self.dialogue_ids(history)
        return self._truncate(ids, self.config.n_positions - self.config.max_new_tokens)

    def _next_logits(self, logits: torch.Tensor, generated: list[int], opts: dict) -> torch.Tensor:
        """(vocab,) raw logits -> filtered logits, as GPT2-chitchat's interact.py."""
        logits = logits.float().clone()
        if opts["repetition_penalty"] != 1.0:
            for tok in set(generated):
                logits[tok] /= opts["repetition_penalty"]
        logits = logits / opts["temperature"]
        if self.unk_id is not None:
            logits[self.unk_id] = -float("inf")
        return filter_logits(logits, opts["top_k"], opts["top_p"])

    @torch.no_grad()
    def generate_ids(self, prompt: list[int], generator: torch.Generator | None = None,
                     use_cache: bool = True, **kwargs: Any) -> list[int]:
        """Token ids of one response (without the closing [SEP])."""
        opts = {k: kwargs.get(k, getattr(self.config, k)) for k in (
            "max_new_tokens", "top_k", "top_p", "temperature", "repetition_penalty", "do_sample")}
        device = next(self.parameters()).device
        ids = torch.tensor([prompt], device=device)
        out = self.gpt2(input_ids=ids, use_cache=use_cache)
        generated: list[int] = []
        for _ in range(opts["max_new_tokens"]):
            logits = self._next_logits(out.logits[0, -1], generated, opts)
            if opts["do_sample"]:
                probs = logits.softmax(-1)
                tok = int(torch.multinomial(probs.cpu(), 1, generator=generator))
            else:
                tok = int(logits.argmax())
            if tok == self.sep_id:
                break
            generated.append(tok)
            step = torch.tensor([[tok]], device=device)
            if use_cache:
                out = self.gpt2(input_ids=step, cache=out.cache, use_cache=True)
            else:  # interact.py's way: recompute the whole sequence
                ids = torch.cat([ids, step], dim=1)
                out = self.gpt2(input_ids=ids)
        return generated

    def generate(self, examples: Sequence[DialogueExample], seed: int | None = None,
                 generator: torch.Generator | None = None, **kwargs: Any) -> list[str]:
        """One sampled response per example; ``seed``/``generator`` make sampling reproducible;
        other kwargs override the config's decoding options (top_k, top_p, temperature,
        repetition_penalty, do_sample, max_new_tokens or its alias max_length); other
        keywords (num_beams, ...) do not apply to this sampler and are ignored."""
        kwargs = generation_options(kwargs)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        was_training = self.training
        self.eval()
        try:
            return [decode(self.tokenizer, self.generate_ids(self._prompt_ids(ex), generator,
                                                             **kwargs))
                    for ex in examples]
        finally:
            self.train(was_training)
