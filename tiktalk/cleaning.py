"""From raw Douyin-style comment trees to TikTalk dialogues (paper section 3.1).

Raw input is a directory with two JSONL files (and optionally ``build_config.json``)::

    videos.jsonl    required: video_id (str|int)
                    optional: title (str, default ""), topic (str, default ""),
                              duration (seconds, default 0 = unknown), likes (int, default unknown)
    comments.jsonl  required: comment_id (str|int), parent_id (str|int|null: null = first-level
                              comment), video_id, text (str)
                    optional: likes (int, default unknown)

A row lacking several required fields is one error naming all of them. Unknown likes
(absent or null) are never compared with a likes threshold: such a video or comment is kept
by rules 1 and 2 (counted in ``likes_unknown``), and ranks as 0 likes when references are
chosen. A split file (``--split-file``) fixes the split of the videos it names (see
:func:`read_split_file`).

The rules, in the order they run (each counted in :class:`BuildReport`):

1. videos below ``video_min_likes`` are dropped (with their comments);
2. comments below ``comment_min_likes`` are dropped;
3. text cleaning: ``@user`` mentions removed by regex, emoticons (``[捂脸]``, emoji) moved to
   metadata, whitespace tidied where they were (runs collapsed, ends stripped, no space left
   between two CJK characters), a CJK character, punctuation mark or emoji repeated
   ``repeat_min_run``+ times (哈哈哈哈, ！！！！) merged into ``repeat_keep`` copies so laughter
   of any length becomes one form, a short unit of such characters repeated 3+ times
   (笑死笑死笑死) into one; digits and Latin letters are never merged (46000, 666, hhhh,
   ok ok ok stay as written);
4. comments containing a blocklisted (unethical) word are dropped;
5. comments left empty by cleaning are dropped;
6. replies under a dropped comment are dropped (a chain with a hole is no conversation);
7. videos left with only first-level comments are dropped;
8. each video gets its split from the split file, else from a hash of its video_id; a
   val/test video needs a comment with ``min_references`` kept direct replies ("genuine
   responses"), else a hashed one moves to train and one the split file placed is dropped
   (its split is fixed);
9. train trees are split into root-to-leaf chains (context = turns before the last,
   response = the last); single-comment chains are no dialogue. A val/test dialogue is a
   chain ending at a comment with >= ``min_references`` replies: the replies with the most
   likes (ties: file order) become its references, the first one its response.

Titles are written as they come; :func:`clean_title` cleans one with the comment rules
(hashtags made words) for callers that put titles into queries.

The paper gives no thresholds or blocklist; the defaults below are choices, all
configurable (CLI flags or ``build_config.json``). A build that keeps no dialogue, or leaves
a split empty, is an error naming the rule or option responsible (unless empty splits are
allowed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tiktalk.dataset import (
    AUDIO_DIM,
    DEFAULT_SPLIT_SEED,
    EVAL_REFERENCES,
    FRAME_DIM,
    MAX_AUDIO,
    MAX_FRAMES,
    PAPER_TEST_FRACTION,
    PAPER_VAL_FRACTION,
    SPLITS,
    DatasetFormatError,
    check_splits,
    from_rows,
    read_jsonl_rows,
    require_fields,
    split_of,
    write_dataset,
)
from tiktalk.errors import EmptyResultError, MissingInputError, UsageError
from tiktalk.io import read_json, sha256_file

# A small placeholder list of abusive words; real builds should pass their own (--blocklist).
DEFAULT_BLOCKLIST: tuple[str, ...] = ("傻逼", "傻X", "脑残", "去死", "滚蛋", "垃圾人", "贱人", "废物")


@dataclass(frozen=True)
class BuildConfig:
    """Every option of ``tiktalk data build``; defaults live here and only here."""

    video_min_likes: int = 100  # keep videos with at least this many likes
    comment_min_likes: int = 1  # keep comments with at least this many likes
    blocklist: tuple[str, ...] = DEFAULT_BLOCKLIST  # a comment containing one is dropped
    repeat_min_run: int = 3  # a character repeated this often or more is merged ...
    repeat_keep: int = 2  # ... into this many copies (哈哈哈哈 -> 哈哈)
    min_references: int = EVAL_REFERENCES  # genuine responses needed by a val/test dialogue
    val_fraction: float = PAPER_VAL_FRACTION  # share of videos hashed to val (paper: 1,000 of 38,703)
    test_fraction: float = PAPER_TEST_FRACTION  # share hashed to test (paper: 2,000 of 38,703)
    split_seed: str = DEFAULT_SPLIT_SEED  # salt of the video_id hash that picks the split
    synthetic_frames: int = 0  # > 0: write seeded random frame features, this many per video
    synthetic_audio: int = 0  # > 0: same for audio patches
    feature_seed: int = 0  # seed of the synthetic features
    feature_dtype: str = "float16"  # storage dtype of features (read back as float32)
    table_format: str = "jsonl"  # jsonl or parquet

    def __post_init__(self) -> None:
        if self.repeat_min_run < 2 or not 1 <= self.repeat_keep < self.repeat_min_run:
            raise UsageError(f"need 1 <= repeat_keep ({self.repeat_keep}) < repeat_min_run "
                             f"({self.repeat_min_run}) and repeat_min_run >= 2")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction <= 1):
            raise UsageError(f"val_fraction ({self.val_fraction}) and test_fraction ({self.test_fraction}) "
                             "must be >= 0 and sum to <= 1")
        if self.min_references < 1:
            raise UsageError(f"min_references ({self.min_references}) must be >= 1")
        if not 0 <= self.synthetic_frames <= MAX_FRAMES or not 0 <= self.synthetic_audio <= MAX_AUDIO:
            raise UsageError(f"synthetic_frames ({self.synthetic_frames}) must be in 0..{MAX_FRAMES} and "
                             f"synthetic_audio ({self.synthetic_audio}) in 0..{MAX_AUDIO}")
        if self.feature_dtype not in ("float16", "float32"):
            raise UsageError(f"feature_dtype {self.feature_dtype!r}: expected float16 or float32")

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["blocklist"] = list(self.blocklist)
        return out

    @classmethod
    def from_json(cls, obj: Any, *, path: str | Path = "<config>", **overrides: Any) -> BuildConfig:
        """Config from a JSON object (unknown keys are an error naming them), then ``overrides``."""
        if not isinstance(obj, dict):
            raise DatasetFormatError("expected a JSON object", path=path)
        names = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in obj.items():
            if key not in names:
                raise DatasetFormatError(f"unknown build option (known: {', '.join(names)})", path=path, field=key)
            default = names[key].default
            if key == "blocklist":
                if not (isinstance(value, list) and all(isinstance(w, str) and w for w in value)):
                    raise DatasetFormatError("expected a list of non-empty strings", path=path, field=key, value=value)
                value = tuple(value)
            elif not _matches_type(value, default):
                raise DatasetFormatError(f"expected {type(default).__name__}", path=path, field=key, value=value)
            values[key] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _matches_type(value: Any, default: Any) -> bool:
    """JSON value fits an option whose default is ``default`` (an int may stand for a float)."""
    if isinstance(value, bool):
        return False
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


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


def merge_repeats(text: str, min_run: int = 3, keep: int = 2) -> str:
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


def _clean(text: str, config: BuildConfig, *, hashtags: bool = False) -> CleanText:
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


def clean_text(text: str, config: BuildConfig = BuildConfig()) -> CleanText:
    """Mentions out, emoticons to metadata, whitespace tidied where they were, repeats merged."""
    return _clean(text, config)


def clean_title(text: str, config: BuildConfig = BuildConfig()) -> str:
    """A video title cleaned like a comment (:func:`clean_text`), its hashtags made words.

    ``"今天做红烧肉哈哈哈哈[赞]#美食 #家常菜@抖音小助手"`` -> ``"今天做红烧肉哈哈 美食 家常菜"``.
    Each hashtag, ``#`` plus words ending at whitespace, the next ``#``, a mention, an
    emoticon or punctuation (``#话题 ``, ``#话题#话题``, ``#话题#``), becomes its words set
    apart by a space; a lone ``#`` goes, and so does the ``#`` of ``C#``. Emoticons and
    mentions are removed, whitespace is tidied and repeats are merged as in comments.
    """
    return _clean(text, config, hashtags=True).text


# ---------------------------------------------------------------------------- raw input


@dataclass(frozen=True)
class RawVideo:
    video_id: str
    title: str
    topic: str
    duration: float  # seconds; 0 when unknown
    likes: int | None  # None: unknown, never compared with a threshold
    line: int


@dataclass(frozen=True)
class RawComment:
    comment_id: str
    parent_id: str | None
    video_id: str
    text: str
    likes: int | None  # None: unknown
    line: int


RAW_VIDEO_REQUIRED = ("video_id",)
RAW_COMMENT_REQUIRED = ("comment_id", "parent_id", "video_id", "text")


def _id(value: Any, *, path: Path, line: int, name: str, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise DatasetFormatError("expected a non-empty string or integer id" + (" or null" if nullable else ""),
                                 path=path, line=line, field=name, value=value)
    return str(value)


def _likes(value: Any, *, path: Path, line: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatasetFormatError("expected a non-negative integer", path=path, line=line, field="likes", value=value)
    return value


def _text(value: Any, name: str, *, path: Path, line: int) -> str:
    if not isinstance(value, str):
        raise DatasetFormatError("expected a string", path=path, line=line, field=name, value=value)
    return value


def read_raw_videos(path: str | Path) -> list[RawVideo]:
    path = Path(path)
    out, seen = [], {}
    for line, row in read_jsonl_rows(path):
        if not isinstance(row, dict):
            raise DatasetFormatError("expected a JSON object", path=path, line=line)
        require_fields(row, RAW_VIDEO_REQUIRED, path=path, line=line)
        vid = _id(row["video_id"], path=path, line=line, name="video_id")
        if vid in seen:
            raise DatasetFormatError(f"duplicate video_id (first on line {seen[vid]})",
                                     path=path, line=line, field="video_id", value=vid)
        seen[vid] = line
        duration = row.get("duration", 0.0)
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
            raise DatasetFormatError("expected a non-negative number of seconds", path=path, line=line,
                                     field="duration", value=duration)
        out.append(RawVideo(vid, _text(row.get("title", ""), "title", path=path, line=line),
                            _text(row.get("topic", ""), "topic", path=path, line=line), float(duration),
                            _likes(row.get("likes"), path=path, line=line), line))
    return out


def read_raw_comments(path: str | Path) -> list[RawComment]:
    path = Path(path)
    out, seen = [], {}
    for line, row in read_jsonl_rows(path):
        if not isinstance(row, dict):
            raise DatasetFormatError("expected a JSON object", path=path, line=line)
        require_fields(row, RAW_COMMENT_REQUIRED, path=path, line=line)
        cid = _id(row["comment_id"], path=path, line=line, name="comment_id")
        if cid in seen:
            raise DatasetFormatError(f"duplicate comment_id (first on line {seen[cid]})",
                                     path=path, line=line, field="comment_id", value=cid)
        seen[cid] = line
        out.append(RawComment(
            cid, _id(row["parent_id"], path=path, line=line, name="parent_id", nullable=True),
            _id(row["video_id"], path=path, line=line, name="video_id"),
            _text(row["text"], "text", path=path, line=line), _likes(row.get("likes"), path=path, line=line), line))
    return out


def read_split_file(path: str | Path) -> dict[str, str]:
    """video_id -> split from a ``.json`` object (``{"v1": "test", ...}``) or, for any other
    suffix, TSV lines ``video_id<TAB>split`` (an optional header ``video_id<TAB>split``; blank
    lines and ``#`` comments skipped). Splits are train, val or test, exactly.
    """
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such split file")
    entries: list[tuple[int | None, Any, Any]] = []
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DatasetFormatError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None
        if not isinstance(data, dict):
            raise DatasetFormatError("expected a JSON object video_id -> split", path=path)
        entries = [(None, vid, split) for vid, split in data.items()]
    else:
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip() or text.startswith("#"):
                continue
            parts = text.rstrip("\r").split("\t")
            if len(parts) != 2:
                raise DatasetFormatError("expected two tab-separated columns: video_id, split",
                                         path=path, line=number, value=text)
            if number == 1 and parts == ["video_id", "split"]:
                continue
            entries.append((number, parts[0].strip(), parts[1].strip()))
    out: dict[str, str] = {}
    for line, vid, split in entries:
        if not vid:
            raise DatasetFormatError("expected a non-empty video_id", path=path, line=line, field="video_id",
                                     value=vid)
        if split not in SPLITS:
            raise DatasetFormatError(f"expected one of {', '.join(SPLITS)}", path=path, line=line,
                                     field=f"split of {vid}", value=split)
        if vid in out and out[vid] != split:
            raise DatasetFormatError(f"video listed twice with different splits ({out[vid]!r} first)",
                                     path=path, line=line, field="video_id", value=vid)
        out[vid] = split
    return out


# ---------------------------------------------------------------------------- trees


def children_map(parents: dict[str, str | None]) -> dict[str | None, list[str]]:
    """parent id (None = the video) -> child ids, in the order of ``parents``."""
    out: dict[str | None, list[str]] = {}
    for cid, pid in parents.items():
        out.setdefault(pid, []).append(cid)
    return out


def root_to_leaf_chains(parents: dict[str, str | None]) -> list[list[str]]:
    """Every root-to-leaf path of a comment forest (``{comment_id: parent_id or None}``).

    Roots are comments whose parent is None; paths come out depth-first in the order of
    ``parents``. Every parent must be a key (remove orphans first).
    """
    kids = children_map(parents)
    chains: list[list[str]] = []
    stack: list[list[str]] = [[r] for r in reversed(kids.get(None, []))]
    while stack:
        path = stack.pop()
        below = kids.get(path[-1], [])
        if not below:
            chains.append(path)
        stack.extend([*path, c] for c in reversed(below))
    return chains


def synthetic_features(video_id: str, modality: str, n: int, seed: int = 0) -> np.ndarray:
    """Seeded stand-in features: frames (n, 2048) >= 0 like pooled ResNet; audio (n, 128)."""
    dim = {"frames": FRAME_DIM, "audio": AUDIO_DIM}[modality]
    digest = hashlib.sha256(f"{seed}:{modality}:{video_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return np.abs(x) if modality == "frames" else x


# ---------------------------------------------------------------------------- the build

REMOVAL_RULES: tuple[tuple[str, str], ...] = (
    ("comments_unknown_video", "comments whose video_id is not in videos.jsonl"),
    ("videos_below_likes", "videos under the likes threshold"),
    ("comments_of_dropped_videos", "comments of those videos"),
    ("comments_below_likes", "comments under the likes threshold"),
    ("comments_blocked", "comments with a blocklisted (unethical) word"),
    ("comments_empty_after_cleaning", "comments that were only mentions/emoticons"),
    ("comments_missing_parent", "replies to a comment absent from the raw data"),
    ("comments_under_removed", "replies under a dropped comment"),
    ("videos_only_first_level", "videos left with only first-level comments"),
    ("eval_videos_moved_to_train", "val/test videos without a 5-response comment, moved to train"),
    ("eval_videos_dropped", "split-file val/test videos without a 5-response comment (split is fixed)"),
    ("single_comment_chains", "root-to-leaf chains of one comment (no context)"),
    ("eval_contexts_too_few_responses", "val/test comments with 1..4 replies (not a dialogue)"),
)
MODIFY_RULES: tuple[tuple[str, str], ...] = (
    ("mentions_removed", "comments that had @mentions removed"),
    ("repeats_merged", "comments whose repeated characters were merged"),
    ("emoticons_moved", "comments whose emoticons moved to metadata"),
)


def _per_split() -> dict[str, int]:
    return {s: 0 for s in SPLITS}


@dataclass
class BuildReport:
    removed: dict[str, int] = field(default_factory=lambda: {k: 0 for k, _ in REMOVAL_RULES})
    modified: dict[str, int] = field(default_factory=lambda: {k: 0 for k, _ in MODIFY_RULES})
    kept: dict[str, Any] = field(default_factory=dict)
    blocked_words: dict[str, int] = field(default_factory=dict)
    likes_unknown: dict[str, int] = field(default_factory=lambda: {"videos": 0, "comments": 0})
    # videos reaching rule 8, by where their split came from and by the split they were given
    split_source: dict[str, int] = field(default_factory=lambda: {"split_file": 0, "hash": 0})
    split_assigned: dict[str, int] = field(default_factory=_per_split)

    def to_json(self) -> dict:
        return {"removed": dict(self.removed), "modified": dict(self.modified), "kept": dict(self.kept),
                "blocked_words": dict(sorted(self.blocked_words.items())),
                "likes_unknown": dict(self.likes_unknown), "split_source": dict(self.split_source),
                "split_assigned": dict(self.split_assigned)}


@dataclass
class BuildResult:
    videos: list[dict]
    dialogues: list[dict]
    report: BuildReport


def _path_to(parents: dict[str, str | None], cid: str) -> list[str]:
    """Comment ids from the root down to ``cid``."""
    path = [cid]
    while parents[path[-1]] is not None:
        path.append(parents[path[-1]])
    return path[::-1]


def _emoticons_of(cleaned: dict[str, CleanText], ids: Iterable[str]) -> list[str]:
    return [e for cid in ids for e in cleaned[cid].emoticons]


def clean_and_split(videos: Sequence[RawVideo], comments: Sequence[RawComment], config: BuildConfig,
                    comments_path: Path | str = "<comments>",
                    splits: Mapping[str, str] | None = None) -> BuildResult:
    """The pure part of the build: raw rows in, dataset rows and rule counts out.

    ``splits`` (video_id -> split, a split file) fixes the split of the videos it names.
    """
    report = BuildReport()
    removed = report.removed
    splits = splits or {}
    report.likes_unknown = {"videos": sum(v.likes is None for v in videos),
                            "comments": sum(c.likes is None for c in comments)}
    by_video: dict[str, list[RawComment]] = {v.video_id: [] for v in videos}
    for c in comments:
        if c.video_id not in by_video:
            removed["comments_unknown_video"] += 1
        else:
            by_video[c.video_id].append(c)

    out_videos: list[dict] = []
    out_dialogues: list[dict] = []
    for video in videos:
        vcomments = by_video[video.video_id]
        if video.likes is not None and video.likes < config.video_min_likes:
            removed["videos_below_likes"] += 1
            removed["comments_of_dropped_videos"] += len(vcomments)
            continue
        raw_parent = {c.comment_id: c.parent_id for c in vcomments}
        for c in vcomments:
            if c.parent_id is not None and c.parent_id == c.comment_id:
                raise DatasetFormatError("a comment cannot be its own parent", path=comments_path,
                                         line=c.line, field="parent_id", value=c.parent_id)
        # Per-comment rules.
        cleaned: dict[str, CleanText] = {}
        for c in vcomments:
            if c.likes is not None and c.likes < config.comment_min_likes:
                removed["comments_below_likes"] += 1
                continue
            ct = clean_text(c.text, config)
            word = blocked_word(ct.text, config.blocklist)
            if word is not None:
                removed["comments_blocked"] += 1
                report.blocked_words[word] = report.blocked_words.get(word, 0) + 1
                continue
            if not ct.text:
                removed["comments_empty_after_cleaning"] += 1
                continue
            report.modified["mentions_removed"] += ct.had_mention
            report.modified["repeats_merged"] += ct.had_repeat
            report.modified["emoticons_moved"] += bool(ct.emoticons)
            cleaned[c.comment_id] = ct
        # Tree rules: a kept comment needs every ancestor kept.
        kept: dict[str, str | None] = {}
        for c in vcomments:
            if c.comment_id not in cleaned:
                continue
            pid, hops, ok = c.parent_id, 0, True
            while pid is not None:
                if pid not in raw_parent:
                    removed["comments_missing_parent"] += 1
                    ok = False
                    break
                if pid not in cleaned:
                    removed["comments_under_removed"] += 1
                    ok = False
                    break
                pid, hops = raw_parent[pid], hops + 1
                if hops > len(raw_parent):
                    raise DatasetFormatError("parent_id chain forms a cycle", path=comments_path,
                                             line=c.line, field="parent_id", value=c.parent_id)
            if ok:
                kept[c.comment_id] = c.parent_id
        if not any(pid is not None for pid in kept.values()):
            removed["videos_only_first_level"] += 1
            continue

        kids = children_map(kept)
        fixed = video.video_id in splits
        split = splits[video.video_id] if fixed else split_of(video.video_id, config.val_fraction,
                                                               config.test_fraction, config.split_seed)
        report.split_source["split_file" if fixed else "hash"] += 1
        report.split_assigned[split] += 1
        if split != "train" and not any(len(kids.get(cid, [])) >= config.min_references for cid in kept):
            if fixed:
                removed["eval_videos_dropped"] += 1
                continue
            removed["eval_videos_moved_to_train"] += 1
            split = "train"
        likes = {c.comment_id: c.likes or 0 for c in vcomments}  # unknown likes rank as 0
        text = {cid: cleaned[cid].text for cid in kept}

        n_before = len(out_dialogues)
        if split == "train":
            for chain in root_to_leaf_chains(kept):
                if len(chain) < 2:
                    removed["single_comment_chains"] += 1
                    continue
                out_dialogues.append({
                    "dialogue_id": f"{video.video_id}-{chain[-1]}", "video_id": video.video_id,
                    "split": split, "context": [text[c] for c in chain[:-1]], "response": text[chain[-1]],
                    "references": [], "emoticons": _emoticons_of(cleaned, chain), "turn_ids": chain,
                })
        else:
            for cid in kept:  # file order
                replies = kids.get(cid, [])
                if not replies:
                    continue
                if len(replies) < config.min_references:
                    removed["eval_contexts_too_few_responses"] += 1
                    continue
                order = {r: i for i, r in enumerate(replies)}
                best = sorted(replies, key=lambda r: (-likes[r], order[r]))[: config.min_references]
                context = _path_to(kept, cid)
                out_dialogues.append({
                    "dialogue_id": f"{video.video_id}-{cid}", "video_id": video.video_id, "split": split,
                    "context": [text[c] for c in context], "response": text[best[0]],
                    "references": [text[r] for r in best], "emoticons": _emoticons_of(cleaned, [*context, best[0]]),
                    "turn_ids": [*context, best[0]],
                })
        assert len(out_dialogues) > n_before  # a kept reply always yields a chain / a 5-reply context
        out_videos.append({"video_id": video.video_id, "title": video.title, "topic": video.topic,
                           "duration": video.duration, "split": split})
    report.kept = {"videos": len(out_videos), "dialogues": len(out_dialogues),
                   "comments_in": len(comments), "videos_in": len(videos)}
    for s in ("train", "val", "test"):
        report.kept[f"{s}_videos"] = sum(v["split"] == s for v in out_videos)
        report.kept[f"{s}_dialogues"] = sum(d["split"] == s for d in out_dialogues)
    return BuildResult(out_videos, out_dialogues, report)


def load_features_dir(path: str | Path) -> Callable[[str], tuple[np.ndarray | None, np.ndarray | None]]:
    """Features from ``DIR/frames.safetensors`` and ``DIR/audio.safetensors`` keyed by video_id."""
    from safetensors import safe_open

    path = Path(path)
    handles = {m: safe_open(str(path / f"{m}.safetensors"), framework="numpy")
               for m in ("frames", "audio") if (path / f"{m}.safetensors").exists()}
    if not handles:
        raise MissingInputError(f"{path}: neither frames.safetensors nor audio.safetensors found")
    keys = {m: set(h.keys()) for m, h in handles.items()}

    def get(video_id: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        found = [handles[m].get_tensor(video_id) if video_id in keys.get(m, ()) else None
                 for m in ("frames", "audio")]
        return found[0], found[1]

    return get


RAW_VIDEOS, RAW_COMMENTS, RAW_CONFIG = "videos.jsonl", "comments.jsonl", "build_config.json"


def load_build_config(raw: str | Path, config_path: str | Path | None = None, **overrides: Any) -> BuildConfig:
    """Defaults, then ``config_path`` (or RAW/build_config.json when present), then overrides."""
    path = Path(config_path) if config_path is not None else Path(raw) / RAW_CONFIG
    if config_path is not None or path.exists():
        if not path.exists():
            raise MissingInputError(f"{path}: no such build config")
        return BuildConfig.from_json(read_json(path), path=path, **overrides)
    return BuildConfig.from_json({}, **overrides)


_VIDEO_RULE_CAUSES = {  # rules that remove videos -> the options behind them
    "videos_below_likes": "--video-min-likes {video_min_likes}",
    "videos_only_first_level": "their replies were all removed (--comment-min-likes {comment_min_likes}, "
                               "the blocklist, cleaning)",
    "eval_videos_dropped": "no comment with --min-references {min_references} kept replies",
}


def empty_build_reasons(report: BuildReport, config: BuildConfig) -> dict[str, str]:
    """Why each split of a build is empty: the rule or option responsible, for the error."""
    options = config.to_json()
    removed = report.removed
    lost = "; ".join(f"{removed[rule]} removed by {rule} ({cause.format(**options)})"
                     for rule, cause in _VIDEO_RULE_CAUSES.items() if removed[rule])
    if report.kept.get("videos", 0) == 0:
        text = f"kept 0 of {report.kept.get('videos_in', 0)} videos" + (f": {lost}" if lost else "")
        return {s: text for s in SPLITS}
    fractions = {"val": config.val_fraction, "test": config.test_fraction,
                 "train": 1 - config.val_fraction - config.test_fraction}
    reasons = {}
    for name in SPLITS:
        assigned = report.split_assigned[name]
        if assigned == 0:
            source = f"no video was assigned to {name} ("
            if report.split_source["split_file"]:
                source += "the split file names none"
                source += "; " if report.split_source["hash"] else ")"
            if report.split_source["hash"]:
                source += (f"--{name}-fraction {fractions[name]:.4g}" if name != "train"
                           else f"--val-fraction + --test-fraction = {1 - fractions['train']:.4g}")
                source += f" of the {report.split_source['hash']} hashed videos)"
            reasons[name] = source
        else:
            reasons[name] = (f"all {assigned} {name} videos lack a comment with --min-references "
                             f"{config.min_references} kept replies (eval_videos_moved_to_train "
                             f"{removed['eval_videos_moved_to_train']}, eval_videos_dropped "
                             f"{removed['eval_videos_dropped']})")
    return reasons


def build_dataset(raw: str | Path, out: str | Path, config: BuildConfig | None = None, *,
                  features_dir: str | Path | None = None, split_file: str | Path | None = None,
                  allow_empty_split: bool = False, overwrite: bool = False,
                  on_notice: Callable[[str], None] | None = None) -> dict:
    """Read RAW, clean, split and write the dataset directory ``out`` atomically
    (``on_notice``: see :func:`tiktalk.dataset.write_dataset`).

    ``split_file`` (:func:`read_split_file`) fixes the split of the videos it names. A build
    with no dialogue, or (unless ``allow_empty_split``) with an empty split, raises
    :class:`EmptyResultError` naming the rule or option responsible, and writes nothing.
    Returns the manifest; its ``build`` entry holds the config, the raw files' sha256 and
    the :class:`BuildReport`.
    """
    raw = Path(raw)
    config = config or load_build_config(raw)
    videos_path, comments_path = raw / RAW_VIDEOS, raw / RAW_COMMENTS
    for p in (videos_path, comments_path):
        if not p.exists():
            raise MissingInputError(f"{p}: raw input needs {RAW_VIDEOS} and {RAW_COMMENTS}")
    splits = read_split_file(split_file) if split_file is not None else None
    raw_videos = read_raw_videos(videos_path)
    result = clean_and_split(raw_videos, read_raw_comments(comments_path), config, comments_path, splits)
    dataset = from_rows(result.videos, result.dialogues)
    reasons = empty_build_reasons(result.report, config)
    if not result.dialogues:
        raise EmptyResultError(f"the build of {raw} keeps no dialogue: {reasons['train']}")
    check_splits(dataset, allow_empty_split=allow_empty_split, reasons=reasons, what=f"the build of {raw}")
    external = load_features_dir(features_dir) if features_dir is not None else None

    def features(video_id: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        frames, audio = external(video_id) if external else (None, None)
        if frames is None and config.synthetic_frames:
            frames = synthetic_features(video_id, "frames", config.synthetic_frames, config.feature_seed)
        if audio is None and config.synthetic_audio:
            audio = synthetic_features(video_id, "audio", config.synthetic_audio, config.feature_seed)
        return frames, audio

    build_info = {
        "config": config.to_json(),
        "raw_sha256": {name: sha256_file(raw / name) for name in (RAW_VIDEOS, RAW_COMMENTS)},
        "features": "external" if features_dir else ("synthetic" if config.synthetic_frames or
                                                      config.synthetic_audio else "none"),
        **result.report.to_json(),
    }
    if splits is not None:
        known = {v.video_id for v in raw_videos}
        build_info["split_file"] = {"path": Path(split_file).name, "sha256": sha256_file(split_file),
                                    "videos": len(splits), "not_in_videos": sum(v not in known for v in splits)}
    return write_dataset(dataset, out, table_format=config.table_format, overwrite=overwrite,
                         extra_manifest={"source": "tiktalk data build", "build": build_info},
                         feature_dtype=config.feature_dtype, features=features, on_notice=on_notice)
