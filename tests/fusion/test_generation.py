"""Maria decoding: cached decoding equals full recomputation; the search itself is right."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fusion.generation import CachedScorer, FullRecomputeScorer, decode_batch
from fusion.modeling_maria import MariaForDialogue
from tiktalk.models.generation import GenerationConfig, beam_search, greedy_search, process_logits
from tiktalk.models.modalities import parse_modalities
from tiktalk.types import DialogueExample

SMALL = {"text_budget": 48, "response_budget": 12}


def make_examples(n=3, seed=0):
    rng = np.random.default_rng(seed)
    chars = list("你好我们今天视频真好笑哈哈朋友天气不错想去玩吃饭")
    text = lambda k: "".join(rng.choice(chars, k))
    return [
        DialogueExample(
            dialogue_id=f"g{i}",
            context=[text(4 + 2 * i), text(3)][: 1 + i % 2],
            frames=rng.normal(size=(2 + 2 * i, 2048)).astype(np.float32),
            audio=rng.normal(size=(1 + i, 128)).astype(np.float32),
            knowledge=text(5 + i) if i != 1 else None,
        )
        for i in range(n)
    ]


def lively_model(modalities: str, sep_bias: float = 4.0) -> MariaForDialogue:
    """A tiny random model in float64 whose outputs depend on the input and that sometimes stops."""
    torch.manual_seed(0)
    model = MariaForDialogue.from_preset(
        "tiny", modalities=parse_modalities(modalities), backbone={"initializer_range": 0.3}, **SMALL
    )
    with torch.no_grad():
        model.cls.predictions.bias[model.special_ids.sep] = sep_bias
    return model.double().eval()


def source_batch(model, examples):
    batch = model.collate(examples, train=False, include_response=False)
    return {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}


MIXES = ["T", "T+I", "T+I+A+K", "T+K", "I+A"]


@pytest.mark.parametrize("modalities", ["T", "T+I+A+K", "I+A"])
def test_cached_step_logits_equal_full_recompute(modalities):
    model = lively_model(modalities)
    source = source_batch(model, make_examples())
    beams = 2
    full = FullRecomputeScorer(model, source, beams)
    cached = CachedScorer(model, source, beams, max_length=SMALL["response_budget"])
    g = torch.Generator().manual_seed(0)
    tokens = torch.full((3 * beams, 1), model.special_ids.cls)
    with torch.no_grad():
        for _ in range(6):
            torch.testing.assert_close(cached.step(tokens), full.step(tokens), rtol=1e-9, atol=1e-9)
            # reorder inside each example, as beam search does
            perm = torch.cat([b * beams + torch.randperm(beams, generator=g) for b in range(3)])
            tokens = torch.cat([tokens[perm], torch.randint(2000, 9000, (3 * beams, 1), generator=g)], dim=1)
            cached.reorder(perm)
            full.reorder(perm)


@pytest.mark.parametrize("modalities", MIXES)
@pytest.mark.parametrize("num_beams", [1, 3])
def test_cached_decoding_yields_the_tokens_of_full_recompute(modalities, num_beams):
    model = lively_model(modalities)
    source = source_batch(model, make_examples())
    config = GenerationConfig(num_beams=num_beams, max_length=9, no_repeat_ngram_size=2)
    cached = decode_batch(model, source, config)
    full = decode_batch(model, source, GenerationConfig(**{**config.__dict__, "use_cache": False}))
    assert cached == full
    assert len(cached) == 3 and all(len(seq) <= config.max_length - 2 for seq in cached)
    assert all(model.special_ids.sep not in seq and model.special_ids.pad not in seq for seq in cached)


def test_decoding_is_not_trivial():
    """The equivalence tests above mean something: outputs differ by example and some stop early."""
    model = lively_model("T+I+A+K")
    source = source_batch(model, make_examples())
    for beams in (1, 3):
        seqs = decode_batch(model, source, GenerationConfig(num_beams=beams, max_length=12))
        assert len({tuple(s) for s in seqs}) == 3
        assert any(len(s) < 10 for s in seqs) and any(len(s) == 10 for s in seqs)  # ended; at the cap


def test_banning_specials_keeps_them_out():
    model = lively_model("T+I")
    with torch.no_grad():  # make [MASK] and [UNK] the likeliest tokens
        model.cls.predictions.bias[[model.special_ids.mask, model.text_encoder.unk_id]] = 50.0
    source = source_batch(model, make_examples())
    free = decode_batch(model, source, GenerationConfig(num_beams=2, max_length=8))
    banned = decode_batch(model, source, GenerationConfig(num_beams=2, max_length=8, ban_special_tokens=True))
    specials = model.text_encoder.special_ids
    assert any(t in specials for seq in free for t in seq)  # Maria's default bans nothing
    assert not any(t in specials for seq in banned for t in seq) and all(banned)


class MarkovScorer:
    """Fake model: logits depend on the step and the last token only (a seeded table)."""

    def __init__(self, n_rows, vocab, steps, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn((steps, vocab, vocab), generator=g, dtype=torch.float64) * 2
        self.n_rows = n_rows

    def step(self, tokens):
        t = tokens.shape[1] - 1
        return self.table[t, tokens[:, -1]]

    def reorder(self, beam_index):
        pass


def exhaustive_best(table, vocab, special, max_length, length_penalty, allowed):
    """The best hypothesis by Maria's rules, over every sequence: a prefix of non-end tokens
    followed by an end token, or any prefix of the longest length (max_length - 2) followed by
    any token (which counts in the score but is dropped). Score: sum log-prob / (len + 1) ** lp."""
    ends = (special.sep, special.pad)
    best, best_seq = -math.inf, None
    for length in range(max_length - 1):
        for prefix in itertools.product([t for t in allowed if t not in ends], repeat=length):
            tokens = [special.cls, *prefix]
            total = 0.0
            for t, token in enumerate(prefix):
                logits = table[t, tokens[t]].clone()
                logits[[special.cls, special.mask]] = -math.inf
                total += float(torch.log_softmax(logits, -1)[token])
            logits = table[length, tokens[-1]].clone()
            logits[[special.cls, special.mask]] = -math.inf
            last = torch.log_softmax(logits, -1)
            finals = allowed if length == max_length - 2 else ends
            for token in finals:
                score = (total + float(last[token])) / ((length + 1) ** length_penalty)
                if score > best:
                    best, best_seq = score, list(prefix)
    return best_seq


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("length_penalty", [0.0, 0.3, 1.0])
def test_wide_beam_finds_the_exhaustive_optimum(seed, length_penalty):
    special = SimpleNamespace(cls=0, sep=1, pad=2, mask=3)
    vocab, max_length = 6, 6  # tokens {1 (SEP), 2 (PAD), 4, 5}, up to 4 kept
    scorer = MarkovScorer(16, vocab, max_length, seed)
    config = GenerationConfig(num_beams=16, max_length=max_length, repetition_penalty=1.0,
                              length_penalty=length_penalty)
    banned = torch.tensor([0, 3])
    found = beam_search(scorer, 1, config, special, banned, torch.device("cpu"))[0]
    assert found == exhaustive_best(scorer.table, vocab, special, max_length, length_penalty, allowed=[1, 2, 4, 5])


def test_greedy_follows_argmax_of_processed_logits():
    special = SimpleNamespace(cls=0, sep=1, pad=2, mask=3)
    scorer = MarkovScorer(2, 6, 6, seed=5)
    config = GenerationConfig(num_beams=1, max_length=6, repetition_penalty=1.0)
    out = greedy_search(scorer, 2, config, special, torch.tensor([0, 3]), torch.device("cpu"))
    token, expected = 0, []
    for t in range(4):  # at most max_length - 2 tokens
        logits = scorer.table[t, token].clone()
        logits[[0, 3]] = -math.inf
        token = int(logits.argmax())
        if token in (1, 2):  # [SEP] and [PAD] end a response
            break
        expected.append(token)
    assert out == [expected, expected]


def test_process_logits_penalties_and_bans():
    config = GenerationConfig(repetition_penalty=2.0, no_repeat_ngram_size=2, min_length=3)
    logits = torch.tensor([[1.0, 4.0, -2.0, 3.0, 0.5, 6.0, 2.0]])
    tokens = torch.tensor([[0, 3, 4, 3, 2]])  # [CLS]=0 then 3 4 3 2 (4 generated)
    out = process_logits(logits, tokens, config, end_ids=(1, 6), banned_ids=torch.tensor([5]))
    assert out[0, 5] == -math.inf  # banned
    assert out[0, 3] == 1.5  # generated before: 3.0 / 2; no 2-gram starts with the last token 2
    # repetition penalty, as Maria: every token of the sequence, [CLS] included -> positive / 2, negative * 2
    assert out[0, 2] == -4.0 and out[0, 4] == 0.25 and out[0, 0] == 0.5
    assert out[0, 1] == 4.0 and out[0, 6] == 2.0  # untouched; min_length reached (4 >= 3)
    short = process_logits(logits, tokens[:, :3], config, end_ids=(1, 6), banned_ids=torch.tensor([5]))
    assert short[0, 1] == -math.inf and short[0, 6] == -math.inf  # end tokens forbidden before min_length


def test_no_repeat_ngram_bans_exactly_the_completing_token():
    config = GenerationConfig(repetition_penalty=1.0, no_repeat_ngram_size=2, min_length=0)
    logits = torch.zeros((1, 8))
    tokens = torch.tensor([[0, 5, 6, 7, 5]])  # "5 6" seen; last token 5 -> 6 banned
    out = process_logits(logits, tokens, config, end_ids=(1, 2), banned_ids=torch.tensor([], dtype=torch.long))
    assert torch.isinf(out[0]).nonzero().flatten().tolist() == [6]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_beams": 0}, r"num_beams must be >= 1, got 0"),
        ({"max_length": 2}, r"max_length \(2\) must leave room"),
        ({"min_length": 39}, r"min_length \(39\) must be in \[0, max_length - 2 = 38\]"),
        ({"repetition_penalty": 0}, r"repetition_penalty must be > 0"),
    ],
)
def test_generation_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**kwargs)


def test_generate_strings_respects_budget_and_restores_mode():
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+I+A+K"), **SMALL)
    model.train()
    out = model.generate(make_examples(), num_beams=2, max_length=8, batch_size=2)
    assert len(out) == 3 and all(isinstance(s, str) and len(s) <= 6 for s in out)
    assert model.training
    with pytest.raises(ValueError, match=r"max_length \(40\) exceeds the response segment \(12 slots\)"):
        model.generate(make_examples(), num_beams=1)
