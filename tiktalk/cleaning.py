"""The text rules of the TikTalk build (paper section 3.1, rule 3), used by the build and by retrieval.

A comment is cleaned by :func:`clean_text`: ``@user`` mentions removed by regex, emoticons
(``[捂脸]``, emoji) moved to metadata, whitespace tidied where they were (runs collapsed,
ends stripped, no space left between two CJK characters), a CJK character, punctuation
mark or emoji repeated ``repeat_min_run``+ times (哈哈哈哈, ！！！！) merged into
``repeat_keep`` copies so laughter of any length becomes one form, a short unit of such
characters repeated 3+ times (笑死笑死笑死) into one; digits and Latin letters are never
merged (46000, 666, hhhh, ok ok ok stay as written). :func:`blocked_word` finds a
blocklisted word (rule 4).

Titles are written into a dataset as they come; :func:`clean_title` cleans one with the
comment rules (hashtags made words) for callers that put titles into queries.

The rules take their two settings from any object with ``repeat_min_run`` and
``repeat_keep`` (:class:`TextRules`, or the build's :class:`tiktalk.build.BuildConfig`).
The raw readers are in :mod:`tiktalk.raw`, the build in :mod:`tiktalk.build`.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from tiktalk.errors import UsageError

REPEAT_MIN_RUN = 3  # a character repeated this often or more is merged ...
REPEAT_KEEP = 2  # ... into this many copies (哈哈哈哈 -> 哈哈)


class RepeatSettings(Protocol):
    """What the text rules read from a config (:class:`TextRules`, ``BuildConfig``)."""

    @property
    def repeat_min_run(self) -> int: ...

    @property
    def repeat_keep(self) -> int: ...


@dataclass(frozen=True)
class TextRules:
    """The settings of the text rules; their defaults live here and only here."""

    repeat_min_run: int = REPEAT_MIN_RUN
    repeat_keep: int = REPEAT_KEEP

    def __post_init__(self) -> None:
        if self.repeat_min_run < 2 or not 1 <= self.repeat_keep < self.repeat_min_run:
            raise UsageError(f"need 1 <= repeat_keep ({self.repeat_keep}) < repeat_min_run "
                             f"({self.repeat_min_run}) and repeat_min_run >= 2")


DEFAULT_TEXT_RULES = TextRules()


# ---------------------------------------------------------------------------- text rules

# A mention is "@" plus a user name, which runs to whitespace, punctuation or an emoticon.
_NAME_END = r"\s@，。！？、,.!?:：;；\[\]（）()"
MENTION_RE = re.compile(f"@[^{_NAME_END}]+")
# Douyin emoticons are short bracketed words ([捂脸], [赞]); plus Unicode emoji.
BRACKET_EMOTICON_RE = re.compile(r"\[[^\[\]\s]{1,8}\]")
EMOJI_RE = re.compile(
    "[\U0001F300-\U0001FAFF\U00002600-\U000027BF\U0001F000-\U0001F2FF\U0000FE0F\U0000200D]+"
)
EMOTICON_RE = re.compile(f"{BRACKET_EMOTICON_RE.pattern}|{EMOJI_RE.pattern}")
# A title hashtag is "#" plus its words, which run to whitespace, the next "#", a mention, an
# emoticon or punctuation (Douyin writes "#美食 #家常菜" and "#美食#家常菜").
HASHTAG_RE = re.compile(f"#+([^#{_NAME_END}]*)")
_UNIT_REPEAT_RE = re.compile(r"(.{2,4}?)\1{2,}")  # a 2-4 character unit three or more times
# Marks left until whitespace is tidied: _GAP where a mention or emoticon was removed, _SEP
# around the words of a hashtag. Python counts both as whitespace, so the mention and
# emoticon patterns stop at them exactly as at the " " that remove_mentions and
# extract_emoticons leave by default; in input text they are turned into plain spaces first.
_GAP, _SEP = "\x1f", "\x1e"
_WHITESPACE_RE = re.compile(r"\s+")
# ASCII punctuation that CJK text takes with no space between: 好的[赞]! -> 好的!
_CLOSING = frozenset("!?,.;:)]}")
_OPENING = frozenset("([{")
_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation (、。「」《》)
    (0x3040, 0x31FF),  # kana, Bopomofo, Hangul compatibility Jamo
    (0x3200, 0x4DBF),  # enclosed CJK, CJK compatibility, extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended-A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended-B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # full- and half-width forms (，！？（）)
    (0x20000, 0x3FFFF),  # extensions B and later
)
_CJK_PUNCTUATION = frozenset("…—–“”‘’·")


def is_cjk(ch: str) -> bool:
    """A CJK character or a mark of CJK typesetting (，。…“”): text written without spaces."""
    code = ord(ch)
    return ch in _CJK_PUNCTUATION or any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def is_mergeable(ch: str) -> bool:
    """Whether :func:`merge_repeats` may merge a run of ``ch``: a CJK character (letters of
    CJK scripts), punctuation, a symbol or an emoji.

    Digits of any script (46000, ４６, 〇) and Latin or other non-CJK letters (hhhh, ok) never
    are: a number or a word is not laughter.
    """
    category = unicodedata.category(ch)
    if category[0] in "PS" or ch in "\ufe0f\u200d":  # punctuation, symbols (emoji: So, Sk), joiners
        return True
    fullwidth_latin = "Ａ" <= ch <= "Ｚ" or "ａ" <= ch <= "ｚ"
    return category[0] in "LM" and is_cjk(ch) and not fullwidth_latin


def remove_mentions(text: str, repl: str = " ") -> str:
    """``"@小李子 快来看"`` -> ``" 快来看"`` (whitespace is tidied by :func:`clean_text`)."""
    return MENTION_RE.sub(repl, text)


def extract_emoticons(text: str, repl: str = " ") -> tuple[str, list[str]]:
    """Move emoticons out of the text: ``"笑死[捂脸]"`` -> ``("笑死", ["[捂脸]"])``."""
    found: list[str] = []
    for match in EMOTICON_RE.finditer(text):
        token = match.group(0)
        if token.startswith("["):
            found.append(token)
        else:  # a run of emoji: one entry per emoji, joiners and variation selectors dropped
            found.extend(ch for ch in token if ch not in "\ufe0f\u200d")
    return EMOTICON_RE.sub(repl, text), found


def _tidy_whitespace(text: str) -> str:
    """Collapse whitespace runs to one space and strip the ends; a run holding _GAP (where a
    removal was) between two CJK characters goes entirely.

    ``"比个<GAP> 跟你们说"`` -> ``"比个跟你们说"``, ``"好的<GAP>!"`` -> ``"好的!"``, but
    ``"ok<GAP>ok"`` -> ``"ok ok"`` (Latin words stay apart) and ``"你好  世界"`` -> ``"你好 世界"``
    (a space the writer typed away from any removal stays). A run holding _SEP (the edge of
    a hashtag) is one space, none before closing punctuation: ``"美食<SEP><GAP>好吃"`` ->
    ``"美食 好吃"`` (a hashtag stays a word of its own), ``"美食<SEP>，"`` -> ``"美食，"``.
    """
    def one(match: re.Match[str]) -> str:
        start, end = match.span()
        if start == 0 or end == len(text):
            return ""
        left, right, run = text[start - 1], text[end], match.group(0)
        if _SEP in run:
            return "" if unicodedata.category(right) in ("Po", "Pe", "Pf") else " "
        if _GAP in run and (is_cjk(left) or left in _OPENING) and (is_cjk(right) or right in _CLOSING):
            return ""
        return " "

    return _WHITESPACE_RE.sub(one, text)


def merge_repeats(text: str, min_run: int = REPEAT_MIN_RUN, keep: int = REPEAT_KEEP) -> str:
    """Merge repeated characters and short repeated units into one form.

    A CJK character, punctuation mark or emoji repeated ``min_run`` or more times becomes
    ``keep`` copies (哈哈哈哈哈 -> 哈哈, 哈哈哈 -> 哈哈, ！！！！ -> ！！); doubled words (谢谢, 看看)
    are untouched. A unit of 2-4 such characters (or spaces) repeated three or more times
    becomes one (笑死笑死笑死 -> 笑死). Digits and Latin letters are never merged, alone or
    in a unit (:func:`is_mergeable`): 46000, 1000多, 666, 2333333, hhhh, hahaha and
    "ok ok ok " stay as written.
    """
    char_run = re.compile(rf"(.)\1{{{min_run - 1},}}", re.DOTALL)

    def merge(part: str) -> str:
        # to a fixed point: merging a unit can leave a new run (哈笑死哈笑死 ... -> 哈笑死笑死笑死)
        previous = None
        while part != previous:
            previous = part
            part = _UNIT_REPEAT_RE.sub(lambda m: m.group(1), char_run.sub(lambda m: m.group(1) * keep, part))
        return part

    # Every merge lies inside a stretch of mergeable characters and spaces: merge stretch by
    # stretch, and digits and letters are never part of a run or a unit.
    stretches = itertools.groupby(text, lambda ch: is_mergeable(ch) or ch.isspace())
    return "".join(merge("".join(chars)) if ok else "".join(chars) for ok, chars in stretches)


def blocked_word(text: str, blocklist: Iterable[str]) -> str | None:
    """The first blocklisted word ``text`` contains (case-insensitive), or None."""
    lowered = text.lower()
    return next((w for w in blocklist if w.lower() in lowered), None)


@dataclass(frozen=True)
class CleanText:
    text: str
    emoticons: list[str]
    had_mention: bool
    had_repeat: bool


def _clean(text: str, config: RepeatSettings, *, hashtags: bool = False) -> CleanText:
    text = text.replace(_GAP, " ").replace(_SEP, " ")
    emoticons: list[str] = []
    if hashtags:  # a title: emoticons (which end a hashtag) go first, then hashtags (which end a name)
        text, emoticons = extract_emoticons(text, _GAP)
        text = HASHTAG_RE.sub(lambda m: f"{_SEP}{m.group(1)}{_SEP}", text)
    no_mentions = remove_mentions(text, _GAP)
    plain, more = extract_emoticons(no_mentions, _GAP)
    emoticons += more
    tidy = _tidy_whitespace(plain)
    merged = merge_repeats(tidy, config.repeat_min_run, config.repeat_keep)
    return CleanText(" ".join(merged.split()), emoticons, no_mentions != text, merged != tidy)


def clean_text(text: str, config: RepeatSettings = DEFAULT_TEXT_RULES) -> CleanText:
    """Mentions out, emoticons to metadata, whitespace tidied where they were, repeats merged."""
    return _clean(text, config)


def clean_title(text: str, config: RepeatSettings = DEFAULT_TEXT_RULES) -> str:
    """A video title cleaned like a comment (:func:`clean_text`), its hashtags made words.

    ``"今天做红烧肉哈哈哈哈[赞]#美食 #家常菜@抖音小助手"`` -> ``"今天做红烧肉哈哈 美食 家常菜"``.
    Each hashtag, ``#`` plus words ending at whitespace, the next ``#``, a mention, an
    emoticon or punctuation (``#话题 ``, ``#话题#话题``, ``#话题#``), becomes its words set
    apart by a space; a lone ``#`` goes, and so does the ``#`` of ``C#``. Emoticons and
    mentions are removed, whitespace is tidied and repeats are merged as in comments.
    """
    return _clean(text, config, hashtags=True).text
