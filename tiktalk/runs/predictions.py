"""Prediction and reference files: the readers ``tiktalk evaluate``, ``human-eval`` and the probes share.

Prediction files are either plain text (one response per line, in the order of the
references / of the split's dialogues, as nlg-eval takes them) or the JSONL that
``tiktalk generate`` writes (one ``{"dialogue_id": ..., "response": ...}`` per line),
matched by id against a dataset. Reference files are plain text.
"""

from __future__ import annotations

import json
from pathlib import Path

from tiktalk.errors import UsageError
from tiktalk.io import open_input

JSONL_FIELDS = ("dialogue_id", "response")


# ----------------------------------------------------------------------------- readers


def read_text_lines(path: str | Path) -> list[str]:
    """One response per line (a trailing newline adds no line; '\\r\\n' is accepted)."""
    path = Path(path)
    with open_input(path) as fh:  # a FIFO or device is refused at once, not read for ever
        data = fh.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err})") from None
    return text.splitlines()


def is_generate_jsonl(path: str | Path) -> bool:
    """A ``.jsonl`` file, or one whose first non-empty line is a JSON object with both fields."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return True
    for line in read_text_lines(path):
        if line.strip():
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):  # (JSONDecodeError is a ValueError)
                return False
            return isinstance(obj, dict) and all(k in obj for k in JSONL_FIELDS)
    return False


def read_generate_jsonl(path: str | Path) -> list[tuple[str, str]]:
    """(dialogue_id, response) per line of a ``tiktalk generate`` JSONL, ids unique."""
    from tiktalk.dataset import read_jsonl_rows  # the one JSONL reader: names file and line

    path = Path(path)
    out: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    for line_no, obj in read_jsonl_rows(path):
        if not isinstance(obj, dict):
            raise UsageError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
        for key in JSONL_FIELDS:
            if not isinstance(obj.get(key), str):
                raise UsageError(f"{path}:{line_no}: field {key!r} must be a string, got {obj.get(key)!r}")
        did = obj["dialogue_id"]
        if did in first_line:
            raise UsageError(f"{path}:{line_no}: duplicate dialogue_id {did!r} (first on line {first_line[did]})")
        first_line[did] = line_no
        out.append((did, obj["response"]))
    return out


def _first(ids: list[str], k: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:k])
    return shown + (f" and {len(ids) - k} more" if len(ids) > k else "")


def responses_for_split(path: str | Path, dialogue_ids: list[str], split: str) -> list[str]:
    """The responses of ``path`` in the order of ``dialogue_ids`` (one split's dialogues).

    JSONL is matched by id (every dialogue needs one, no unknown ids); plain text must have
    exactly one line per dialogue.
    """
    path = Path(path)
    if is_generate_jsonl(path):
        by_id = dict(read_generate_jsonl(path))
        missing = [d for d in dialogue_ids if d not in by_id]
        known = set(dialogue_ids)
        unknown = [d for d in by_id if d not in known]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"{len(missing)} of the {len(dialogue_ids)} {split} dialogues have no "
                             f"prediction (first: {_first(missing)})")
            if unknown:
                parts.append(f"{len(unknown)} predicted dialogue_id(s) are not in split {split} "
                             f"(first: {_first(unknown)})")
            raise UsageError(f"{path}: dialogue id mismatch: " + "; ".join(parts))
        return [by_id[d] for d in dialogue_ids]
    lines = read_text_lines(path)
    if len(lines) != len(dialogue_ids):
        raise UsageError(f"{path}: {len(lines)} prediction lines but split {split} has "
                         f"{len(dialogue_ids)} dialogues: counts must match (or use the JSONL of "
                         "`tiktalk generate`, matched by dialogue_id)")
    return lines


def split_references(data: str | Path, split: str) -> tuple[list[str], list[list[str]]]:
    """Dialogue ids and reference lists of one split of a built dataset (or ``sample``)."""
    import polars as pl

    from tiktalk.dataset import load_dataset

    frame = load_dataset(data).dialogues.filter(pl.col("split") == split)
    if frame.height == 0:
        raise UsageError(f"{data}: split {split!r} has no dialogues")
    ids = frame["dialogue_id"].to_list()
    refs = frame["references"].to_list()
    empty = [d for d, r in zip(ids, refs) if not r]
    if empty:
        raise UsageError(f"{data}: {len(empty)} dialogue(s) of split {split!r} have no references "
                         f"(first: {_first(empty)}); evaluate on val or test")
    return ids, refs


def load_eval_inputs(
    predictions: str | Path,
    data: str | Path | None = None,
    split: str = "test",
    references: list[str | Path] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Hypotheses and their reference lists, aligned and count-checked."""
    if (data is None) == (not references):
        raise UsageError("give either --data DIR (with --split) or --references R1 [R2 ...], not both")
    if data is not None:
        ids, refs = split_references(data, split)
        return responses_for_split(predictions, ids, split), refs
    pred_path = Path(predictions)
    if is_generate_jsonl(pred_path):
        hyps = [resp for _, resp in read_generate_jsonl(pred_path)]
    else:
        hyps = read_text_lines(pred_path)
    columns = []
    for ref_path in references:
        lines = read_text_lines(ref_path)
        if len(lines) != len(hyps):
            raise UsageError(f"{ref_path}: {len(lines)} reference lines but {pred_path} has "
                             f"{len(hyps)} predictions: counts must match")
        columns.append(lines)
    return hyps, [list(row) for row in zip(*columns)]
