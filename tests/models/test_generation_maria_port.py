"""Our greedy and beam search against a literal port of Maria's, on fixed logits.

The reference below transcribes jokieleung/Maria (commit 51ac07d)
``dialog_model/oscar/modeling/modeling_utils.py``: ``BeamHypotheses`` (lines 631-673), the
greedy branch of ``_generate_beam_search`` (lines 372-593, ``do_sample=False``) and of
``_generate_no_beam_search`` (lines 257-368), with ``self(**model_inputs)`` replaced by a
fixed logits function of the prefix, and Maria's call of them from
``run_dialog_generate.py`` (lines 757-781: ``eos_token_ids=[sep, pad]``, ``num_keep_best=1``,
``num_return_sequences=1``). Maria's variable names are kept; comments mark the lines that
had to change for today's torch.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from tiktalk.models.generation import GenerationConfig, beam_search, greedy_search

SPECIAL = SimpleNamespace(pad=0, cls=1, sep=2, mask=3)
VOCAB = 40


class FixedLogits:
    """Logits of the next token as a fixed function of the whole prefix (a seeded draw), with
    the end tokens pushed up so that hypotheses end at varied lengths."""

    def __init__(self, seed: int, end_bias: float, pad_ends: bool = True):
        self.seed, self.end_bias, self.pad_ends = seed, end_bias, pad_ends
        self.calls = 0

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = []
        for row in input_ids.tolist():
            key = hashlib.sha256(f"{self.seed}:{row}".encode()).digest()
            g = torch.Generator().manual_seed(int.from_bytes(key[:8], "little"))
            logits = torch.randn(VOCAB, generator=g) * 2.0
            logits[SPECIAL.sep] += self.end_bias * len(row) / 8
            logits[SPECIAL.pad] += self.end_bias / 2 - 2.0 if self.pad_ends else -1e4
            rows.append(logits)
        self.calls += 1
        return torch.stack(rows)  # (N, V) float32

    # the StepScorer protocol of tiktalk.models.generation
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self(tokens)

    def reorder(self, beam_index: torch.Tensor) -> None:
        pass


# ----------------------------------------------------------------------------- Maria's code


class BeamHypotheses:
    def __init__(self, n_hyp, max_length, length_penalty, early_stopping):
        self.max_length = max_length - 1  # ignoring bos_token
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.n_hyp = n_hyp
        self.hyp = []
        self.worst_score = 1e9

    def __len__(self):
        return len(self.hyp)

    def add(self, hyp, sum_logprobs):
        score = sum_logprobs / len(hyp) ** self.length_penalty
        if len(self) < self.n_hyp or score > self.worst_score:
            self.hyp.append((score, hyp))
            if len(self) > self.n_hyp:
                sorted_scores = sorted([(s, idx) for idx, (s, _) in enumerate(self.hyp)])
                del self.hyp[sorted_scores[0][1]]
                self.worst_score = sorted_scores[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs):
        if len(self) < self.n_hyp:
            return False
        elif self.early_stopping:
            return True
        else:
            return self.worst_score >= best_sum_logprobs / self.max_length ** self.length_penalty


def maria_generate_beam_search(model, input_ids, cur_len, max_length, repetition_penalty, pad_token_id,
                               eos_token_ids, batch_size, length_penalty, num_beams, vocab_size,
                               num_keep_best=1):
    input_ids = input_ids.unsqueeze(1).expand(batch_size, num_beams, cur_len)
    input_ids = input_ids.contiguous().view(batch_size * num_beams, cur_len)
    generated_hyps = [
        BeamHypotheses(num_keep_best, max_length, length_penalty, early_stopping=False) for _ in range(batch_size)
    ]
    TOPN_PER_BEAM = 2
    beam_scores = torch.zeros((batch_size, num_beams), dtype=torch.float, device=input_ids.device)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view(-1)
    done = [False for _ in range(batch_size)]

    while cur_len < max_length:
        scores = model(input_ids)  # outputs[0][:, next_token_idx, :]

        if repetition_penalty != 1.0:
            for i in range(batch_size * num_beams):
                for previous_token in set(input_ids[i].tolist()):
                    if scores[i, previous_token] < 0:
                        scores[i, previous_token] *= repetition_penalty
                    else:
                        scores[i, previous_token] /= repetition_penalty

        scores = F.log_softmax(scores, dim=-1)
        _scores = scores + beam_scores[:, None].expand_as(scores)
        _scores = _scores.view(batch_size, num_beams * vocab_size)
        next_scores, next_words = torch.topk(_scores, TOPN_PER_BEAM * num_beams, dim=1, largest=True, sorted=True)

        next_batch_beam = []
        for batch_ex in range(batch_size):
            done[batch_ex] = done[batch_ex] or generated_hyps[batch_ex].is_done(next_scores[batch_ex].max().item())
            if done[batch_ex]:
                next_batch_beam.extend([(0, pad_token_id, 0)] * num_beams)
                continue
            next_sent_beam = []
            for idx, score in zip(next_words[batch_ex], next_scores[batch_ex]):
                beam_id = idx // vocab_size
                word_id = idx % vocab_size
                if word_id.item() in eos_token_ids or cur_len + 1 == max_length:
                    generated_hyps[batch_ex].add(
                        input_ids[batch_ex * num_beams + beam_id, :cur_len].clone(), score.item()
                    )
                else:
                    next_sent_beam.append((score, word_id, batch_ex * num_beams + beam_id))
                if len(next_sent_beam) == num_beams:
                    break
            if cur_len + 1 == max_length:
                assert len(next_sent_beam) == 0
            else:
                assert len(next_sent_beam) == num_beams
            if len(next_sent_beam) == 0:
                next_sent_beam = [(0, pad_token_id, 0)] * num_beams
            next_batch_beam.extend(next_sent_beam)

        # beam_scores.new([...]) / input_ids.new([...]) over a mix of 0-d tensors and ints
        beam_scores = torch.tensor([float(x[0]) for x in next_batch_beam], dtype=beam_scores.dtype)
        beam_words = torch.tensor([int(x[1]) for x in next_batch_beam], dtype=input_ids.dtype)
        beam_idx = torch.tensor([int(x[2]) for x in next_batch_beam], dtype=input_ids.dtype)
        input_ids = input_ids[beam_idx, :]
        input_ids = torch.cat([input_ids, beam_words.unsqueeze(1)], dim=-1)
        cur_len = cur_len + 1
        if all(done):
            break

    tgt_len = torch.ones(batch_size, num_keep_best, dtype=torch.long)
    logprobs = torch.zeros(batch_size, num_keep_best, dtype=torch.float).fill_(-1e5)
    all_best = []
    for i, hypotheses in enumerate(generated_hyps):
        best = []
        hyp_scores = torch.tensor([x[0] for x in hypotheses.hyp])
        _, best_indices = torch.topk(hyp_scores, min(num_keep_best, len(hyp_scores)), largest=True)
        for best_idx, hyp_idx in enumerate(best_indices):
            conf, best_hyp = hypotheses.hyp[hyp_idx]
            best.append(best_hyp)
            logprobs[i, best_idx] = conf
            tgt_len[i, best_idx] = len(best_hyp) + 1
        all_best.append(best)

    decoded = input_ids.new(batch_size, num_keep_best, max_length).fill_(pad_token_id)
    for batch_idx, best in enumerate(all_best):
        for best_idx, hypo in enumerate(best):
            decoded[batch_idx, best_idx, : tgt_len[batch_idx, best_idx] - 1] = hypo
            decoded[batch_idx, best_idx, tgt_len[batch_idx, best_idx] - 1] = eos_token_ids[0]
    return decoded, logprobs


def maria_generate_no_beam_search(model, input_ids, cur_len, max_length, repetition_penalty, pad_token_id,
                                  eos_token_ids, batch_size):
    cur_unfinished = input_ids.new(batch_size).fill_(1)
    while cur_len < max_length:
        next_token_logits = model(input_ids)
        if repetition_penalty != 1.0:
            for i in range(batch_size):
                for previous_token in set(input_ids[i].tolist()):
                    if next_token_logits[i, previous_token] < 0:
                        next_token_logits[i, previous_token] *= repetition_penalty
                    else:
                        next_token_logits[i, previous_token] /= repetition_penalty
        next_token = torch.argmax(next_token_logits, dim=-1)
        tokens_to_add = next_token * cur_unfinished + pad_token_id * (1 - cur_unfinished)
        input_ids = torch.cat([input_ids, tokens_to_add.unsqueeze(-1)], dim=-1)
        for eos_token_id in eos_token_ids:
            cur_unfinished = cur_unfinished.mul(tokens_to_add.ne(eos_token_id).long())
        cur_len = cur_len + 1
        if cur_unfinished.max() == 0:
            break
    if cur_len == max_length:
        input_ids[:, -1].masked_fill_(cur_unfinished.to(dtype=torch.bool), eos_token_ids[0])  # Maria: uint8
    pad_len = max_length - input_ids.shape[1]
    if pad_len > 0:
        input_ids = torch.cat([input_ids, input_ids.new(batch_size, pad_len).fill_(pad_token_id)], dim=1)
    return input_ids.unsqueeze(1)


def maria_sequences(decoded: torch.Tensor) -> list[list[int]]:
    """(B, 1, max_length) [CLS] y.. [end] [PAD].. -> the tokens between [CLS] and the first end token."""
    out = []
    for row in decoded[:, 0].tolist():
        seq = row[1:]
        ends = [i for i, t in enumerate(seq) if t in (SPECIAL.sep, SPECIAL.pad)]
        out.append(seq[: ends[0]] if ends else seq)
    return out


def maria_decode(logits_fn, batch_size: int, config: GenerationConfig) -> list[list[int]]:
    input_ids = torch.full((batch_size, 1), SPECIAL.cls, dtype=torch.long)
    eos = [SPECIAL.sep, SPECIAL.pad]
    if config.num_beams > 1:
        decoded, _ = maria_generate_beam_search(
            logits_fn, input_ids, 1, config.max_length, config.repetition_penalty, SPECIAL.pad, eos, batch_size,
            config.length_penalty, config.num_beams, VOCAB)
    else:
        decoded = maria_generate_no_beam_search(
            logits_fn, input_ids, 1, config.max_length, config.repetition_penalty, SPECIAL.pad, eos, batch_size)
    return maria_sequences(decoded)


# ----------------------------------------------------------------------------- the tests


def ours(logits_fn, batch_size: int, config: GenerationConfig) -> list[list[int]]:
    search = beam_search if config.num_beams > 1 else greedy_search
    return search(logits_fn, batch_size, config, SPECIAL, torch.zeros(0, dtype=torch.long), torch.device("cpu"))


CONFIGS = {
    "default": GenerationConfig(),
    "short": GenerationConfig(max_length=8),
    "greedy": GenerationConfig(num_beams=1),
    "beam3-lp1": GenerationConfig(num_beams=3, max_length=12, length_penalty=1.0),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("end_bias", [-4.0, 0.0, 2.0, 5.0])
def test_our_search_gives_marias_sequences(name, seed, end_bias):
    config = CONFIGS[name]
    expected = maria_decode(FixedLogits(seed, end_bias), 4, config)
    assert ours(FixedLogits(seed, end_bias), 4, config) == expected


def test_the_comparison_covers_early_ends_full_lengths_and_early_stopping():
    """The cases above reach every branch: an end token before the cap, the length cap
    (``max_length - 2`` tokens), examples finished before the last step, and [PAD] ending
    a response (the outputs change when [PAD] can never be chosen)."""
    lengths, stopped_early, pad_matters = set(), False, False
    for seed in range(3):
        for end_bias in (-4.0, 0.0, 2.0, 5.0):
            for config in (CONFIGS["default"], CONFIGS["short"]):
                scorer = FixedLogits(seed, end_bias)
                found = ours(scorer, 4, config)
                lengths |= {len(s) for s in found}
                stopped_early |= scorer.calls < config.max_length - 1
                pad_matters |= found != ours(FixedLogits(seed, end_bias, pad_ends=False), 4, config)
    assert 38 in lengths and 6 in lengths  # the cap of max_length 40 and 8
    assert any(n < 6 for n in lengths)
    assert stopped_early and pad_matters


class EndHeavy:
    """From the second step on, [SEP] and [PAD] are every beam's two best tokens."""

    def __init__(self):
        g = torch.Generator().manual_seed(7)
        self.first = torch.randn(VOCAB, generator=g)
        self.later = torch.randn(VOCAB, generator=g)
        self.later[[SPECIAL.sep, SPECIAL.pad]] = torch.tensor([12.0, 11.0])

    def step(self, tokens):
        base = self.first if tokens.shape[1] == 1 else self.later
        return base.expand(tokens.shape[0], -1).clone()

    __call__ = step

    def reorder(self, beam_index):
        pass


def test_where_marias_beam_runs_short_ours_keeps_the_best_ended_hypothesis():
    """2K candidates that are all end tokens leave Maria's next beam empty: its code stops on
    an assert. Ours pads the beam and returns the best hypothesis offered so far."""
    config = GenerationConfig(num_beams=3, max_length=10, repetition_penalty=1.0)
    with pytest.raises(AssertionError):
        maria_decode(EndHeavy(), 1, config)
    [found] = ours(EndHeavy(), 1, config)
    scorer = EndHeavy()
    first = torch.log_softmax(scorer.first, -1)
    later = torch.log_softmax(scorer.later, -1)
    ends = (SPECIAL.sep, SPECIAL.pad)
    kept = [int(t) for t in first.topk(2 * config.num_beams).indices if int(t) not in ends][: config.num_beams]
    offered = {(): max(float(first[e]) for e in ends)}  # length 1 ([CLS])
    offered.update({(t,): (float(first[t]) + float(later[SPECIAL.sep])) / 2**config.length_penalty for t in kept})
    assert found == list(max(offered, key=offered.get))


def test_defaults_are_marias_arguments():
    """run_dialog_generate.py: --max_gen_length 40, --num_beams 5, --repetition_penalty 3,
    --length_penalty 0.3; no minimum length, no n-gram or special-token bans."""
    c = GenerationConfig()
    assert (c.max_length, c.num_beams, c.repetition_penalty, c.length_penalty) == (40, 5, 3.0, 0.3)
    assert (c.min_length, c.no_repeat_ngram_size, c.ban_special_tokens) == (0, 0, False)
