"""DialoGPT (GPT2-chitchat): sequence layout, labels, decoding rules, checkpoint loading."""

from __future__ import annotations

import pytest
import torch

from baselines.dialogpt import DialoGPTChat, DialoGPTConfig, filter_logits
from tests.baselines.examples import make_examples
from tiktalk.types import DialogueExample


@pytest.fixture(scope="module")
def model() -> DialoGPTChat:
    torch.manual_seed(0)
    return DialoGPTChat.from_preset("tiny").eval()


def test_defaults_are_gpt2_chitchat():
    c = DialoGPTConfig()
    assert (c.top_k, c.max_new_tokens, c.max_history, c.loss_on) == (8, 25, 3, "all")
    assert (c.n_embd, c.n_layer, c.n_head, c.n_positions) == (768, 10, 12, 300)


def test_sequence_is_cls_turns_sep_and_loss_covers_everything(model):
    ex = DialogueExample("x", ["你好", "在吗"], "在的")
    batch = model.collate([ex])
    tokens = model.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    assert tokens == ["[CLS]", "你", "好", "[SEP]", "在", "吗", "[SEP]", "在", "的", "[SEP]"]
    assert torch.equal(batch["labels"], batch["input_ids"])


def test_response_only_loss_labels_response_and_closing_sep(model):
    m = DialoGPTChat(model.config.replace(loss_on="response"), tokenizer=model.tokenizer,
                     gpt2=model.gpt2)
    batch = m.collate([DialogueExample("x", ["你好", "在吗"], "在的")])
    labelled = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert m.tokenizer.convert_ids_to_tokens(labelled) == ["在", "的", "[SEP]"]


def test_long_dialogue_keeps_cls_and_the_end(model):
    m = DialoGPTChat(model.config.replace(max_len=12), tokenizer=model.tokenizer, gpt2=model.gpt2)
    batch = m.collate([DialogueExample("x", ["一二三四五六七八九十"], "好的呀")])
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 12 and ids[0] == m.cls_id
    assert m.tokenizer.convert_ids_to_tokens(ids[-4:]) == ["好", "的", "呀", "[SEP]"]


def test_prompt_is_the_last_three_utterances(model):
    ex = DialogueExample("x", ["一", "二", "三", "四", "五"])
    assert model._prompt_ids(ex) == model.dialogue_ids(["三", "四", "五"])


def _slow_top_k_top_p(logits: torch.Tensor, k: int, p: float) -> set[int]:
    order = sorted(range(len(logits)), key=lambda i: -float(logits[i]))[:k]
    probs = torch.softmax(logits[order], -1).tolist()
    kept, total = [], 0.0
    for i, prob in zip(order, probs, strict=True):
        kept.append(i)
        total += prob
        if total > p:
            break
    return set(kept)


@pytest.mark.parametrize(("k", "p"), [(8, 0.0), (8, 0.5), (3, 0.9), (0, 0.3)])
def test_filter_logits_matches_slow_definition(k, p):
    logits = torch.randn(50, generator=torch.Generator().manual_seed(k))
    kept = set(torch.isfinite(filter_logits(logits, k, p)).nonzero().flatten().tolist())
    expected = _slow_top_k_top_p(logits, k or 50, p if 0 < p < 1 else 1.1)
    assert kept == expected


def _sep_logit_hook(model, value):
    def hook(module, args, output):
        output.logits[..., model.sep_id] = value
        return output

    return model.gpt2.register_forward_hook(hook)


def test_cached_decoding_matches_full_recompute(model):
    prompt = model._prompt_ids(make_examples()[0])
    handle = _sep_logit_hook(model, -1e4)  # never stop early: compare 10 full steps
    try:
        greedy = model.generate_ids(prompt, do_sample=False, max_new_tokens=10)
        assert len(greedy) == 10
        assert greedy == model.generate_ids(prompt, do_sample=False, max_new_tokens=10,
                                            use_cache=False)
        gen = torch.Generator
        sampled = model.generate_ids(prompt, gen().manual_seed(5), max_new_tokens=10)
        assert sampled == model.generate_ids(prompt, gen().manual_seed(5), max_new_tokens=10,
                                             use_cache=False)
    finally:
        handle.remove()


def test_sampling_is_seeded_and_stays_in_top_k(model):
    examples = make_examples(with_response=False)
    assert (model.generate(examples, seed=3, max_new_tokens=6)
            == model.generate(examples, seed=3, max_new_tokens=6))
    prompt = model._prompt_ids(examples[0])
    first = model.generate_ids(prompt, torch.Generator().manual_seed(1), max_new_tokens=1)
    with torch.no_grad():
        logits = model.gpt2(input_ids=torch.tensor([prompt])).logits[0, -1]
    logits[model.unk_id] = -float("inf")
    assert first[0] in torch.topk(logits, 8).indices.tolist()
    assert len(model.generate_ids(prompt, do_sample=False)) <= 25


def test_decoding_stops_at_sep(model):
    handle = _sep_logit_hook(model, 1e4)
    try:
        assert model.generate(make_examples(with_response=False), seed=0) == [""] * 4
    finally:
        handle.remove()


def test_loads_a_gpt2_chitchat_checkpoint(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tiktalk.models.tokenization import char_vocab

    torch.manual_seed(0)
    vocab = char_vocab()
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=16,
                                      n_layer=1, n_head=2)).eval()
    gpt2.save_pretrained(tmp_path)  # config.json + model.safetensors, as a chitchat dir
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    model = DialoGPTChat.from_pretrained(tmp_path, top_k=5).eval()
    assert (model.config.n_embd, model.config.n_positions, model.config.top_k) == (16, 64, 5)
    assert len(model.tokenizer) == len(vocab)
    batch = model.collate(make_examples())
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, gpt2(input_ids=batch["input_ids"],
                              attention_mask=batch["attention_mask"]).logits)


def test_missing_directory_kind_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a saved dialogpt model"):
        DialoGPTChat.from_pretrained(tmp_path)
