"""A small bert-base-chinese-like WordPiece vocabulary written by tests, and a literal port of
the tokenisation bert-base-chinese was built with (google-research/bert ``tokenization.py``:
``BasicTokenizer`` then ``WordpieceTokenizer``; pytorch_transformers 1.0, which Maria runs,
ports it line for line) to check the library's WordPiece path against."""

from __future__ import annotations

import unicodedata
from pathlib import Path

CHINESE = "你好我们今天视频真好笑哈呵朋友天气不错想去玩吃饭的了是这"
WORDPIECE_VOCAB: list[str] = (
    ["[PAD]"] + [f"[unused{i}]" for i in range(1, 4)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list(dict.fromkeys(CHINESE)) + list("！，？。")
    + [str(d) for d in range(10)] + [f"##{d}" for d in range(10)] + ["666", "233", "##33", "##66"]
    + ["h", "##h", "hh", "##hh", "hello", "he", "##llo", "o", "##k", "ok", "a", "##b", "e", "##e", "caf"]
)


def write_wordpiece_vocab(directory: Path) -> Path:
    """vocab.txt of :data:`WORDPIECE_VOCAB` in ``directory`` (created); returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(WORDPIECE_VOCAB) + "\n", encoding="utf-8")
    return directory


# -- the reference: google-research/bert tokenization.py, do_lower_case=True ----------------------
def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def _basic_tokenize(text: str) -> list[str]:
    cleaned = []
    for ch in text:
        if ord(ch) in (0, 0xFFFD) or _is_control(ch):
            continue
        cleaned.append(" " if _is_whitespace(ch) else ch)
    spaced = "".join(f" {ch} " if _is_chinese_char(ord(ch)) else ch for ch in cleaned)
    out: list[str] = []
    for token in spaced.split():
        token = "".join(c for c in unicodedata.normalize("NFD", token.lower()) if unicodedata.category(c) != "Mn")
        word: list[str] = []
        for ch in token:
            if _is_punctuation(ch):
                out += ["".join(word)] if word else []
                out.append(ch)
                word = []
            else:
                word.append(ch)
        out += ["".join(word)] if word else []
    return out


def _wordpiece(word: str, vocab: set[str], max_chars: int = 100) -> list[str]:
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end, piece = len(word), None
        while start < end:
            candidate = word[start:end] if start == 0 else "##" + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def reference_tokenize(text: str, vocab: list[str] = WORDPIECE_VOCAB) -> list[str]:
    """bert-base-chinese's tokens of ``text`` over ``vocab`` (Google's FullTokenizer, lowercased)."""
    known = set(vocab)
    return [piece for word in _basic_tokenize(text) for piece in _wordpiece(word, known)]
