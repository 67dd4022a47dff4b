"""BLIP-2 img/video: what trains, frame choice, token grids and video pooling, knowledge in the prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.blip2 import Blip2ChatConfig, Blip2ImgChat, Blip2VideoChat
from tests.baselines.examples import make_examples
from tiktalk.types import DialogueExample

TRAINABLE = {"frame_proj", "ln_vision", "query_tokens", "qformer", "language_projection"}


@pytest.fixture(scope="module")
def video() -> Blip2VideoChat:
    torch.manual_seed(0)
    return Blip2VideoChat.from_preset("tiny").eval()


@pytest.fixture(scope="module")
def img() -> Blip2ImgChat:
    torch.manual_seed(0)
    return Blip2ImgChat.from_preset("tiny").eval()


def test_defaults_are_blip2s():
    c = Blip2ChatConfig(lm_path="unused")
    assert (c.num_query_tokens, c.qformer_hidden_size, c.cross_attention_frequency) == (32, 768, 2)
    assert c.video_pooling == "features" and c.ln_vision  # the paper's "averages them"; LAVIS's LayerNorm


def test_only_qformer_queries_and_projections_train(video):
    prefixes = {n.split(".")[0] for n, p in video.named_parameters() if p.requires_grad}
    assert prefixes == TRAINABLE
    assert not any(p.requires_grad for p in video.lm.parameters())
    video.zero_grad()
    video(**video.collate(make_examples()[:2])).loss.backward()
    assert all(p.grad is None for p in video.lm.parameters())
    assert video.query_tokens.grad is not None and video.query_tokens.grad.abs().sum() > 0
    video.zero_grad()
    video.train()
    assert video.qformer.training and not video.lm.training  # frozen LM keeps eval mode
    video.eval()


def test_query_prefix_is_prepended(video):
    batch = video.collate(make_examples())
    with torch.no_grad():
        logits = video(**batch).logits
    assert logits.shape[:2] == (4, 32 + batch["input_ids"].shape[1])


def test_img_picks_one_seeded_frame(img):
    examples = make_examples()
    first = img.select_frames(examples)
    again = img.select_frames(examples)
    for ex, a, b in zip(examples, first, again, strict=True):
        if ex.frames is None:
            assert a.frames is None
            continue
        assert a.frames.shape == (1, 2048) and np.array_equal(a.frames, b.frames)
        assert any(np.array_equal(a.frames[0], f) for f in ex.frames)
    frames = np.arange(20 * 2048, dtype=np.float32).reshape(20, 2048)
    picks = {int(img.select_frames([DialogueExample(f"id{i}", ["x"], frames=frames)])[0]
                 .frames[0, 0]) // 2048 for i in range(30)}
    assert len(picks) > 3  # the choice depends on the dialogue, not a fixed index
    assert img.collate(examples)["frames"].shape[1] == 1


def variant(model, **changes):
    """The same weights under another config (pooling choices add no parameters)."""
    other = type(model)(model.config.replace(**changes), tokenizer=model.tokenizer, lm=model.lm)
    other.load_state_dict(model.state_dict())
    return other.eval()


def frames_of(ex, dim=2048):
    return torch.zeros(1, dim) if ex.frames is None else torch.from_numpy(ex.frames)


def test_video_averages_per_frame_query_outputs(video):
    video = variant(video, video_pooling="query_outputs")
    examples = make_examples()
    batch = video.collate(examples)
    with torch.no_grad():
        fast, mask = video.query_outputs(batch["frames"], batch["token_mask"], batch["frame_mask"])
        assert mask.all() and fast.shape == (4, 32, video.config.qformer_hidden_size)
        for row, ex in enumerate(examples):
            per_frame = [video._qformer(video.frame_proj(f)[None, None], torch.ones(1, 1))[0]
                         for f in frames_of(ex)]
            assert torch.allclose(fast[row], torch.stack(per_frame).mean(0), atol=1e-5)


def test_vision_tokens_pass_ln_vision_before_the_qformer(video):
    """LAVIS blip2_opt.py L110: the Q-Former cross-attends to LayerNorm-ed vision tokens."""
    tokens = torch.randn(2, 3, video.config.encoder_hidden_size) * 5 + 2
    mask = torch.ones(2, 3)
    with torch.no_grad():
        video.ln_vision.weight.mul_(1.5)  # not the identity
        queries = video.query_tokens.expand(2, -1, -1)
        direct = video.qformer(query_embeds=queries, encoder_hidden_states=video.ln_vision(tokens),
                               encoder_attention_mask=mask.long()).last_hidden_state
        raw = video.qformer(query_embeds=queries, encoder_hidden_states=tokens,
                            encoder_attention_mask=mask.long()).last_hidden_state
        assert torch.allclose(video._qformer(tokens, mask), direct, atol=1e-6)
        assert not torch.allclose(direct, raw, atol=1e-3)
        video.ln_vision.weight.div_(1.5)


def test_video_features_pooling_averages_before_the_qformer(video):
    model = variant(video, video_pooling="features")
    examples = make_examples()
    batch = model.collate(examples)
    with torch.no_grad():
        fast, _ = model.query_outputs(batch["frames"], batch["token_mask"], batch["frame_mask"])
        for row, ex in enumerate(examples):
            token = model.frame_proj(frames_of(ex)).mean(0)[None, None]  # (1, 1, enc)
            assert torch.allclose(fast[row], model._qformer(token, torch.ones(1, 1))[0], atol=1e-5)


def test_video_concat_keeps_every_frames_queries(video):
    model = variant(video, video_pooling="concat")
    examples = make_examples()
    batch = model.collate(examples)
    n_frames = batch["frames"].shape[1]  # the longest example: 8 frames
    with torch.no_grad():
        fast, mask = model.query_outputs(batch["frames"], batch["token_mask"], batch["frame_mask"])
        logits = model(**batch).logits
    assert fast.shape[:2] == (4, n_frames * 32) and logits.shape[1] == n_frames * 32 + batch["input_ids"].shape[1]
    for row, ex in enumerate(examples):
        n = 1 if ex.frames is None else len(ex.frames)
        assert mask[row].tolist() == [True] * (n * 32) + [False] * ((n_frames - n) * 32)
        with torch.no_grad():
            first = model._qformer(model.frame_proj(frames_of(ex)[:1])[None], torch.ones(1, 1))[0]
        assert torch.allclose(fast[row, :32], first, atol=1e-5)


def grid_examples(tokens=4, seed=1, scale=30.0):
    """Examples whose frames are (n, tokens, 2048) grids; large values so that the tiny random
    Q-Former's cross-attention is far from uniform (uniform attention to linear values would
    equal attention to their mean)."""
    rng = np.random.default_rng(seed)
    examples = make_examples()
    for ex in examples:
        if ex.frames is not None:
            ex.frames = (scale * rng.normal(size=(len(ex.frames), tokens, 2048))).astype(np.float32)
    return examples


def test_token_grids_reach_the_qformer_token_by_token(video, img):
    """Each frame of a grid is many vision tokens: the Q-Former cross-attends to all of them
    (not to their mean), and Livebot/Maria-style pooling of the same grid is its mean."""
    video = variant(video, video_pooling="query_outputs")
    examples = grid_examples()
    batch = video.collate(examples)
    assert batch["frames"].shape[2] == 4 and batch["token_mask"][0, :5].all()  # example 0: 5 frames
    assert batch["token_mask"][3].sum() == 1 and batch["token_mask"][3, 0, 0]  # no frames: one zero token
    with torch.no_grad():
        fast, _ = video.query_outputs(batch["frames"], batch["token_mask"], batch["frame_mask"])
        ex = examples[0]
        grid = torch.from_numpy(ex.frames)  # (F, 4, 2048)
        per_frame = torch.stack([video._qformer(video.frame_proj(g)[None], torch.ones(1, 4))[0] for g in grid])
        assert torch.allclose(fast[0], per_frame.mean(0), atol=1e-4)
        pooled = torch.stack([video._qformer(video.frame_proj(g.mean(0))[None, None], torch.ones(1, 1))[0]
                              for g in grid]).mean(0)
        assert (fast[0] - pooled).abs().max() > 0.01  # (about 2e-5 at scale 1)
    assert img.collate(examples)["frames"].shape[1:3] == (1, 4)  # blip2-img: one frame's grid


def test_knowledge_goes_into_the_prompt(video):
    ex = make_examples()[0]
    with_k = video.collate([ex])["input_ids"].shape[1]
    off = Blip2VideoChat(video.config.replace(use_knowledge=False), tokenizer=video.tokenizer,
                         lm=video.lm)
    assert off.collate([ex])["input_ids"].shape[1] < with_k


def test_generate_ignores_given_responses(video):
    kwargs = {"do_sample": False, "max_new_tokens": 4}
    assert (video.generate(make_examples(), **kwargs)
            == video.generate(make_examples(with_response=False), **kwargs))


def test_local_vision_model_feeds_the_qformer(tmp_path):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, image_size=32, patch_size=16)).save_pretrained(tmp_path)
    torch.manual_seed(0)
    model = Blip2ImgChat.from_preset("tiny", vision_model_path=str(tmp_path)).eval()
    assert not any(p.requires_grad for p in model.vision_model.parameters())
    assert model.frame_proj.out_features == 24
    with torch.no_grad():
        queries, mask = model.query_outputs(pixel_values=torch.randn(2, 3, 32, 32))
    assert queries.shape == (2, 32, model.config.qformer_hidden_size) and mask.all()
