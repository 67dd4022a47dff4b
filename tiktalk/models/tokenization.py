"""A generated character vocabulary shaped like bert-base-chinese, and fast char-level encoding.

No bert-base-chinese vocab ships in a wheel, so tiny presets and smoke runs use a generated
one with the same layout: ``[PAD]``, ``[unused1..99]``, ``[UNK] [CLS] [SEP] [MASK]``, then
printable ASCII (with ``##`` continuations of letters and digits so that BertTokenizer's
WordPiece can spell ASCII words), common full-width punctuation, and the CJK block
U+4E00..U+9FA5. Special ids therefore match bert-base-chinese (PAD 0, UNK 100, CLS 101,
SEP 102, MASK 103).

In transformers 5.24 ``BertTokenizer(vocab_file=...)`` silently ignores the file, so the
vocab is written to a directory and loaded with ``BertTokenizer.from_pretrained(dir)``;
the loaded size is asserted.

``encode_chars`` / ``decode_chars`` are the character-level fast path the Maria collator
uses (one id per character, as bert-base-chinese tokenises Chinese); they agree with
``tokenizer.tokenize`` on Chinese text and are ~50x faster on short utterances.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

from transformers import BertTokenizer

from tiktalk.errors import UsageError
from tiktalk.io import atomic_directory

SPECIAL_TOKENS: tuple[str, ...] = ("[UNK]", "[CLS]", "[SEP]", "[MASK]")
N_UNUSED = 99
# Full-width / CJK punctuation common in Chinese chat (the CJK block itself is added whole).
FULLWIDTH_PUNCTUATION = (
    "，。！？；：、“”‘’（）《》【】…—～·「」『』〈〉〔〕％＃＠＆＊＋－／＝＜＞"
    "｛｝［］＿＂＇｜＼￥°×÷←→↑↓★☆♥♡○●◎◇◆□■△▲"
)
CJK_FIRST, CJK_LAST = 0x4E00, 0x9FA5


def char_vocab() -> list[str]:
    """The generated vocabulary, in id order (no duplicates)."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, N_UNUSED + 1)] + list(SPECIAL_TOKENS)
    ascii_printable = [chr(c) for c in range(0x21, 0x7F)]
    tokens += ascii_printable
    tokens += ["##" + c for c in ascii_printable if c.isalnum()]
    tokens += list(FULLWIDTH_PUNCTUATION)
    tokens += [chr(c) for c in range(CJK_FIRST, CJK_LAST + 1)]
    seen: set[str] = set()
    unique = [t for t in tokens if not (t in seen or seen.add(t))]
    return unique


CHAR_VOCAB_SIZE = len(char_vocab())


def write_char_vocab(directory: str | os.PathLike) -> Path:
    """Write vocab.txt + tokenizer_config.json into ``directory`` (atomically); returns it."""
    directory = Path(directory)
    with atomic_directory(directory, overwrite=True) as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(char_vocab()) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer.from_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return directory


def load_tokenizer(path: str | os.PathLike, expected_vocab_size: int | None = None) -> BertTokenizer:
    """BertTokenizer from a directory holding vocab.txt (or tokenizer.json)."""
    path = Path(path)
    if not (path / "vocab.txt").exists() and not (path / "tokenizer.json").exists():
        raise UsageError(f"tokenizer directory {path} has neither vocab.txt nor tokenizer.json")
    try:
        tokenizer = BertTokenizer.from_pretrained(str(path))
    except Exception as err:  # noqa: BLE001 (the Rust tokenizers library raises bare Exception on a damaged file)
        summary = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise UsageError(f"tokenizer directory {path}: cannot be read ({summary})") from None
    if expected_vocab_size is not None and len(tokenizer) != expected_vocab_size:
        raise UsageError(
            f"tokenizer at {path} has {len(tokenizer)} tokens, expected {expected_vocab_size}"
        )
    return tokenizer


def _default_cache_dir() -> Path:
    root = os.environ.get("TIKTALK_CACHE", os.path.join(tempfile.gettempdir(), "tiktalk-cache"))
    return Path(root) / f"char-vocab-{CHAR_VOCAB_SIZE}"


def build_char_tokenizer(cache_dir: str | os.PathLike | None = None) -> BertTokenizer:
    """The generated character tokenizer (written once under ``cache_dir``, then reused).

    ``cache_dir`` defaults to ``$TIKTALK_CACHE/char-vocab-<size>`` (``$TMPDIR/tiktalk-cache``).
    """
    directory = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    vocab_file = directory / "vocab.txt"
    if not vocab_file.exists() or vocab_file.read_text(encoding="utf-8").split("\n")[:-1] != char_vocab():
        write_char_vocab(directory)
    return load_tokenizer(directory, expected_vocab_size=CHAR_VOCAB_SIZE)


class CharEncoder:
    """Character-level ids with a bert-base-chinese-like vocab (whitespace dropped, ASCII lowercased).

    Built once per tokenizer; ``encode`` is a dict lookup per character.
    """

    def __init__(self, tokenizer: BertTokenizer):
        self.vocab: dict[str, int] = dict(tokenizer.get_vocab())
        self.id_to_token: dict[int, str] = {i: t for t, i in self.vocab.items()}
        self.unk_id = self.vocab["[UNK]"]
        self.lowercase = bool(getattr(tokenizer, "do_lower_case", True))
        self.special_ids = frozenset(
            i for t, i in self.vocab.items() if t.startswith("[") and t.endswith("]") and len(t) > 2
        )

    @cached_property
    def fingerprint(self) -> str:
        """Names the counting: vocabulary size and a hash of the tokens in id order, lowercasing."""
        tokens = "\n".join(self.id_to_token[i] for i in sorted(self.id_to_token))
        digest = hashlib.sha256(tokens.encode()).hexdigest()[:16]
        return f"char:{len(self.vocab)}:{digest}{':lower' if self.lowercase else ''}"

    def encode(self, text: str) -> list[int]:
        if self.lowercase:
            text = text.lower()
        vocab, unk = self.vocab, self.unk_id
        return [vocab.get(ch, unk) for ch in text if not ch.isspace()]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        pieces = []
        for i in ids:
            i = int(i)
            if skip_special and i in self.special_ids:
                continue
            token = self.id_to_token.get(i, "[UNK]")
            pieces.append(token.removeprefix("##"))
        return "".join(pieces)


def encode_chars(tokenizer: BertTokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Convenience wrapper: one id list per text (see :class:`CharEncoder`)."""
    encoder = CharEncoder(tokenizer)
    return [encoder.encode(t) for t in texts]


def decode_chars(tokenizer: BertTokenizer, ids: Iterable[int]) -> str:
    return CharEncoder(tokenizer).decode(ids)
