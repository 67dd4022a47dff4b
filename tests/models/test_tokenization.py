"""The generated bert-base-chinese-like character vocabulary, the char-level fast path and the
WordPiece path of a real BERT vocabulary."""

from __future__ import annotations

import pytest

from tiktalk.models.tokenization import (
    CHAR_VOCAB_SIZE,
    CJK_FIRST,
    CJK_LAST,
    FULLWIDTH_PUNCTUATION,
    CharEncoder,
    WordPieceEncoder,
    build_char_tokenizer,
    char_vocab,
    load_tokenizer,
    text_encoder,
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


# -- the WordPiece path (a real BERT vocabulary under --init) -------------------------------------
@pytest.fixture(scope="module")
def wordpiece_tokenizer(tmp_path_factory):
    from tests.bert_vocab import write_wordpiece_vocab

    return load_tokenizer(write_wordpiece_vocab(tmp_path_factory.mktemp("wordpiece")))


WORDPIECE_TEXTS = [
    "你好666hhh", "哈哈哈HHH hhhh 6666", "Hello！666，你呢", "ok abc123 2333333", "Café 好",
    "xyz你好", "哈\t哈\u3000呵呵。", "he hello hellooo", "666hhh666", "  ", "",
]


@pytest.mark.parametrize("text", WORDPIECE_TEXTS)
def test_wordpiece_encoder_tokenises_as_bert_base_chinese(wordpiece_tokenizer, text):
    """Google's BasicTokenizer + WordpieceTokenizer (what bert-base-chinese and Maria's
    pytorch_transformers 1.0 use), ported literally in tests/bert_vocab.py, gives the same ids."""
    from tests.bert_vocab import reference_tokenize

    encoder = WordPieceEncoder(wordpiece_tokenizer)
    expected = [encoder.vocab[t] for t in reference_tokenize(text)]
    assert encoder.encode(text) == expected
    assert encoder.encode(text) == wordpiece_tokenizer.convert_tokens_to_ids(wordpiece_tokenizer.tokenize(text))


def test_wordpiece_encoder_splits_latin_and_digits_into_pieces_and_round_trips(wordpiece_tokenizer):
    encoder = WordPieceEncoder(wordpiece_tokenizer)
    tokens = lambda text: [encoder.id_to_token[i] for i in encoder.encode(text)]
    assert tokens("666") == ["666"]
    assert tokens("6666") == ["666", "##6"]
    assert tokens("hhh") == ["hh", "##h"] == tokens("HHH")
    assert tokens("2333333") == ["233", "##33", "##33"]
    assert tokens("哈哈666hhh") == ["哈", "哈", "666", "##hh", "##h"]
    assert tokens("hello你好") == ["hello", "你", "好"]
    assert tokens("xyz") == ["[UNK]"]  # a word no pieces spell is one [UNK], as BERT's
    # the char path spends one id per character on the same text
    assert len(encoder.encode("哈哈666hhh")) == 5 < len(CharEncoder(wordpiece_tokenizer).encode("哈哈666hhh")) == 8
    # decode glues ## pieces; a space only between Latin/digit words, as the text had them
    for text in ("哈哈666hhh", "hello 2333333你好", "ok，hello！", "666 hhh哈"):
        assert encoder.decode(encoder.encode(text)) == text
    assert encoder.decode(encoder.encode("HHH 哈哈")) == "hhh哈哈"
    assert encoder.decode(encoder.encode("xyz你好")) == "你好"  # [UNK] dropped with the specials
    assert encoder.decode([encoder.vocab["[CLS]"], *encoder.encode("你好"), encoder.vocab["[SEP]"]]) == "你好"


def test_encoders_fingerprint_their_counting(wordpiece_tokenizer, tokenizer):
    wordpiece, char = WordPieceEncoder(wordpiece_tokenizer), CharEncoder(wordpiece_tokenizer)
    assert wordpiece.fingerprint.startswith("wordpiece:") and char.fingerprint.startswith("char:")
    assert wordpiece.fingerprint.split(":")[1:3] == char.fingerprint.split(":")[1:3]  # same vocabulary
    assert "lowercase=True" in wordpiece.fingerprint
    assert CharEncoder(tokenizer).fingerprint != char.fingerprint
    assert isinstance(text_encoder(tokenizer, "char"), CharEncoder)
    assert isinstance(text_encoder(tokenizer, "wordpiece"), WordPieceEncoder)
    with pytest.raises(ValueError, match=r"tokenization must be one of \['wordpiece', 'char'\], got 'bpe'"):
        text_encoder(tokenizer, "bpe")


def test_wordpiece_encoder_ignores_a_saved_truncation(wordpiece_tokenizer, tmp_path):
    """A tokenizer.json saved with truncation on still encodes whole texts."""
    wordpiece_tokenizer.backend_tokenizer.enable_truncation(3)
    try:
        encoder = WordPieceEncoder(wordpiece_tokenizer)
    finally:
        wordpiece_tokenizer.backend_tokenizer.no_truncation()
    assert len(encoder.encode("你好你好你好")) == 6


def test_wordpiece_encoder_lowercases_like_maria_whatever_the_directory_says(tmp_path):
    """The Hugging Face copy of bert-base-chinese says ``do_lower_case: false``; Maria passes
    ``--do_lower_case`` (and the vocabulary has no capital letters), so the encoder lowercases."""
    from tests.bert_vocab import write_wordpiece_vocab

    directory = write_wordpiece_vocab(tmp_path / "cased")
    (directory / "tokenizer_config.json").write_text('{"do_lower_case": false}', encoding="utf-8")
    cased = load_tokenizer(directory)
    assert cased.tokenize("HHH Hello") == ["[UNK]", "[UNK]"]
    encoder = WordPieceEncoder(cased)
    assert [encoder.id_to_token[i] for i in encoder.encode("HHH Hello")] == ["hh", "##h", "hello"]
    assert encoder.lowercase and "lowercase=True" in encoder.fingerprint
    assert cased.tokenize("HHH") == ["[UNK]"]  # the model's tokenizer itself is left as loaded
    as_saved = WordPieceEncoder(cased, lowercase=None)
    assert as_saved.encode("HHH") == [as_saved.unk_id] and "lowercase=False" in as_saved.fingerprint
