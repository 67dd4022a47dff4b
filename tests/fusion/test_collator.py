"""Maria's sequence building and masking (fusion.collator)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fusion.collator import (
    IGNORE_INDEX,
    SpecialIds,
    build_attention_mask,
    choose_positions,
    collate_examples,
    uniform_subsample,
)
from fusion.configuration_maria import (
    AUDIO,
    CONTEXT,
    KNOWLEDGE,
    RESPONSE,
    VISION,
    MariaConfig,
)
from tiktalk.models.modalities import MODALITIES, parse_modalities
from tiktalk.models.tokenization import CharEncoder, build_char_tokenizer
from tiktalk.types import DialogueExample

ALL_MIXES = [
    combo for n in range(1, len(MODALITIES) + 1) for combo in itertools.combinations(MODALITIES, n)
]


@pytest.fixture(scope="module")
def encoder():
    return CharEncoder(build_char_tokenizer())


@pytest.fixture(scope="module")
def special(encoder):
    return SpecialIds.from_encoder(encoder)


def make_examples(n=4, seed=0, with_response=True):
    rng = np.random.default_rng(seed)
    chars = "你好我们今天视频真好笑哈哈朋友天气不错想去玩吃饭"
    def text(k):
        return "".join(rng.choice(list(chars), size=k))
    out = []
    for i in range(n):
        out.append(
            DialogueExample(
                dialogue_id=f"d{i}",
                context=[text(3 + i) for _ in range(1 + i % 3)],
                response=text(2 + 2 * i) if with_response else None,
                frames=None if i == 1 else rng.normal(size=(2 + i, 2048)).astype(np.float32),
                audio=None if i == 2 else rng.normal(size=(1 + 2 * i, 128)).astype(np.float32),
                knowledge=None if i == 0 else text(4 + i),
            )
        )
    return out


def reference_mask(segments: list[int]) -> list[list[bool]]:
    """The SPEC's rule, one position pair at a time."""
    n = len(segments)
    out = [[False] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if segments[i] < 0 or segments[j] < 0:
                continue
            if segments[i] == RESPONSE:
                out[i][j] = segments[j] != RESPONSE or j <= i
            else:
                out[i][j] = segments[j] != RESPONSE
    return out


@pytest.mark.parametrize("modalities", ALL_MIXES, ids=["+".join(m) for m in ALL_MIXES])
@pytest.mark.parametrize("include_response", [True, False])
def test_vectorised_mask_equals_double_loop(modalities, include_response, encoder):
    config = MariaConfig(modalities=parse_modalities(modalities), text_budget=40, response_budget=12)
    batch = collate_examples(make_examples(), encoder, config, train=False, include_response=include_response)
    segments = batch["segment_ids"]
    assert batch["attention_mask"].shape == (4, segments.shape[1], segments.shape[1])
    for b in range(segments.shape[0]):
        expected = torch.tensor(reference_mask(segments[b].tolist()))
        assert torch.equal(batch["attention_mask"][b], expected)
    present = set(segments.unique().tolist())
    assert (VISION in present) == ("vision" in modalities)
    assert (AUDIO in present) == ("audio" in modalities)
    assert (KNOWLEDGE in present) == ("knowledge" in modalities)
    assert (CONTEXT in present) == ("text" in modalities)
    assert (RESPONSE in present) == include_response


def test_layout_positions_types_and_features(encoder, special):
    config = MariaConfig(modalities=parse_modalities("T+I+A+K"), text_budget=60, response_budget=10)
    examples = make_examples()
    batch = collate_examples(examples, encoder, config, train=False)
    R = config.response_budget
    ids, types, pos = batch["input_ids"], batch["token_type_ids"], batch["position_ids"]
    seg = batch["segment_ids"]
    text_len = ids.shape[1]
    for b, ex in enumerate(examples):
        response = encoder.encode(ex.response)
        assert ids[b, : len(response) + 2].tolist() == [special.cls, *response, special.sep]
        assert (ids[b, len(response) + 2 : R] == special.pad).all()
        context = [i for t in ex.context for i in [*encoder.encode(t), special.sep]]
        knowledge = encoder.encode(ex.knowledge) + [special.sep] if ex.knowledge else []
        assert ids[b, R : R + len(context) + len(knowledge)].tolist() == context + knowledge
        assert pos[b, : len(response) + 2].tolist() == list(range(len(response) + 2))
        # source positions start at the response budget, whatever the response length
        assert pos[b, R : R + len(context)].tolist() == list(range(R, R + len(context)))
        assert (types[b, R : R + len(context)] == CONTEXT).all()
        assert (types[b, R + len(context) : R + len(context) + len(knowledge)] == KNOWLEDGE).all()
        n_frames = 0 if ex.frames is None else ex.frames.shape[0]
        assert batch["frame_mask"][b].sum() == n_frames
        if n_frames:
            np.testing.assert_array_equal(batch["frames"][b, :n_frames].numpy(), ex.frames)
        assert (seg[b, text_len : text_len + batch["frames"].shape[1]] == torch.where(batch["frame_mask"][b], VISION, -1)).all()
        n_audio = 0 if ex.audio is None else ex.audio.shape[0]
        assert batch["audio_mask"][b].sum() == n_audio
    assert "labels" not in batch


def test_knowledge_budget_is_fixed_and_the_context_takes_the_rest(encoder, special):
    config = MariaConfig(modalities=parse_modalities("T+K"), text_budget=30, response_budget=10, knowledge_share=0.25)
    assert config.knowledge_tokens == 4  # 0.25 x 20 source tokens, less the [SEP]
    context = ["一二三四五六七八九十", "甲乙丙丁戊己庚辛壬癸"]
    context_ids = encoder.encode(context[0]) + [special.sep] + encoder.encode(context[1]) + [special.sep]
    long = DialogueExample("x", context=context, response="好" * 50, knowledge="子丑，寅卯辰；巳午未申")
    ids = collate_examples([long], encoder, config, train=False)["input_ids"][0].tolist()
    assert ids[:10] == [special.cls] + encoder.encode("好" * 8) + [special.sep]  # response cut to fit
    # knowledge over budget loses whole trailing pieces (子丑 fits, 子丑，寅卯辰 does not)
    assert ids[10:27] == context_ids[-17:]
    assert ids[27:] == encoder.encode("子丑") + [special.sep]
    # one piece longer than the budget: no knowledge at all, never part of the piece
    one_piece = DialogueExample("y", context=context, knowledge="子丑寅卯辰巳午未申酉戌亥")
    ids = collate_examples([one_piece], encoder, config, train=False)["input_ids"][0].tolist()
    assert ids == context_ids[-20:]
    # without a context segment knowledge may use the whole source budget
    assert MariaConfig(modalities=parse_modalities("K"), text_budget=30, response_budget=10).knowledge_tokens == 19
    with pytest.raises(ValueError, match=r"knowledge_share \(0.05\) .* leaves no knowledge token"):
        MariaConfig(modalities=parse_modalities("T+K"), text_budget=30, response_budget=10, knowledge_share=0.05)


def test_bad_feature_shape_names_example_and_shape(encoder):
    config = MariaConfig(modalities=parse_modalities("T+I"))
    bad = DialogueExample("bad-7", context=["你好"], response="好", frames=np.zeros((3, 512), np.float32))
    with pytest.raises(ValueError, match=r"'bad-7'.*frames has shape \(3, 512\), expected \(n, 2048\)"):
        collate_examples([bad], encoder, config)


def test_uniform_subsample_keeps_ends():
    rows = np.arange(120, dtype=np.float32)[:, None]
    picked = uniform_subsample(rows, 50)[:, 0]
    assert len(picked) == 50 and picked[0] == 0 and picked[-1] == 119
    assert np.all(np.diff(picked) > 0)
    assert uniform_subsample(rows[:7], 50).shape == (7, 1)


def test_masking_is_deterministic_under_a_seed(encoder):
    config = MariaConfig(modalities=parse_modalities("T+I+A+K"), text_budget=60, response_budget=16)
    examples = make_examples()
    first = collate_examples(examples, encoder, config, generator=torch.Generator().manual_seed(3))
    second = collate_examples(examples, encoder, config, generator=torch.Generator().manual_seed(3))
    third = collate_examples(examples, encoder, config, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["labels"], third["labels"])


def test_labels_and_objective_masks(encoder, special):
    config = MariaConfig(modalities=parse_modalities("T+K"), text_budget=60, response_budget=16)
    examples = make_examples()
    clean = collate_examples(examples, encoder, config, train=False)
    batch = collate_examples(examples, encoder, config, generator=torch.Generator().manual_seed(0))
    labels = batch["labels"]
    chosen = labels != IGNORE_INDEX
    assert torch.equal(chosen, batch["mrp_mask"] | batch["mcp_mask"] | batch["mkp_mask"])
    assert torch.equal(labels[chosen], clean["input_ids"][chosen])
    assert torch.equal(batch["input_ids"][~chosen], clean["input_ids"][~chosen])
    seg = clean["segment_ids"][:, : labels.shape[1]]
    assert (seg[batch["mrp_mask"]] == RESPONSE).all()
    assert (seg[batch["mcp_mask"]] == CONTEXT).all()
    assert (seg[batch["mkp_mask"]] == KNOWLEDGE).all()
    assert not (clean["input_ids"][batch["mrp_mask"]] == special.cls).any()
    assert not (clean["input_ids"][batch["mkp_mask"]] == special.sep).any()
    # Maria's counts (run_dialog_generate.py tensorize_example), Python's round:
    # response min(max(round(0.7 * seq_a_len), 1), 300) with seq_a_len = [CLS] + n + [SEP];
    # context max(round(0.15 * n_context), 1) over every context token but the closing [SEP]
    for b, ex in enumerate(examples):
        seq_a_len = len(encoder.encode(ex.response)) + 2
        assert int(batch["mrp_mask"][b].sum()) == min(max(round(0.7 * seq_a_len), 1), 300)
        n_context = int((seg[b] == CONTEXT).sum()) - 1
        assert int(batch["mcp_mask"][b].sum()) == max(round(0.15 * n_context), 1)


def test_mcp_masks_the_separators_between_turns_never_the_closing_one(encoder, special):
    config = MariaConfig(modalities=parse_modalities("T"), text_budget=60, response_budget=16, mcp_prob=0.99)
    example = DialogueExample("s", context=["你好", "我们", "今天"], response="好")
    clean = collate_examples([example], encoder, config, train=False)
    inner_seps = closing = 0
    for seed in range(20):
        batch = collate_examples([example], encoder, config, generator=torch.Generator().manual_seed(seed))
        is_context = clean["segment_ids"][0, : clean["input_ids"].shape[1]] == CONTEXT
        positions = is_context.nonzero().flatten()
        masked = batch["mcp_mask"][0]
        assert int(masked.sum()) == round(0.99 * 8)  # 6 characters + 2 inner [SEP]s, of 9 context tokens
        inner_seps += int(masked[positions[[2, 5]]].sum())
        closing += int(masked[positions[-1]])
    assert inner_seps == 40 and closing == 0
    assert (clean["input_ids"][0, positions[[2, 5, 8]]] == special.sep).all()


def test_masking_rates_and_80_10_10_split(encoder, special):
    config = MariaConfig(modalities=parse_modalities("T+K"), text_budget=120, response_budget=40, knowledge_share=0.5)
    rng = np.random.default_rng(1)
    chars = list("你好我们今天视频真好笑哈哈朋友天气不错想去玩吃饭")
    examples = [
        DialogueExample(f"e{i}", context=["".join(rng.choice(chars, 39))], response="".join(rng.choice(chars, 19)),
                        knowledge="".join(rng.choice(chars, 39)))
        for i in range(400)
    ]
    clean = collate_examples(examples, encoder, config, train=False)
    batch = collate_examples(examples, encoder, config, generator=torch.Generator().manual_seed(11))
    seg = clean["segment_ids"][:, : clean["input_ids"].shape[1]]
    is_sep = clean["input_ids"] == special.sep
    # exact counts per row: 19 response chars -> round(0.7 * 21) = 15; 39 context chars -> 6; 39 knowledge -> 6
    assert (batch["mrp_mask"].sum(1) == 15).all()
    assert (batch["mcp_mask"].sum(1) == 6).all()
    assert (batch["mkp_mask"].sum(1) == 6).all()
    # every response slot, [SEP] included, is chosen at the same rate (uniform choice)
    response_rate = batch["mrp_mask"][:, 1:21].float().mean(0)
    assert (response_rate - 0.7).abs().max() < 0.1
    assert batch["mrp_mask"][:, 20].any()  # [SEP] can be masked
    assert not batch["mrp_mask"][:, 0].any()  # [CLS] never
    assert not (batch["mcp_mask"] & is_sep).any()
    chosen = batch["labels"] != IGNORE_INDEX
    n = int(chosen.sum())
    became_mask = (batch["input_ids"] == special.mask) & chosen
    unchanged = (batch["input_ids"] == clean["input_ids"]) & chosen
    changed = chosen & ~became_mask & ~unchanged
    # binomial standard error at n ~ 10k is ~0.4%: 2% tolerance is > 4 sigma
    assert abs(became_mask.sum() / n - 0.8) < 0.02
    assert abs(changed.sum() / n - 0.1) < 0.02
    assert abs(unchanged.sum() / n - 0.1) < 0.025  # a random token may equal the original
    assert (batch["input_ids"][changed] >= special.first_regular).all()
    assert (seg >= -1).all()


def test_choose_positions_exact_counts_and_at_least_one():
    candidates = torch.zeros((3, 10), dtype=torch.bool)
    candidates[0, :1] = True
    candidates[1, 2:9] = True
    g = torch.Generator().manual_seed(0)
    picked = choose_positions(candidates, 0.15, at_least_one=True, generator=g)
    assert picked.sum(1).tolist() == [1, 1, 0]
    assert not (picked & ~candidates).any()
    picked = choose_positions(candidates, 0.15, at_least_one=False, generator=g)
    assert picked.sum(1).tolist() == [0, 1, 0]
    # Python's round halves to even: 0.5 * 5 = 2.5 -> 2, 0.5 * 7 = 3.5 -> 4; count_extra adds
    # to n for the count only, and the count never exceeds the candidates
    for n, extra, expected in ((5, 0, 2), (7, 0, 4), (5, 1, 3), (1, 1, 1), (0, 1, 0)):
        row = torch.zeros((1, 10), dtype=torch.bool)
        row[0, :n] = True
        assert int(choose_positions(row, 0.5, False, g, count_extra=extra).sum()) == expected
    assert int(choose_positions(candidates[1:2], 1.0, False, g, count_extra=3).sum()) == 7


def test_train_requires_responses(encoder):
    config = MariaConfig(modalities=parse_modalities("T"))
    with pytest.raises(ValueError, match="'d0' has no response to train on"):
        collate_examples(make_examples(with_response=False), encoder, config, train=True)
    # generation batches drop the response segment
    batch = collate_examples(make_examples(with_response=False), encoder, config, train=False)
    assert not (batch["segment_ids"] == RESPONSE).any()
    assert batch["position_ids"][batch["segment_ids"] >= 0].min() == config.response_budget


def test_build_attention_mask_handles_random_segment_patterns():
    g = torch.Generator().manual_seed(0)
    segments = torch.randint(-1, 5, (5, 17), generator=g)
    mask = build_attention_mask(segments)
    for b in range(5):
        assert torch.equal(mask[b], torch.tensor(reference_mask(segments[b].tolist())))


def test_frame_token_grids_become_their_mean(encoder):
    """Maria reads one vector per frame: a token grid (n, tokens, 2048) is averaged over its tokens."""
    config = MariaConfig(modalities=parse_modalities("T+I"), text_budget=60, response_budget=16)
    rng = np.random.default_rng(0)
    grid = rng.normal(size=(3, 4, 2048)).astype(np.float32)
    as_grid = collate_examples([DialogueExample("g", ["你好"], "好", frames=grid)], encoder, config, train=False)
    pooled = collate_examples([DialogueExample("g", ["你好"], "好", frames=grid.mean(1))], encoder, config, train=False)
    assert as_grid["frames"].shape == (1, 3, 2048)
    assert torch.equal(as_grid["frames"], pooled["frames"])
