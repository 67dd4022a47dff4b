"""A generated character vocabulary shaped like bert-base-chinese, and text encoders over BERT vocabularies.

No bert-base-chinese vocab ships in a wheel, so tiny presets and smoke runs use a generated
one with the same layout: ``[PAD]``, ``[unused1..99]``, ``[UNK] [CLS] [SEP] [MASK]``, then
printable ASCII (with ``##`` continuations of letters and digits so that BertTokenizer's
WordPiece can spell ASCII words), common full-width punctuation, and the CJK block
U+4E00..U+9FA5. Special ids therefore match bert-base-chinese (PAD 0, UNK 100, CLS 101,
SEP 102, MASK 103).

In transformers 5.24 ``BertTokenizer(vocab_file=...)`` silently ignores the file, so the
vocab is written to a directory and loaded with ``BertTokenizer.from_pretrained(dir)``;
the loaded size is asserted.

Two ways to turn text into ids (``TOKENIZATIONS``, :func:`text_encoder`), behind one interface
(:class:`TextEncoder`: ``encode``, ``decode``, ``vocab``, ``special_ids``, ``fingerprint``):

* :class:`WordPieceEncoder` (``"wordpiece"``): the directory's own BERT tokenizer, as
  bert-base-chinese tokenises (one token per Chinese character, WordPiece for runs of Latin
  letters and digits: "666", "hhh", "hello"). What a real BERT vocabulary (``--init``) gets.
* :class:`CharEncoder` (``"char"``): one id per character (Latin letters and digits too), the
  tiny preset's fast path; agrees with ``tokenizer.tokenize`` on Chinese text and is ~50x
  faster on short utterances.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tiktalk.errors import UsageError
from tiktalk.io import atomic_directory

if TYPE_CHECKING:  # transformers is imported where a tokenizer is loaded (it costs a second)
    from transformers import BertTokenizer

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
    from transformers import BertTokenizer

    directory = Path(directory)
    with atomic_directory(directory, overwrite=True) as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(char_vocab()) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer.from_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return directory


def load_tokenizer(path: str | os.PathLike, expected_vocab_size: int | None = None) -> BertTokenizer:
    """BertTokenizer from a directory holding vocab.txt (or tokenizer.json)."""
    from transformers import BertTokenizer

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


class TextEncoder(ABC):
    """Text <-> ids over a BERT tokenizer's vocabulary; built once per tokenizer.

    ``vocab`` token -> id; ``special_ids`` the bracketed tokens (``[PAD]``, ``[unusedN]``,
    ``[CLS]`` ...); ``fingerprint`` names the counting (a knowledge cache records it)."""

    kind: str = ""

    def __init__(self, tokenizer: BertTokenizer):
        self.vocab: dict[str, int] = dict(tokenizer.get_vocab())
        self.id_to_token: dict[int, str] = {i: t for t, i in self.vocab.items()}
        self.unk_id = self.vocab["[UNK]"]
        self.lowercase = bool(getattr(tokenizer, "do_lower_case", True))
        self.special_ids = frozenset(
            i for t, i in self.vocab.items() if t.startswith("[") and t.endswith("]") and len(t) > 2
        )

    def _counting(self) -> str:
        """What besides the vocabulary decides the ids (part of the fingerprint)."""
        return "lower" if self.lowercase else ""

    @cached_property
    def fingerprint(self) -> str:
        """Names the counting: kind, vocabulary size, a hash of the tokens in id order, options."""
        tokens = "\n".join(self.id_to_token[i] for i in sorted(self.id_to_token))
        digest = hashlib.sha256(tokens.encode()).hexdigest()[:16]
        counting = self._counting()
        return f"{self.kind}:{len(self.vocab)}:{digest}{':' + counting if counting else ''}"

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``, no special tokens added."""

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Tokens glued together (``##`` continuations to the previous token); bracketed
        specials (``[UNK]`` included) dropped unless ``skip_special`` is False."""
        pieces = []
        for i in ids:
            i = int(i)
            if skip_special and i in self.special_ids:
                continue
            pieces.append(self.id_to_token.get(i, "[UNK]"))
        return self._join(pieces)

    def _join(self, tokens: list[str]) -> str:
        return "".join(token.removeprefix("##") for token in tokens)


class CharEncoder(TextEncoder):
    """Character-level ids with a bert-base-chinese-like vocab (whitespace dropped, ASCII
    lowercased): one id per character, Latin letters and digits too. ``encode`` is a dict
    lookup per character."""

    kind = "char"

    def encode(self, text: str) -> list[int]:
        if self.lowercase:
            text = text.lower()
        vocab, unk = self.vocab, self.unk_id
        return [vocab.get(ch, unk) for ch in text if not ch.isspace()]


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


class WordPieceEncoder(TextEncoder):
    """The BERT tokenizer's own ids (``tokenizer.tokenize`` then the vocabulary), as
    bert-base-chinese tokenises: its normaliser (lowercasing and accents, a space around every
    CJK character), whitespace and punctuation splits, then WordPiece, greedy longest match
    first with ``##`` continuations ("666hhh" -> ``666 ##h ##h ##h`` where those are the
    vocabulary's pieces); a word no piece sequence spells is one ``[UNK]``.

    ``lowercase`` (default True) overrides the directory's ``do_lower_case``: Google's Chinese
    BERT is uncased and Maria passes ``--do_lower_case`` (its README), while the Hugging Face
    copy of bert-base-chinese says ``do_lower_case: false`` over a vocabulary without capital
    letters (cased Latin words would be ``[UNK]``). None keeps the directory's setting.

    ``decode`` glues ``##`` pieces and puts a space only between two tokens that both touch
    Latin letters or digits ("hello 666"), as the text had them; Chinese stays unspaced."""

    kind = "wordpiece"

    def __init__(self, tokenizer: BertTokenizer, lowercase: bool | None = True):
        super().__init__(tokenizer)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise UsageError(f"{type(tokenizer).__name__} has no tokenizers backend; wordpiece needs one "
                             "(load the directory with BertTokenizer.from_pretrained)")
        from tokenizers import Tokenizer, normalizers

        normalizer = backend.normalizer
        relower = lowercase is not None and getattr(normalizer, "lowercase", None) != lowercase
        if relower or backend.truncation is not None or backend.padding is not None:
            backend = Tokenizer.from_str(backend.to_str())  # a copy: the model's tokenizer stays as saved
            backend.no_truncation()  # ids of whole texts, unpadded
            backend.no_padding()
        if relower:
            if isinstance(normalizer, normalizers.BertNormalizer):
                normalizer = normalizers.BertNormalizer(
                    clean_text=normalizer.clean_text, handle_chinese_chars=normalizer.handle_chinese_chars,
                    strip_accents=normalizer.strip_accents, lowercase=lowercase)
            elif lowercase:
                normalizer = normalizers.Sequence([normalizer, normalizers.Lowercase()] if normalizer
                                                  else [normalizers.Lowercase()])
            else:
                raise UsageError(f"{type(tokenizer).__name__}: cannot turn off the lowercasing of its normaliser "
                                 f"({type(normalizer).__name__}); pass lowercase=None")
            backend.normalizer = normalizer
        self._backend = backend
        self.lowercase = bool(getattr(normalizer, "lowercase", self.lowercase if lowercase is None else lowercase))
        self._options = ":".join(
            f"{name}={getattr(normalizer, name)}" for name in ("lowercase", "strip_accents", "handle_chinese_chars")
            if hasattr(normalizer, name))

    def _counting(self) -> str:
        return self._options or super()._counting()

    def encode(self, text: str) -> list[int]:
        return self._backend.encode(text, add_special_tokens=False).ids

    def _join(self, tokens: list[str]) -> str:
        out: list[str] = []
        for token in tokens:
            if token.startswith("##"):
                out.append(token[2:])
                continue
            if out and out[-1] and token and _is_word_char(out[-1][-1]) and _is_word_char(token[0]):
                out.append(" ")
            out.append(token)
        return "".join(out)


TEXT_ENCODERS: dict[str, type[TextEncoder]] = {"wordpiece": WordPieceEncoder, "char": CharEncoder}
TOKENIZATIONS: tuple[str, ...] = tuple(TEXT_ENCODERS)


def text_encoder(tokenizer: BertTokenizer, tokenization: str) -> TextEncoder:
    """The encoder of ``tokenization`` (one of ``TOKENIZATIONS``) over ``tokenizer``."""
    if tokenization not in TEXT_ENCODERS:
        raise UsageError(f"tokenization must be one of {list(TOKENIZATIONS)}, got {tokenization!r}")
    return TEXT_ENCODERS[tokenization](tokenizer)


def encode_chars(tokenizer: BertTokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Convenience wrapper: one id list per text (see :class:`CharEncoder`)."""
    encoder = CharEncoder(tokenizer)
    return [encoder.encode(t) for t in texts]


def decode_chars(tokenizer: BertTokenizer, ids: Iterable[int]) -> str:
    return CharEncoder(tokenizer).decode(ids)
