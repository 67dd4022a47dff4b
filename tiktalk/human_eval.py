"""Human evaluation (paper section 4.1): export a rating sheet, score filled sheets.

The sheet is a UTF-8 CSV (with a BOM, so spreadsheet programs show Chinese correctly):
one row per (sampled dialogue, system), systems shuffled within each dialogue and named
only in the key file beside the sheet (``SHEET.key.json``), so annotators rate blind.
Each row gets four 1-5 integer ratings: sensibleness, specificity, multi-modal relevance
and overall quality. Agreement between the annotators' sheets is Fleiss' kappa per
criterion (subjects = rows, raters = sheets, categories = 1..5).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tiktalk.errors import OutputExistsError, UsageError

CRITERIA: tuple[str, ...] = ("sensibleness", "specificity", "multimodal_relevance", "overall_quality")
CRITERION_LABELS = {"sensibleness": "Sensibleness", "specificity": "Specificity",
                    "multimodal_relevance": "Multi-modal relevance", "overall_quality": "Overall quality"}
SCALE: tuple[int, ...] = (1, 2, 3, 4, 5)
INFO_COLUMNS: tuple[str, ...] = ("item", "dialogue_id", "video_id", "title", "context", "response")
SHEET_COLUMNS: tuple[str, ...] = INFO_COLUMNS + CRITERIA


# ----------------------------------------------------------------------------- Fleiss' kappa


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a (subjects, categories) matrix of rating counts.

    counts[i, j] = how many raters put subject i in category j; every row must sum to the
    same number of raters n >= 2. Returns nan when chance agreement is 1 (every rating in
    one category: kappa is undefined).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] == 0:
        raise UsageError(f"counts must be a non-empty (subjects, categories) matrix, got shape {counts.shape}")
    if (counts < 0).any():
        raise UsageError("counts must be non-negative")
    raters = counts.sum(axis=1)
    if not np.all(raters == raters[0]):
        bad = int(np.flatnonzero(raters != raters[0])[0])
        raise UsageError(f"every subject needs the same number of ratings: subject 0 has "
                         f"{raters[0]:g}, subject {bad} has {raters[bad]:g}")
    n = raters[0]
    if n < 2:
        raise UsageError(f"Fleiss' kappa needs at least 2 raters per subject, got {n:g}")
    p_agree = ((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))).mean()  # P-bar
    p_cat = counts.sum(axis=0) / counts.sum()  # p_j
    p_chance = float((p_cat**2).sum())  # P_e
    if math.isclose(p_chance, 1.0):
        return float("nan")
    return float((p_agree - p_chance) / (1.0 - p_chance))


def rating_counts(ratings: np.ndarray, categories: Sequence[int] = SCALE) -> np.ndarray:
    """(subjects, raters) integer ratings -> (subjects, categories) counts."""
    ratings = np.asarray(ratings)
    return np.stack([(ratings == c).sum(axis=1) for c in categories], axis=1)


# ----------------------------------------------------------------------------- export


@dataclass
class Sheet:
    rows: list[dict[str, str]]  # SHEET_COLUMNS, ratings blank
    key: dict[str, dict[str, str]]  # item -> {"dialogue_id", "system"}
    n_dialogues: int
    n_requested: int
    seed: int
    note: str | None = None
    systems: list[str] = field(default_factory=list)


def build_sheet(
    dialogues: Sequence[Mapping[str, Any]],
    systems: Mapping[str, Mapping[str, str]],
    n: int = 100,
    seed: int = 0,
) -> Sheet:
    """Sample ``n`` dialogues (seeded; all of them if fewer) and lay out one row per system.

    dialogues: dicts with dialogue_id, video_id, title, context (list of turns);
    systems: system name -> {dialogue_id: response}. The sample depends only on the set
    of dialogue ids and the seed, not on their order.
    """
    if n < 1:
        raise UsageError(f"--n must be >= 1, got {n}")
    if not systems:
        raise UsageError("at least one system's predictions are needed")
    by_id = {d["dialogue_id"]: d for d in dialogues}
    rng = random.Random(seed)
    chosen_ids = rng.sample(sorted(by_id), min(n, len(by_id)))
    note = None
    if len(by_id) < n:
        note = f"the split has only {len(by_id)} dialogues: the sheet holds all of them ({n} requested)"
    names = list(systems)
    rows, key = [], {}
    for d_index, did in enumerate(chosen_ids, 1):
        order = names[:]
        rng.shuffle(order)  # blind: position says nothing about the system
        for s_index, system in enumerate(order):
            if did not in systems[system]:
                raise UsageError(f"system {system!r} has no response for dialogue {did!r}")
            item = f"{d_index:03d}-{chr(ord('a') + s_index)}" if len(order) <= 26 else f"{d_index:03d}-{s_index}"
            d = by_id[did]
            rows.append({
                "item": item, "dialogue_id": did, "video_id": d.get("video_id") or "",
                "title": d.get("title") or "", "context": "\n".join(d.get("context") or []),
                "response": systems[system][did], **{c: "" for c in CRITERIA},
            })
            key[item] = {"dialogue_id": did, "system": system}
    return Sheet(rows, key, len(chosen_ids), n, seed, note, names)


def key_path_for(sheet_path: str | Path) -> Path:
    sheet_path = Path(sheet_path)
    return sheet_path.with_name(sheet_path.stem + ".key.json")


def write_sheet_files(path: str | Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
                      key: Mapping[str, Any], overwrite: bool = False) -> Path:
    """A sheet CSV (BOM-prefixed, for spreadsheets) and its hidden key beside it, both written
    atomically after checking neither exists (unless ``overwrite``); returns the key's path."""
    from tiktalk.io import atomic_write_text, write_json

    path = Path(path)
    key_path = key_path_for(path)
    for p in (path, key_path):
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p} exists (pass --overwrite to replace it)")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_json(key_path, dict(key))
    atomic_write_text(path, "\ufeff" + buf.getvalue())
    return key_path


def write_sheet(path: str | Path, sheet: Sheet, overwrite: bool = False,
                provenance: Mapping[str, Any] | None = None) -> Path:
    """Write the CSV and its key (both atomically); returns the key's path."""
    return write_sheet_files(path, SHEET_COLUMNS, sheet.rows, {
        "format": "tiktalk-human-eval-key", "version": 1, "criteria": list(CRITERIA),
        "scale": [SCALE[0], SCALE[-1]], "seed": sheet.seed, "n_requested": sheet.n_requested,
        "n_dialogues": sheet.n_dialogues, "systems": sheet.systems, **dict(provenance or {}),
        "items": sheet.key,
    }, overwrite)


# ----------------------------------------------------------------------------- score


def read_sheet(path: str | Path) -> dict[str, dict[str, int]]:
    """item -> {criterion: rating} of one filled sheet; every rating an integer 1..5."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in ("item", *CRITERIA) if c not in header]
        if missing:
            raise UsageError(f"{path}: header lacks column(s) {missing} (has {header})")
        out: dict[str, dict[str, int]] = {}
        for row in reader:
            line = reader.line_num
            item = (row.get("item") or "").strip()
            if not item:
                raise UsageError(f"{path}: line {line}: column 'item' is empty")
            if item in out:
                raise UsageError(f"{path}: line {line}: item {item!r} appears twice")
            ratings = {}
            for crit in CRITERIA:
                raw = row.get(crit)
                value = (raw or "").strip()
                if not value.isdigit() or int(value) not in SCALE:
                    raise UsageError(f"{path}: line {line} (item {item!r}), column {crit!r}: "
                                     f"{raw!r} is not an integer from {SCALE[0]} to {SCALE[-1]}")
                ratings[crit] = int(value)
            out[item] = ratings
    if not out:
        raise UsageError(f"{path}: the sheet has no rated rows")
    return out


def score_sheets(paths: Sequence[str | Path], key: str | Path | None = None) -> dict[str, Any]:
    """Means per criterion (overall and per system) and Fleiss' kappa per criterion.

    Every sheet must rate the same items. With ``key`` (the export's key file) means are
    also given per system; without it every row counts as one system ``all``.
    """
    import json

    sheets = [read_sheet(p) for p in paths]
    items = sorted(sheets[0])
    for path, sheet in zip(paths[1:], sheets[1:]):
        missing = [i for i in items if i not in sheet]
        extra = sorted(set(sheet) - set(items))
        if missing or extra:
            raise UsageError(f"{path}: rates different items than {paths[0]}: missing {missing[:5]}"
                             f"{' ...' if len(missing) > 5 else ''}, extra {extra[:5]}"
                             f"{' ...' if len(extra) > 5 else ''}")
    system_of = {i: "all" for i in items}
    if key is not None:
        key_items = json.loads(Path(key).read_text(encoding="utf-8")).get("items", {})
        absent = [i for i in items if i not in key_items]
        if absent:
            raise UsageError(f"{key}: no system for item(s) {absent[:5]} of {paths[0]}")
        system_of = {i: key_items[i]["system"] for i in items}
    systems = sorted(set(system_of.values()))
    criteria: dict[str, dict[str, Any]] = {}
    per_system: dict[str, dict[str, float]] = {s: {} for s in systems}
    for crit in CRITERIA:
        ratings = np.array([[sheet[i][crit] for sheet in sheets] for i in items])  # (items, raters)
        kappa = fleiss_kappa(rating_counts(ratings)) if len(sheets) >= 2 else float("nan")
        criteria[crit] = {"mean": float(ratings.mean()), "std": float(ratings.std()),
                          "kappa": None if math.isnan(kappa) else kappa}
        for s in systems:
            rows = [k for k, i in enumerate(items) if system_of[i] == s]
            per_system[s][crit] = float(ratings[rows].mean())
    note = None
    if len(sheets) < 2:
        note = "Fleiss' kappa needs at least 2 annotators' sheets"
    elif any(c["kappa"] is None for c in criteria.values()):
        note = "kappa is undefined (null) where every rating falls in one category"
    return {"annotators": len(sheets), "items": len(items), "sheets": [str(p) for p in paths],
            "key": None if key is None else str(key), "criteria": criteria, "systems": per_system,
            "note": note}


def render_scores(result: Mapping[str, Any]) -> str:
    lines = [f"{result['annotators']} annotator(s), {result['items']} rated rows", "",
             "| criterion | mean | std | Fleiss' kappa |", "|---|---:|---:|---:|"]
    for crit, c in result["criteria"].items():
        kappa = "-" if c["kappa"] is None else f"{c['kappa']:.3f}"
        lines.append(f"| {CRITERION_LABELS[crit]} | {c['mean']:.2f} | {c['std']:.2f} | {kappa} |")
    if len(result["systems"]) > 1:
        lines += ["", "| system | " + " | ".join(CRITERION_LABELS[c] for c in CRITERIA) + " |",
                  "|---|" + "---:|" * len(CRITERIA)]
        for system, means in result["systems"].items():
            lines.append(f"| {system} | " + " | ".join(f"{means[c]:.2f}" for c in CRITERIA) + " |")
    if result.get("note"):
        lines += ["", f"note: {result['note']}"]
    return "\n".join(lines)
