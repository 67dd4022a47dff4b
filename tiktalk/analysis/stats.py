"""Table 2 of the paper (data division): per split the videos, dialogues, turns, and the
means Avg-v (video duration, seconds), Avg-t (turns per dialogue), Avg-l (utterance length).

Counting, as the paper's numbers imply (Turns / Dialogues = Avg-t): a dialogue's turns are
its context turns plus the response, counted per dialogue (two dialogues sharing a prefix
count it twice). An utterance's length is its number of characters, whitespace not counted
(LCCC spells utterances as space-separated characters). A split's videos are the distinct
videos its dialogues use. A duration of 0 means unknown (the dataset schema): such videos,
and videos absent from the videos table, are counted and named, never averaged in as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiktalk.dataset import SPLITS, TikTalkDataset

COLUMNS: tuple[str, ...] = ("Videos", "Dialogues", "Turns", "Avg-v", "Avg-t", "Avg-l")
ROWS: tuple[str, ...] = (*SPLITS, "total")


def utterance_length(text: str) -> int:
    """Characters of ``text``, whitespace not counted."""
    return sum(not ch.isspace() for ch in text)


def _row(dialogues: list[dict], durations: Mapping[str, float]) -> dict[str, Any]:
    videos = sorted({d["video_id"] for d in dialogues if d["video_id"] is not None})
    known = [durations[v] for v in videos if durations.get(v, 0.0) > 0]
    unknown = [v for v in videos if durations.get(v, 0.0) <= 0]
    turns = sum(len(d["context"]) + 1 for d in dialogues)
    chars = sum(utterance_length(u) for d in dialogues for u in (*d["context"], d["response"]))
    return {
        "Videos": len(videos),
        "Dialogues": len(dialogues),
        "Turns": turns,
        "Avg-v": sum(known) / len(known) if known else None,
        "Avg-t": turns / len(dialogues) if dialogues else None,
        "Avg-l": chars / turns if turns else None,
        "videos_unknown_duration": len(unknown),
        "unknown_duration_videos": unknown,
        "dialogues_without_video": sum(d["video_id"] is None for d in dialogues),
    }


def data_division(dataset: TikTalkDataset) -> dict[str, dict[str, Any]]:
    """Table 2 of ``dataset``: split (train/val/test/total) -> the paper's six columns
    (:data:`COLUMNS`; a mean is None where nothing is known) plus
    ``videos_unknown_duration``, ``unknown_duration_videos`` (ids) and ``dialogues_without_video``."""
    durations = dict(zip(dataset.videos["video_id"].to_list(), dataset.videos["duration"].to_list()))
    rows = list(dataset.dialogues.select("video_id", "split", "context", "response").iter_rows(named=True))
    table = {split: _row([d for d in rows if d["split"] == split], durations) for split in SPLITS}
    table["total"] = _row(rows, durations)
    return table


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column == "Avg-v":
        return f"{value:.2f}s"
    if column.startswith("Avg"):
        return f"{value:.2f}"
    return f"{value:,}"


def render_data_division(table: Mapping[str, Mapping[str, Any]],
                         paper: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Markdown of :func:`data_division`'s result (and, given ``paper``, its rows beside ours)."""
    lines = ["| Split | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for split in ROWS:
        lines.append(f"| {split.capitalize()} | " + " | ".join(_cell(c, table[split][c]) for c in COLUMNS) + " |")
        if paper is not None:
            lines.append(f"| {split.capitalize()} (paper) | "
                         + " | ".join(_cell(c, paper[split][c]) for c in COLUMNS) + " |")
    unknown = table["total"]["unknown_duration_videos"]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
        lines += ["", f"{len(unknown)} video(s) without a known duration, left out of Avg-v: {shown}"]
    without = table["total"]["dialogues_without_video"]
    if without:
        lines += ["", f"{without} dialogue(s) without a video (a text-only corpus has no Avg-v)"]
    return "\n".join(lines)
