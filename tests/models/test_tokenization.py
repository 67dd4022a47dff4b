"""The generated bert-base-chinese-like character vocabulary and the char-level fast path."""

from __future__ import annotations

import pytest

from tiktalk.models.tokenization import (
    CHAR_VOCAB_SIZE,
    CJK_FIRST,
    CJK_LAST,
    FULLWIDTH_PUNCTUATION,
    CharEncoder,
    build_char_tokenizer,
    char_vocab,
    load_tokenizer,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_char_tokenizer(tmp_path_factory.mktemp("vocab") / "chars")


def test_vocab_layout_matches_bert_base_chinese_specials(tokenizer):
    vocab = char_vocab()
    assert len(vocab) == len(set(vocab)) == CHAR_VOCAB_SIZE == len(tokenizer)
    # bert-base-chinese ids of the specials
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id) == (0, 100, 101)
    assert (tokenizer.sep_token_id, tokenizer.mask_token_id) == (102, 103)
    assert vocab[1] == "[unused1]" and vocab[99] == "[unused99]"
    for ch in (chr(CJK_FIRST), chr(CJK_LAST), "a", "Z", "~", "##a", "##7", *FULLWIDTH_PUNCTUATION):
        assert ch in tokenizer.get_vocab(), ch
    assert chr(CJK_LAST + 1) not in tokenizer.get_vocab()


def test_char_encoder_agrees_with_bert_tokenizer_on_chinese(tokenizer):
    text = "今天的视频太好笑了，哈哈！你觉得呢？《三体》真好看……"
    encoder = CharEncoder(tokenizer)
    assert encoder.encode(text) == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    assert encoder.decode(encoder.encode(text)) == text
    assert tokenizer.unk_token_id not in encoder.encode(text)


def test_char_encoder_lowercases_drops_spaces_and_maps_unknown(tokenizer):
    encoder = CharEncoder(tokenizer)
    ids = encoder.encode("Ab c\u3000😀")
    assert ids == [tokenizer.convert_tokens_to_ids("a"), tokenizer.convert_tokens_to_ids("b"),
                   tokenizer.convert_tokens_to_ids("c"), tokenizer.unk_token_id]
    # BertTokenizer spells ASCII words with ## pieces; decode glues them back.
    pieces = tokenizer.tokenize("hello")
    assert pieces == ["h", "##e", "##l", "##l", "##o"]
    assert encoder.decode(tokenizer.convert_tokens_to_ids(pieces)) == "hello"
    assert encoder.decode([101, *encoder.encode("好"), 102, 0]) == "好"


def test_cached_directory_is_reused_and_repaired(tmp_path):
    directory = tmp_path / "v"
    build_char_tokenizer(directory)
    vocab_file = directory / "vocab.txt"
    stamp = vocab_file.stat().st_mtime_ns
    build_char_tokenizer(directory)
    assert vocab_file.stat().st_mtime_ns == stamp  # reused, not rewritten
    vocab_file.write_text("[PAD]\n[UNK]\n", encoding="utf-8")  # a stale / broken vocab
    assert len(build_char_tokenizer(directory)) == CHAR_VOCAB_SIZE


def test_load_tokenizer_checks_size_and_presence(tokenizer, tmp_path):
    tokenizer.save_pretrained(str(tmp_path / "tok"))
    assert len(load_tokenizer(tmp_path / "tok", expected_vocab_size=CHAR_VOCAB_SIZE)) == CHAR_VOCAB_SIZE
    with pytest.raises(ValueError, match=rf"has {CHAR_VOCAB_SIZE} tokens, expected 21128"):
        load_tokenizer(tmp_path / "tok", expected_vocab_size=21128)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither vocab.txt nor tokenizer.json"):
        load_tokenizer(tmp_path / "empty")
