"""Livebot: SPEC dimensions, causal decoding, frame handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines._common import stack_frames
from baselines.livebot import LivebotChat, LivebotConfig
from tests.baselines.examples import make_examples
from tiktalk.types import DialogueExample


@pytest.fixture(scope="module")
def model() -> LivebotChat:
    torch.manual_seed(0)
    return LivebotChat.from_preset("tiny").eval()


def test_defaults_follow_the_spec():
    c = LivebotConfig()
    assert (c.d_model, c.d_ff, c.n_heads, c.n_layers, c.dropout) == (512, 2048, 8, 6, 0.1)
    assert (c.frame_dim, c.max_frames) == (2048, 50)


def test_stacks_have_the_spec_attention_layout(model):
    n = model.config.n_layers
    assert len(model.video_encoder.blocks) == len(model.context_encoder.blocks) == n
    assert len(model.decoder.blocks) == n
    assert [len(s.blocks[0].cross_attns) for s in
            (model.video_encoder, model.context_encoder, model.decoder)] == [0, 1, 2]
    assert model.frame_proj.in_features == 2048


def test_decoding_is_causal(model):
    batch = model.collate(make_examples())
    changed = batch["decoder_ids"].clone()
    t = 3
    changed[:, t] = (changed[:, t] + 7) % len(model.tokenizer)
    with torch.no_grad():
        a = model(**batch).logits
        b = model(**{**batch, "decoder_ids": changed}).logits
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6)
    assert not torch.allclose(a[:, t:], b[:, t:])


def test_greedy_generate_matches_step_by_step_argmax(model):
    ex = make_examples(with_response=False)[2]
    text = model.generate([ex], max_new_tokens=4)[0]
    batch = model.collate([ex], train=False)
    with torch.no_grad():
        video, context = model.encode(batch["frames"], batch["frame_mask"], batch["context_ids"])
        ids = [model.bos_id]
        for _ in range(4):
            nxt = int(model.decode_logits(torch.tensor([ids]), video, context)[0, -1].argmax())
            if nxt == model.eos_id:
                break
            ids.append(nxt)
    from baselines._common import decode

    assert text == decode(model.tokenizer, ids[1:])


def test_frames_are_subsampled_and_missing_video_is_one_zero_frame():
    many = DialogueExample("a", ["x"], frames=np.arange(80 * 4, dtype=np.float32).reshape(80, 4))
    none = DialogueExample("b", ["y"])
    feats, mask = stack_frames([many, none], max_frames=50, frame_dim=4)
    assert feats.shape == (2, 50, 4)
    assert mask[0].all() and mask[1].tolist() == [True] + [False] * 49
    assert feats[0, 0, 0] == 0 and feats[0, -1, 0] == 79 * 4  # first and last frame kept
    assert not feats[1].any()


def test_wrong_frame_width_names_the_example():
    bad = DialogueExample("bad-id", ["x"], frames=np.zeros((3, 10), dtype=np.float32))
    with pytest.raises(ValueError, match=r"'bad-id'.*\(3, 10\)"):
        stack_frames([bad], max_frames=50, frame_dim=2048)


def test_frames_carry_no_position_as_in_livebot(model):
    """Livebot's VideoEncoder adds no position encoding: reordering the frames reorders the
    encoded video and leaves the context encoding unchanged."""
    batch = model.collate(make_examples()[:1])
    frames, mask, context = batch["frames"], batch["frame_mask"], batch["context_ids"]
    order = torch.randperm(frames.shape[1], generator=torch.Generator().manual_seed(0))
    assert not torch.equal(order, torch.arange(len(order)))
    with torch.no_grad():
        (video, _), (ctx, _) = model.encode(frames, mask, context)
        (video_p, _), (ctx_p, _) = model.encode(frames[:, order], mask[:, order], context)
    torch.testing.assert_close(video_p, video[:, order], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ctx_p, ctx, atol=1e-5, rtol=1e-5)
