"""Figure 2(b) and appendix A.3 of the paper: which context sources a response needs, and
which kind of knowledge it uses, as annotation sheets (like ``human-eval``).

Two tasks (:data:`TASKS`):

* ``context-source``: for each response, would it be understood without the text, vision,
  audio context, or external knowledge? Each column is 1 (needs it) or 0/blank; several may
  apply (Figure 2(b)).
* ``knowledge-type``: column ``knowledge_type`` is ``general`` or ``personalized`` (or ``g`` /
  ``p``), appendix A.3.

Every sheet also has a ``skip`` column (1: too hard to judge; the paper let annotators skip).
The sheet is a UTF-8 CSV with a BOM; rows from several corpora are shuffled together and the
key beside it (``SHEET.key.json``) alone says which corpus, dialogue and level (turns before
the response + 1) an item is, so annotators label blind. Scoring: shares per source or type
over the items no annotator skipped (mean of all annotators' labels, and by majority), per
corpus and per level, and Fleiss' kappa (subjects = items, raters = sheets).
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tiktalk.analysis.label_tasks import TASKS, LabelTask
from tiktalk.errors import FormatError, MissingInputError, UsageError
from tiktalk.human_eval import fleiss_kappa

INFO_COLUMNS: tuple[str, ...] = ("item", "video_id", "title", "context", "response")
SKIP = "skip"
KEY_FORMAT = "tiktalk-label-key"


def get_task(name: str) -> LabelTask:
    if name not in TASKS:
        raise UsageError(f"unknown label task {name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def sheet_columns(task: LabelTask) -> tuple[str, ...]:
    return (*INFO_COLUMNS, *task.columns, SKIP)


# ----------------------------------------------------------------------------- export


@dataclass
class LabelSheet:
    task: LabelTask
    rows: list[dict[str, str]]
    key: dict[str, dict[str, Any]]  # item -> {"dataset", "dialogue_id", "level"}
    sampled: dict[str, int]  # dataset -> responses sampled
    n_requested: int
    seed: int
    notes: list[str] = field(default_factory=list)


def build_label_sheet(task: LabelTask, pools: Mapping[str, Sequence[Mapping[str, Any]]], n: int = 300,
                      seed: int = 0) -> LabelSheet:
    """``n`` responses drawn (seeded) from each corpus of ``pools`` (all when fewer), shuffled together.

    pools: corpus name -> dicts with dialogue_id, video_id, title, context (turns), response.
    The draw depends on the set of dialogue ids and the seed, not on their order.
    """
    if n < 1:
        raise UsageError(f"--n must be >= 1, got {n}")
    if not pools:
        raise UsageError("no corpus to sample from")
    rng = random.Random(seed)
    drawn: list[tuple[str, Mapping[str, Any]]] = []
    sampled, notes = {}, []
    for name, dialogues in pools.items():
        by_id = {d["dialogue_id"]: d for d in dialogues}
        if not by_id:
            raise UsageError(f"{name}: no responses to sample")
        chosen = rng.sample(sorted(by_id), min(n, len(by_id)))
        if len(by_id) < n:
            notes.append(f"{name} has only {len(by_id)} responses: the sheet holds all of them ({n} requested)")
        sampled[name] = len(chosen)
        drawn += [(name, by_id[c]) for c in chosen]
    rng.shuffle(drawn)  # blind: position says nothing about the corpus
    width = max(3, len(str(len(drawn))))
    rows, key = [], {}
    for index, (name, d) in enumerate(drawn, 1):
        item = f"{index:0{width}d}"
        context = list(d.get("context") or [])
        rows.append({"item": item, "video_id": d.get("video_id") or "", "title": d.get("title") or "",
                     "context": "\n".join(context), "response": d["response"],
                     **{c: "" for c in task.columns}, SKIP: ""})
        key[item] = {"dataset": name, "dialogue_id": d["dialogue_id"], "level": len(context) + 1}
    return LabelSheet(task, rows, key, sampled, n, seed, notes)


def write_label_sheet(path: str | Path, sheet: LabelSheet, overwrite: bool = False,
                      provenance: Mapping[str, Any] | None = None) -> Path:
    """Write the CSV and its key (both atomically); returns the key's path."""
    from tiktalk.human_eval import write_sheet_files

    return write_sheet_files(path, sheet_columns(sheet.task), sheet.rows, {
        "format": KEY_FORMAT, "version": 1, "task": sheet.task.name, "seed": sheet.seed,
        "n_requested": sheet.n_requested, "sampled": sheet.sampled, **dict(provenance or {}),
        "items": sheet.key}, overwrite)


def read_dialogue_list(path: str | Path, *, option: str, require_source: str | None = None) -> list[dict[str, Any]]:
    """A list of dialogues: JSONL, one ``{"dialogue_id": ..., "response": optional text}`` a line.

    A line may carry ``sources`` (a list, as ``label score --majority-out`` writes); given
    ``require_source``, such a line counts only when the source is among them.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{option} {path}: no such file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise FormatError(f"not valid JSON ({err.msg})", path=path, line=number) from None
        if not isinstance(row, dict) or not isinstance(row.get("dialogue_id"), str) or not row["dialogue_id"]:
            raise FormatError("expected an object with a non-empty string", path=path, line=number,
                              field="dialogue_id", value=row.get("dialogue_id") if isinstance(row, dict) else row)
        if "response" in row and not (isinstance(row["response"], str) and row["response"].strip()):
            raise FormatError("expected a non-empty string", path=path, line=number, field="response",
                              value=row["response"])
        sources = row.get("sources")
        if sources is not None and not (isinstance(sources, list) and all(isinstance(s, str) for s in sources)):
            raise FormatError("expected a list of strings", path=path, line=number, field="sources", value=sources)
        if require_source is None or sources is None or require_source in sources:
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- score


def _cell(task: LabelTask, column: str, raw: str | None, *, path: Path, line: int, item: str) -> Any:
    value = (raw or "").strip().lower()
    where = f"{path}: line {line} (item {item!r}), column {column!r}: {raw!r}"
    if column == SKIP or task.multi:
        if value in ("", "0"):
            return 0
        if value == "1":
            return 1
        raise UsageError(f"{where} is not 1 or 0/blank")
    for category in task.categories:
        if value in (category, category[0]):
            return category
    raise UsageError(f"{where} is not one of {', '.join(task.categories)} (or their first letters)")


def read_label_sheet(task: LabelTask, path: str | Path) -> dict[str, dict[str, Any] | None]:
    """item -> {column: label} of one filled sheet, or None where the annotator skipped it."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such sheet")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in ("item", *task.columns, SKIP) if c not in header]
        if missing:
            raise UsageError(f"{path}: header lacks column(s) {missing} for task {task.name} (has {header})")
        out: dict[str, dict[str, Any] | None] = {}
        for row in reader:
            line = reader.line_num
            item = (row.get("item") or "").strip()
            if not item:
                raise UsageError(f"{path}: line {line}: column 'item' is empty")
            if item in out:
                raise UsageError(f"{path}: line {line}: item {item!r} appears twice")
            if _cell(task, SKIP, row.get(SKIP), path=path, line=line, item=item):
                out[item] = None
                continue
            out[item] = {c: _cell(task, c, row.get(c), path=path, line=line, item=item) for c in task.columns}
    if not out:
        raise UsageError(f"{path}: the sheet has no rows")
    return out


def _indicators(task: LabelTask, labels: dict[str, Any]) -> list[int]:
    """One 0/1 per category of ``task``."""
    if task.multi:
        return [int(labels[c]) for c in task.categories]
    return [int(labels["knowledge_type"] == c) for c in task.categories]


def _shares(task: LabelTask, ratings: np.ndarray) -> dict[str, Any]:
    """ratings: (items, raters, categories) 0/1 -> shares (mean of all labels) and majority shares."""
    n_items, n_raters = ratings.shape[:2]
    if n_items == 0:
        return {"items": 0, "shares": {c: None for c in task.categories},
                "majority_shares": {c: None for c in task.categories}}
    votes = ratings.sum(axis=1)  # (items, categories)
    return {"items": n_items,
            "shares": {c: float(ratings[:, :, j].mean()) for j, c in enumerate(task.categories)},
            "majority_shares": {c: float((votes[:, j] * 2 > n_raters).mean()) for j, c in enumerate(task.categories)}}


def score_label_sheets(task: LabelTask, paths: Sequence[str | Path], key: str | Path | None = None) -> dict[str, Any]:
    """Shares per category (overall, per corpus and level from ``key``) and Fleiss' kappa.

    Every sheet must list the same items; items any annotator skipped are left out. Kappa:
    for context-source one binary kappa per source, for knowledge-type one over the types.
    """
    from tiktalk.io import read_json

    sheets = [read_label_sheet(task, p) for p in paths]
    items = sorted(sheets[0])
    for path, sheet in zip(paths[1:], sheets[1:]):
        missing = [i for i in items if i not in sheet]
        extra = sorted(set(sheet) - set(items))
        if missing or extra:
            raise UsageError(f"{path}: lists different items than {paths[0]}: missing {missing[:5]}, extra {extra[:5]}")
    info = {i: {"dataset": "all", "dialogue_id": None, "level": None} for i in items}
    if key is not None:
        data = read_json(key)
        if not isinstance(data, dict) or data.get("format") != KEY_FORMAT:
            raise UsageError(f"{key}: not a label key (format {KEY_FORMAT!r})")
        if data.get("task") != task.name:
            raise UsageError(f"{key}: a key of task {data.get('task')!r}, not {task.name!r}")
        absent = [i for i in items if i not in data.get("items", {})]
        if absent:
            raise UsageError(f"{key}: no entry for item(s) {absent[:5]} of {paths[0]}")
        info = {i: data["items"][i] for i in items}
    used = [i for i in items if all(sheet[i] is not None for sheet in sheets)]
    ratings = np.array([[_indicators(task, sheet[i]) for sheet in sheets] for i in used],
                       dtype=np.int64).reshape(len(used), len(sheets), len(task.categories))
    result: dict[str, Any] = {"task": task.name, "annotators": len(sheets), "sheets": [str(p) for p in paths],
                              "key": None if key is None else str(key), **_shares(task, ratings),
                              "items": len(items), "scored": len(used), "skipped": len(items) - len(used)}
    kappa: dict[str, float | None] | float | None
    if len(sheets) < 2 or not used:
        kappa = None
    elif task.multi:
        kappa = {}
        for j, c in enumerate(task.categories):
            yes = ratings[:, :, j].sum(axis=1)
            value = fleiss_kappa(np.stack([len(sheets) - yes, yes], axis=1))
            kappa[c] = None if math.isnan(value) else value
    else:
        value = fleiss_kappa(ratings.sum(axis=1))
        kappa = None if math.isnan(value) else value
    result["kappa"] = kappa
    groups: dict[str, dict[Any, list[int]]] = {"datasets": {}, "levels": {}}
    for row, i in enumerate(used):
        groups["datasets"].setdefault(info[i]["dataset"], []).append(row)
        if info[i].get("level") is not None:
            groups["levels"].setdefault(str(info[i]["level"]), []).append(row)
    result["datasets"] = {name: _shares(task, ratings[rows]) for name, rows in sorted(groups["datasets"].items())}
    result["levels"] = {lv: _shares(task, ratings[rows]) for lv, rows in sorted(groups["levels"].items(),
                                                                                  key=lambda kv: int(kv[0]))}
    result["majority"] = [
        {"item": i, "dataset": info[i]["dataset"], "dialogue_id": info[i]["dialogue_id"],
         "sources" if task.multi else "types":
             [c for j, c in enumerate(task.categories) if ratings[row, :, j].sum() * 2 > len(sheets)]}
        for row, i in enumerate(used)]
    notes = []
    if len(sheets) < 2:
        notes.append("Fleiss' kappa needs at least 2 annotators' sheets")
    if result["skipped"]:
        notes.append(f"{result['skipped']} item(s) skipped by at least one annotator are left out")
    result["note"] = "; ".join(notes) or None
    return result


def render_label_scores(result: Mapping[str, Any], paper: Mapping[str, float] | None = None) -> str:
    task = get_task(result["task"])
    kappa = result["kappa"]
    lines = [(f"{task.name}: {result['annotators']} annotator(s), {result['items']} items, "
             f"{result['skipped']} skipped"), "",
             "| " + ("source" if task.multi else "type") + " | share | majority share | Fleiss' kappa |"
             + (" paper |" if paper else ""), "|---|---:|---:|---:|" + ("---:|" if paper else "")]
    for c in task.categories:
        share, major = result["shares"][c], result["majority_shares"][c]
        k = kappa.get(c) if isinstance(kappa, dict) else kappa
        line = (f"| {c} | {'-' if share is None else f'{share:.1%}'} | {'-' if major is None else f'{major:.1%}'} | "
                f"{'-' if k is None else f'{k:.3f}'} |")
        if paper:
            line += f" {paper[c]:.0%} |" if c in paper else " - |"
        lines.append(line)
    if len(result["datasets"]) > 1:
        lines += ["", "| corpus | items | " + " | ".join(task.categories) + " |",
                  "|---|---:|" + "---:|" * len(task.categories)]
        for name, group in result["datasets"].items():
            lines.append(f"| {name} | {group['items']} | " + " | ".join(
                "-" if group["shares"][c] is None else f"{group['shares'][c]:.1%}" for c in task.categories) + " |")
    if result.get("note"):
        lines += ["", f"note: {result['note']}"]
    return "\n".join(lines)
