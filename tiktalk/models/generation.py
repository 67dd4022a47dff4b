"""Decoding shared by every model: options and greedy / beam search over a step scorer.

A model supplies a :class:`StepScorer` (tokens so far -> logits of the next token); the
search, penalties and bans here are model-agnostic. :class:`GenerationConfig`'s defaults and
the searches follow Maria's public code (jokieleung/Maria ``oscar/run_dialog_generate.py``
arguments, ``oscar/modeling/modeling_utils.py`` greedy and beam search; SPEC section 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from tiktalk.errors import UsageError


@dataclass
class GenerationConfig:
    """Decoding options. The defaults are Maria's (``run_dialog_generate.py`` arguments and
    Oscar's ``_generate_beam_search``), and so is the search: see :func:`beam_search`."""

    num_beams: int = 5
    """Beam size; 1 means greedy search (as in Maria, num_beams=1 is never a beam search)."""
    max_length: int = 40
    """Maria's ``max_gen_length``: the response segment counts [CLS], so a response has at
    most ``max_length - 2`` tokens before its end token. Maria runs ``max_length - 1`` steps
    and drops the token chosen at the last one (its hypothesis is the prefix; its score
    still counts that token). Must not exceed the model's response_budget."""
    min_length: int = 0
    """The end tokens are forbidden until this many tokens were generated (Maria: no such rule, 0)."""
    repetition_penalty: float = 3.0
    """CTRL-style, as Maria: logits of every token already in the sequence, [CLS] included,
    are divided by it (multiplied when negative)."""
    length_penalty: float = 0.3
    """A finished hypothesis scores sum log-prob / (its length counting [CLS]) ** length_penalty."""
    no_repeat_ngram_size: int = 0
    """Forbid repeating any n-gram of this size (0 = off; Maria has no such rule)."""
    ban_special_tokens: bool = False
    """Forbid the bracketed specials other than the end tokens ([CLS], [MASK], [UNK], [unusedN]).
    Maria forbids nothing; decoding drops specials from the text either way."""
    use_cache: bool = True
    """Cached decoding (source computed once) instead of full recomputation (same tokens)."""
    batch_size: int = 32
    """Examples decoded together."""

    def __post_init__(self) -> None:
        for name in ("num_beams", "max_length", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"GenerationConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_length < 3:
            raise UsageError(f"GenerationConfig.max_length ({self.max_length}) must leave room for [CLS], "
                             "one token and the end token")
        if not 0 <= self.min_length <= self.max_length - 2:
            raise UsageError(
                f"GenerationConfig.min_length ({self.min_length}) must be in [0, max_length - 2 = {self.max_length - 2}]"
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
def end_token_ids(special) -> tuple[int, int]:
    """Tokens that end a response: [SEP] and [PAD] (Maria's ``eos_token_ids=[sep, pad]``)."""
    return special.sep, special.pad


def process_logits(
    logits: torch.Tensor, tokens: torch.Tensor, config: GenerationConfig, end_ids: Sequence[int],
    banned_ids: torch.Tensor,
) -> torch.Tensor:
    """Penalties and bans on raw logits. logits (N, V), tokens (N, t+1) starting with [CLS]."""
    logits = logits.float().clone()
    generated = tokens[:, 1:]  # (N, t)
    if config.repetition_penalty != 1.0:
        # Maria penalises every token of the sequence, the [CLS] it starts with included.
        previous = logits.gather(1, tokens)
        previous = torch.where(previous < 0, previous * config.repetition_penalty, previous / config.repetition_penalty)
        logits.scatter_(1, tokens, previous)
    n = config.no_repeat_ngram_size
    if n and generated.shape[1] >= n:
        rows = generated.tolist()
        for row, seq in enumerate(rows):
            prefix = tuple(seq[len(seq) - n + 1 :]) if n > 1 else ()
            banned = {seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == prefix}
            if banned:
                logits[row, list(banned)] = float("-inf")
    if banned_ids.numel():
        logits[:, banned_ids] = float("-inf")
    if generated.shape[1] < config.min_length:
        logits[:, list(end_ids)] = float("-inf")
    return logits


def _until_end(sequence: list[int], end_ids: Sequence[int]) -> list[int]:
    for i, token in enumerate(sequence):
        if token in end_ids:
            return sequence[:i]
    return sequence


def greedy_search(scorer: StepScorer, batch_size: int, config: GenerationConfig, special, banned_ids, device) -> list[list[int]]:
    """Argmax each step (Maria's ``_generate_no_beam_search``); finished rows are padded.

    Maria runs ``max_length - 1`` steps and overwrites an unfinished row's last token with the
    end token, so a response keeps at most ``max_length - 2`` tokens: the last step never
    changes the output and is skipped here.
    """
    ends = end_token_ids(special)
    tokens = torch.full((batch_size, 1), special.cls, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    end_tensor = torch.tensor(ends, device=device)
    for _ in range(config.max_length - 2):
        logits = process_logits(scorer.step(tokens), tokens, config, ends, banned_ids)
        next_tokens = logits.argmax(dim=-1).masked_fill(finished, special.pad)
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
        finished |= torch.isin(next_tokens, end_tensor)
        if bool(finished.all()):
            break
    return [_until_end(row[1:], ends) for row in tokens.tolist()]


class _BestHypothesis:
    """Maria's ``BeamHypotheses`` with ``num_keep_best = 1``: the best finished hypothesis of one
    example, scored sum log-prob / len ** length_penalty (len counts [CLS], not the end token)."""

    def __init__(self, max_length: int, length_penalty: float):
        self.max_length, self.length_penalty = max_length, length_penalty
        self.score: float | None = None
        self.tokens: list[int] = []

    def add(self, tokens: list[int], sum_logprobs: float, length: int) -> None:
        score = sum_logprobs / length**self.length_penalty
        if self.score is None or score > self.score:  # a tie keeps the earlier one
            self.score, self.tokens = score, tokens

    def is_done(self, best_sum_logprobs: float) -> bool:
        # Maria's bound divides by the longest possible length (max_length - 1 with [CLS]).
        if self.score is None:
            return False
        return self.score >= best_sum_logprobs / (self.max_length - 1) ** self.length_penalty


def beam_search(scorer: StepScorer, batch_size: int, config: GenerationConfig, special, banned_ids, device) -> list[list[int]]:
    """Maria's beam search (Oscar's ``_generate_beam_search`` without sampling), step for step.

    Each step takes the top ``2 * num_beams`` continuations of an example (over all its beams).
    Walking them best first, an end token ([SEP] or [PAD]) offers the prefix as a finished
    hypothesis, anything else fills the next beams until ``num_beams`` are full. At the last
    step (``max_length - 1`` tokens with [CLS]) every candidate offers its prefix. An example
    is done, before its candidates are looked at, when its best finished hypothesis beats the
    best candidate's sum divided by ``(max_length - 1) ** length_penalty``. Only the best
    hypothesis is kept (``num_keep_best = 1``). tests/fusion/test_generation.py checks this
    against a literal port of Maria's loop.
    """
    ends = end_token_ids(special)
    beams = config.num_beams
    n_rows = batch_size * beams
    tokens = torch.full((n_rows, 1), special.cls, dtype=torch.long, device=device)
    beam_scores = torch.zeros((batch_size, beams), dtype=torch.float32, device=device)
    beam_scores[:, 1:] = -1e9  # step 0: every beam is the same [CLS]; expand from the first only
    best = [_BestHypothesis(config.max_length, config.length_penalty) for _ in range(batch_size)]
    done = [False] * batch_size
    for cur_len in range(1, config.max_length):  # tokens per row, [CLS] included
        logits = process_logits(scorer.step(tokens), tokens, config, ends, banned_ids)
        log_probs = torch.log_softmax(logits, dim=-1)  # (N, V)
        vocab = log_probs.shape[-1]
        candidates = (log_probs + beam_scores.view(n_rows, 1)).view(batch_size, beams * vocab)
        top_scores, top_index = candidates.topk(2 * beams, dim=1)  # (B, 2K), best first
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        last_step = cur_len + 1 == config.max_length
        next_scores, next_tokens, next_beams = [], [], []
        token_rows = tokens.tolist()
        for b in range(batch_size):
            done[b] = done[b] or best[b].is_done(top_scores[b][0])
            chosen: list[tuple[float, int, int]] = []
            if not done[b]:
                for score, flat in zip(top_scores[b], top_index[b]):
                    beam, token = divmod(flat, vocab)
                    row = b * beams + beam
                    if token in ends or last_step:
                        best[b].add(token_rows[row][1:], score, cur_len)
                    else:
                        chosen.append((score, token, row))
                    if len(chosen) == beams:
                        break
            # Done examples (and the last step) fill their rows with padding; Maria would
            # assert if end tokens left a beam short, which needs 2K end candidates: pad too.
            chosen += [(-1e9, special.pad, b * beams)] * (beams - len(chosen))
            next_scores += [c[0] for c in chosen]
            next_tokens += [c[1] for c in chosen]
            next_beams += [c[2] for c in chosen]
        beam_index = torch.tensor(next_beams, dtype=torch.long, device=device)
        tokens = torch.cat([tokens[beam_index], torch.tensor(next_tokens, device=device)[:, None]], dim=1)
        beam_scores = torch.tensor(next_scores, dtype=torch.float32, device=device).view(batch_size, beams)
        scorer.reorder(beam_index)
        if all(done):
            break
    return [h.tokens for h in best]
