"""Table 5 of the paper (appendix A.1): each video assigned to the most similar topic name.

"We employ Sentence-BERT to calculate the similarity between their descriptions and the
topic category names." A video's text is its title (TikTalk's description); each topic is a
name (what the counts are keyed by) and the text that is encoded for it (the Chinese category
name by default). The most similar topic wins; below ``min_score`` (cosine), and for a video
without text, the video goes to :data:`OTHERS`. The encoder comes in as a function (the
caller picks it from ``retrieval.encoders``; this ground-floor module imports no retrieval).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tiktalk.errors import FormatError, MissingInputError, UsageError

OTHERS = "Others"


@dataclass(frozen=True)
class Topic:
    name: str  # what counts and assignments are keyed by
    text: str  # what is encoded and compared with the video's text


# The paper's ten Douyin categories (Table 5), less Others; encoded by their Douyin (Chinese) names.
DOUYIN_TOPICS: tuple[Topic, ...] = (
    Topic("Science", "科普"), Topic("Short play", "短剧"), Topic("Gaming", "游戏"),
    Topic("Lifestyle", "生活"), Topic("Recording", "记录"), Topic("Food", "美食"),
    Topic("Creativity", "创意"), Topic("Parenting", "亲子"), Topic("Campus", "校园"),
)

Encode = Callable[[list[str]], np.ndarray]  # texts -> (n, dim) float32 rows of unit norm


def check_topics(topics: Sequence[Topic], where: str = "topic list") -> tuple[Topic, ...]:
    """Non-empty, unique names, none called :data:`OTHERS`, no empty text."""
    if not topics:
        raise UsageError(f"{where}: no topics (one name a line, optionally name<TAB>text to encode)")
    seen: set[str] = set()
    for topic in topics:
        if not topic.name.strip() or not topic.text.strip():
            raise UsageError(f"{where}: topic {topic.name!r} has an empty name or text")
        if topic.name == OTHERS:
            raise UsageError(f"{where}: {OTHERS!r} is reserved for videos below --min-score")
        if topic.name in seen:
            raise UsageError(f"{where}: topic {topic.name!r} appears twice")
        seen.add(topic.name)
    return tuple(topics)


def read_topics(path: str | Path) -> tuple[Topic, ...]:
    """A topic file: UTF-8, one topic a line, ``name`` or ``name<TAB>text to encode``;
    blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"--topics {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise FormatError(f"not valid UTF-8 at byte {err.start}", path=path) from None
    topics = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, text = line.partition("\t")
        if "\t" in text:
            raise FormatError("expected name or name<TAB>text, found two tabs", path=path, line=number, value=line)
        topics.append(Topic(name.strip(), (text or name).strip()))
    return check_topics(topics, str(path))


@dataclass
class TopicAssignment:
    video_ids: list[str]
    texts: list[str]
    topics: tuple[Topic, ...]
    scores: np.ndarray  # (videos, topics) cosine; rows of videos without text are nan
    assigned: list[str]  # topic name or OTHERS, per video
    min_score: float | None

    def counts(self) -> dict[str, int]:
        """Videos per topic, every topic listed (in the topic order), then :data:`OTHERS`."""
        out = {t.name: 0 for t in self.topics} | {OTHERS: 0}
        for name in self.assigned:
            out[name] += 1
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per video: video_id, text, topic, score (of the assigned or best topic), best_topic."""
        out = []
        for i, video_id in enumerate(self.video_ids):
            row = self.scores[i]
            best = None if np.isnan(row).all() else int(np.nanargmax(row))
            out.append({"video_id": video_id, "text": self.texts[i], "topic": self.assigned[i],
                        "best_topic": None if best is None else self.topics[best].name,
                        "score": None if best is None else float(row[best])})
        return out


def assign_topics(videos: Sequence[tuple[str, str]], topics: Sequence[Topic], encode: Encode,
                  min_score: float | None = None) -> TopicAssignment:
    """Each ``(video_id, text)`` to its most similar topic (ties: the earlier topic); the
    ones without text, or whose best cosine is below ``min_score``, to :data:`OTHERS`."""
    topics = check_topics(topics)
    if min_score is not None and not math.isfinite(min_score):
        raise UsageError(f"--min-score must be a finite number, got {min_score}")
    ids = [v for v, _ in videos]
    texts = [(t or "").strip() for _, t in videos]
    scores = np.full((len(ids), len(topics)), np.nan, dtype=np.float32)
    with_text = [i for i, t in enumerate(texts) if t]
    if with_text:
        topic_vectors = np.asarray(encode([t.text for t in topics]), dtype=np.float32)  # (topics, dim)
        video_vectors = np.asarray(encode([texts[i] for i in with_text]), dtype=np.float32)  # (videos, dim)
        if topic_vectors.shape[0] != len(topics) or video_vectors.shape[1:] != topic_vectors.shape[1:]:
            raise UsageError(f"the encoder returned shapes {topic_vectors.shape} and {video_vectors.shape} "
                             f"for {len(topics)} topics and {len(with_text)} videos")
        scores[with_text] = video_vectors @ topic_vectors.T
    assigned = []
    for i in range(len(ids)):
        if not texts[i]:
            assigned.append(OTHERS)
            continue
        best = int(np.argmax(scores[i]))
        below = min_score is not None and float(scores[i, best]) < min_score
        assigned.append(OTHERS if below else topics[best].name)
    return TopicAssignment(ids, texts, topics, scores, assigned, min_score)


def agreement(assignment: TopicAssignment, labels: Mapping[str, str]) -> dict[str, Any]:
    """How the assignment agrees with labels the corpus already has (video_id -> label; empty
    = no label). A label names a topic when it equals the topic's name or text (case-folded);
    accuracy is over the videos whose label names one of the topics."""
    lookup = {}
    for topic in assignment.topics:
        lookup[topic.name.casefold()] = topic.name
        lookup[topic.text.casefold()] = topic.name
    labelled = comparable = agree = 0
    confusion: dict[str, dict[str, int]] = {}
    for video_id, assigned in zip(assignment.video_ids, assignment.assigned):
        label = (labels.get(video_id) or "").strip()
        if not label:
            continue
        labelled += 1
        row = confusion.setdefault(label, {})
        row[assigned] = row.get(assigned, 0) + 1
        if label.casefold() in lookup:
            comparable += 1
            agree += lookup[label.casefold()] == assigned
    return {"labelled": labelled, "comparable": comparable, "agree": agree,
            "accuracy": agree / comparable if comparable else None,
            "unmatched_labels": sorted(label for label in confusion if label.casefold() not in lookup),
            "confusion": confusion}


def assignments_parquet(assignment: TopicAssignment) -> bytes:
    """The per-video table (:meth:`TopicAssignment.rows`) as Parquet bytes."""
    import polars as pl

    frame = pl.DataFrame(assignment.rows(), schema={"video_id": pl.String, "text": pl.String, "topic": pl.String,
                                                    "best_topic": pl.String, "score": pl.Float64})
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def render_topics(result: Mapping[str, Any], paper: Mapping[str, int] | None = None) -> str:
    """Markdown of a topics result (``videos``, ``counts``; the paper's counts beside them)."""
    total = result["videos"] or 1
    header = "| Topic | Videos | Share |" + (" Paper | Paper share |" if paper else "")
    lines = [header, "|---|---:|---:|" + ("---:|---:|" if paper else "")]
    paper_total = sum(paper.values()) if paper else 0
    for name, n in result["counts"].items():
        line = f"| {name} | {n:,} | {n / total:.1%} |"
        if paper:
            p = paper.get(name)
            line += " - | - |" if p is None else f" {p:,} | {p / paper_total:.1%} |"
        lines.append(line)
    agree = result.get("agreement")
    if agree and agree["labelled"]:
        acc = "-" if agree["accuracy"] is None else f"{agree['accuracy']:.1%}"
        lines += ["", (f"agreement with the corpus' own topic labels: {agree['agree']} of {agree['comparable']} "
                      f"videos whose label names a topic ({acc}); {agree['labelled']} labelled")]
        if agree["unmatched_labels"]:
            lines.append(f"labels naming no topic: {', '.join(agree['unmatched_labels'][:10])}")
    return "\n".join(lines)
