"""From raw Douyin-style comment trees to TikTalk dialogues (paper section 3.1): ``tiktalk data build``.

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

The text rules are in :mod:`tiktalk.cleaning`, the raw readers in :mod:`tiktalk.raw`.

The paper gives no thresholds or blocklist; the defaults below are choices, all
configurable (CLI flags or ``build_config.json``). A build that keeps no dialogue, or leaves
a split empty, is an error naming the rule or option responsible (unless empty splits are
allowed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tiktalk.cleaning import (
    REPEAT_KEEP,
    REPEAT_MIN_RUN,
    CleanText,
    TextRules,
    blocked_word,
    clean_text,
)
from tiktalk.dataset import (
    DEFAULT_SPLIT_SEED,
    EVAL_REFERENCES,
    MAX_AUDIO,
    MAX_FRAMES,
    PAPER_TEST_FRACTION,
    PAPER_VAL_FRACTION,
    SPLITS,
    DatasetFormatError,
    check_splits,
    from_rows,
    load_features_dir,
    split_of,
    synthetic_features,
    write_dataset,
)
from tiktalk.errors import EmptyResultError, MissingInputError, UsageError
from tiktalk.io import read_json, sha256_file
from tiktalk.options import COUNT, FRACTION, POSITIVE_INT, SEED, bounded, check_fields
from tiktalk.raw import (
    RAW_COMMENTS,
    RAW_VIDEOS,
    RawComment,
    RawVideo,
    children_map,
    read_raw_comments,
    read_raw_videos,
    read_split_file,
    root_to_leaf_chains,
)

DEFAULT_BLOCKLIST: tuple[str, ...] = ("傻逼", "傻X", "脑残", "去死", "滚蛋", "垃圾人", "贱人", "废物")


@dataclass(frozen=True)
class BuildConfig:
    """Every option of ``tiktalk data build``; defaults live here and only here (the text rules'
    two: :mod:`tiktalk.cleaning`)."""

    video_min_likes: int = field(default=100, metadata=bounded(COUNT))  # keep videos with at least this many likes
    comment_min_likes: int = field(default=1, metadata=bounded(COUNT))  # keep comments with at least this many likes
    blocklist: tuple[str, ...] = DEFAULT_BLOCKLIST  # a comment containing one is dropped
    repeat_min_run: int = REPEAT_MIN_RUN  # a character repeated this often or more is merged ...
    repeat_keep: int = REPEAT_KEEP  # ... into this many copies (哈哈哈哈 -> 哈哈)
    min_references: int = field(default=EVAL_REFERENCES, metadata=bounded(POSITIVE_INT))  # genuine responses needed by a val/test dialogue
    val_fraction: float = field(default=PAPER_VAL_FRACTION, metadata=bounded(FRACTION))  # share of videos hashed to val (paper: 1,000 of 38,703)
    test_fraction: float = field(default=PAPER_TEST_FRACTION, metadata=bounded(FRACTION))  # share hashed to test (paper: 2,000 of 38,703)
    split_seed: str = DEFAULT_SPLIT_SEED  # salt of the video_id hash that picks the split
    synthetic_frames: int = field(default=0, metadata=bounded(COUNT))  # > 0: write seeded random frame features, this many per video
    synthetic_audio: int = field(default=0, metadata=bounded(COUNT))  # > 0: same for audio patches
    feature_seed: int = field(default=0, metadata=bounded(SEED))  # seed of the synthetic features
    feature_dtype: str = "float16"  # storage dtype of features (read back as float32)
    table_format: str = "jsonl"  # jsonl or parquet

    def __post_init__(self) -> None:
        check_fields(self)  # numeric ranges, declared with the fields (tiktalk.options)
        TextRules(self.repeat_min_run, self.repeat_keep)  # checks the two text-rule settings
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


RAW_CONFIG = "build_config.json"  # beside RAW_VIDEOS and RAW_COMMENTS: the build options of a raw directory


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
