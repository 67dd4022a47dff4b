"""Decoding shared by every model: options and greedy / beam search over a step scorer.

A model supplies a :class:`StepScorer` (tokens so far -> logits of the next token); the
search, penalties and bans here are model-agnostic. :class:`GenerationConfig`'s defaults are
Maria's decoding settings (SPEC section 3), the paper's best system.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from tiktalk.errors import UsageError


@dataclass
class GenerationConfig:
    """Decoding options (defaults: Maria's)."""

    num_beams: int = 5
    """Beam size; 1 means greedy search."""
    max_length: int = 40
    """Response length cap counting [CLS] (Maria's max_gen_length): <= max_length - 1
    generated tokens including [SEP]. Must not exceed the model's response_budget."""
    min_length: int = 1
    """[SEP] is forbidden until this many tokens were generated."""
    repetition_penalty: float = 3.0
    """CTRL-style: logits of already generated tokens are divided by it (multiplied when negative)."""
    length_penalty: float = 0.3
    """Beam hypotheses are ranked by sum log-prob / (generated length ** length_penalty)."""
    no_repeat_ngram_size: int = 0
    """Forbid repeating any n-gram of this size (0 = off)."""
    use_cache: bool = True
    """Cached decoding (source computed once) instead of full recomputation."""
    batch_size: int = 32
    """Examples decoded together."""

    def __post_init__(self) -> None:
        for name in ("num_beams", "max_length", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"GenerationConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_length < 2:
            raise UsageError(f"GenerationConfig.max_length ({self.max_length}) must leave room for one token after [CLS]")
        if not 0 <= self.min_length < self.max_length:
            raise UsageError(
                f"GenerationConfig.min_length ({self.min_length}) must be in [0, max_length={self.max_length})"
            )
        if self.repetition_penalty <= 0:
            raise UsageError(f"GenerationConfig.repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        if self.no_repeat_ngram_size < 0:
            raise UsageError(f"GenerationConfig.no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size!r}")


class StepScorer(Protocol):
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (N, t+1) = [CLS] y1..yt per beam -> logits (N, V) at the next [MASK]."""

    def reorder(self, beam_index: torch.Tensor) -> None:
        """Beams were re-chosen: row i now continues former row beam_index[i] (N,)."""


# -- logits processing ----------------------------------------------------------------------------
def process_logits(
    logits: torch.Tensor, tokens: torch.Tensor, config: GenerationConfig, sep_id: int, banned_ids: torch.Tensor
) -> torch.Tensor:
    """Penalties and bans on raw logits. logits (N, V), tokens (N, t+1) starting with [CLS]."""
    logits = logits.float().clone()
    generated = tokens[:, 1:]  # (N, t)
    if config.repetition_penalty != 1.0 and generated.shape[1]:
        previous = logits.gather(1, generated)
        previous = torch.where(previous > 0, previous / config.repetition_penalty, previous * config.repetition_penalty)
        logits.scatter_(1, generated, previous)
    n = config.no_repeat_ngram_size
    if n and generated.shape[1] >= n:
        rows = generated.tolist()
        for row, seq in enumerate(rows):
            prefix = tuple(seq[len(seq) - n + 1 :]) if n > 1 else ()
            banned = {seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == prefix}
            if banned:
                logits[row, list(banned)] = float("-inf")
    logits[:, banned_ids] = float("-inf")
    if generated.shape[1] < config.min_length:
        logits[:, sep_id] = float("-inf")
    return logits


def _strip(sequence: list[int], sep_id: int, pad_id: int) -> list[int]:
    out = []
    for token in sequence:
        if token == sep_id:
            break
        if token != pad_id:
            out.append(token)
    return out


def greedy_search(scorer: StepScorer, batch_size: int, config: GenerationConfig, special, banned_ids, device) -> list[list[int]]:
    """Argmax each step; rows that produced [SEP] are padded until all are done."""
    tokens = torch.full((batch_size, 1), special.cls, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for _ in range(config.max_length - 1):
        logits = process_logits(scorer.step(tokens), tokens, config, special.sep, banned_ids)
        next_tokens = logits.argmax(dim=-1).masked_fill(finished, special.pad)
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
        finished |= next_tokens == special.sep
        if bool(finished.all()):
            break
    return [_strip(row[1:], special.sep, special.pad) for row in tokens.tolist()]


class _Hypotheses:
    """The best ``num_beams`` finished hypotheses of one example (as transformers' BeamHypotheses)."""

    def __init__(self, num_beams: int, length_penalty: float):
        self.num_beams, self.length_penalty = num_beams, length_penalty
        self.items: list[tuple[float, list[int]]] = []

    def add(self, sequence: list[int], sum_logprobs: float, generated_length: int) -> None:
        score = sum_logprobs / (max(generated_length, 1) ** self.length_penalty)
        self.items.append((score, sequence))
        self.items.sort(key=lambda item: -item[0])
        del self.items[self.num_beams :]

    def is_done(self, best_running_sum: float, generated_length: int) -> bool:
        if len(self.items) < self.num_beams:
            return False
        return self.items[-1][0] >= best_running_sum / (max(generated_length, 1) ** self.length_penalty)

    def best(self) -> list[int]:
        return self.items[0][1]


def beam_search(scorer: StepScorer, batch_size: int, config: GenerationConfig, special, banned_ids, device) -> list[list[int]]:
    """Beam search with length penalty; a hypothesis ends at [SEP] or at max_length."""
    beams = config.num_beams
    n_rows = batch_size * beams
    tokens = torch.full((n_rows, 1), special.cls, dtype=torch.long, device=device)
    beam_scores = torch.zeros((batch_size, beams), dtype=torch.float32, device=device)
    beam_scores[:, 1:] = -1e9  # step 0: every beam is the same [CLS]; expand from the first only
    hypotheses = [_Hypotheses(beams, config.length_penalty) for _ in range(batch_size)]
    done = [False] * batch_size
    for _ in range(config.max_length - 1):
        logits = process_logits(scorer.step(tokens), tokens, config, special.sep, banned_ids)
        log_probs = torch.log_softmax(logits, dim=-1)  # (N, V)
        vocab = log_probs.shape[-1]
        candidates = (log_probs + beam_scores.view(n_rows, 1)).view(batch_size, beams * vocab)
        top_scores, top_index = candidates.topk(2 * beams, dim=1)  # (B, 2K)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        generated_length = tokens.shape[1]  # tokens after [CLS] once this step's token is added
        next_scores, next_tokens, next_beams = [], [], []
        token_rows = tokens.tolist()
        for b in range(batch_size):
            if done[b]:
                next_scores += [0.0] * beams
                next_tokens += [special.pad] * beams
                next_beams += [b * beams] * beams
                continue
            chosen = []
            for rank, (score, flat) in enumerate(zip(top_scores[b], top_index[b])):
                beam, token = divmod(flat, vocab)
                row = b * beams + beam
                if token == special.sep:
                    if rank < beams:
                        hypotheses[b].add(token_rows[row][1:], score, generated_length)
                else:
                    chosen.append((score, token, row))
                if len(chosen) == beams:
                    break
            next_scores += [c[0] for c in chosen]
            next_tokens += [c[1] for c in chosen]
            next_beams += [c[2] for c in chosen]
            done[b] = hypotheses[b].is_done(max(c[0] for c in chosen), generated_length)
        beam_index = torch.tensor(next_beams, dtype=torch.long, device=device)
        tokens = torch.cat([tokens[beam_index], torch.tensor(next_tokens, device=device)[:, None]], dim=1)
        beam_scores = torch.tensor(next_scores, dtype=torch.float32, device=device).view(batch_size, beams)
        scorer.reorder(beam_index)
        if all(done):
            break
    token_rows = tokens.tolist()
    generated_length = tokens.shape[1] - 1
    for b in range(batch_size):
        if done[b]:
            continue
        for k in range(beams):
            hypotheses[b].add(token_rows[b * beams + k][1:], float(beam_scores[b, k]), generated_length)
    return [_strip(h.best(), special.sep, special.pad) for h in hypotheses]
