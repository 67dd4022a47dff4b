"""``--from kdconv``: KdConv (thu-coai), one domain, with the knowledge triples each response used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tiktalk.dataset import GOLD_ATTRS_FILE, DatasetFormatError
from tiktalk.errors import UsageError
from tiktalk.importers import ImportOptions
from tiktalk.importers.records import ImportResult, import_records, read_json_file

KDCONV_FILES = {"dev": "dev.json", "test": "test.json"}
KDCONV_VAL_FRACTION = 0.1  # share of KdConv dev dialogues drawn (seeded) into val; the rest train
KDCONV_SEED = 0


def import_kdconv(
    directory: str | Path, *, val_fraction: float = KDCONV_VAL_FRACTION, seed: int = KDCONV_SEED,
    allow_empty_split: bool = False,
) -> ImportResult:
    """KdConv (thu-coai; one domain's ``dev.json`` and ``test.json``) as a text-only dataset.

    Every utterance after the first of a dialogue is a response, with the utterances before
    it as context. ``test.json`` -> test; ``dev.json`` -> val for ``round(val_fraction * n)``
    dialogues drawn by a seeded permutation (``numpy.random.default_rng(seed)``), train for
    the rest: the split is by dialogue, so no dialogue is in two splits. A KdConv dialogue's
    id (``kdconv-dev-007``) is the video_id of its records and its entity ``name`` their
    title; records are ``kdconv-dev-007-03`` (utterance 3 as the response). Each response's
    gold ``attrs`` (name, attrname, attrvalue) go to the side file ``gold_attrs.jsonl``, one
    ``{"dialogue_id", "attrs"}`` line per record (``[]`` when the utterance used none).
    """
    directory = Path(directory)
    if not 0 <= val_fraction <= 1:
        raise UsageError(f"KdConv val_fraction {val_fraction} is not in [0, 1]")
    records: list[tuple[int | None, dict]] = []
    attrs_lines: list[str] = []
    with_attrs = 0
    for part, name in KDCONV_FILES.items():
        path = directory / name
        data = read_json_file(path)
        if not isinstance(data, list):
            raise DatasetFormatError("expected a list of dialogues", path=path)
        order = np.random.default_rng(seed).permutation(len(data))
        val = set(order[: round(val_fraction * len(data))].tolist()) if part == "dev" else set()
        for i, dialogue in enumerate(data):
            messages = dialogue.get("messages") if isinstance(dialogue, dict) else None
            if not isinstance(messages, list) or len(messages) < 2:
                raise DatasetFormatError("expected a dialogue object with >= 2 messages", path=path,
                                         field=f"[{i}].messages", value=messages)
            texts: list[str] = []
            gold: list[list[dict]] = []
            for j, message in enumerate(messages):
                text = message.get("message") if isinstance(message, dict) else None
                attrs = message.get("attrs", []) if isinstance(message, dict) else None
                if not isinstance(text, str) or not text.strip():
                    raise DatasetFormatError("expected a non-empty string", path=path,
                                             field=f"[{i}].messages[{j}].message", value=text)
                if not (isinstance(attrs, list) and all(isinstance(a, dict) for a in attrs)):
                    raise DatasetFormatError("expected a list of objects", path=path,
                                             field=f"[{i}].messages[{j}].attrs", value=attrs)
                texts.append(text.strip())
                gold.append([{k: a.get(k) for k in ("name", "attrname", "attrvalue")} for a in attrs])
            split = "test" if part == "test" else "val" if i in val else "train"
            video_id = f"kdconv-{part}-{i:03d}"
            title = dialogue.get("name", "")
            for end in range(1, len(texts)):
                did = f"{video_id}-{end:02d}"
                records.append((None, {"dialogue_id": did, "video_id": video_id, "split": split,
                                       "context": texts[:end], "response": texts[end],
                                       "title": title if isinstance(title, str) else ""}))
                attrs_lines.append(json.dumps({"dialogue_id": did, "attrs": gold[end]}, ensure_ascii=False) + "\n")
                with_attrs += bool(gold[end])
    result = import_records(records, path=directory, allow_empty_split=allow_empty_split)
    result.report["kdconv"] = {"val_fraction": val_fraction, "seed": seed,
                               "responses_with_attrs": with_attrs}
    result.extra_files[GOLD_ATTRS_FILE] = "".join(attrs_lines)
    result.manifest["source"] = "KdConv"
    return result


def from_options(source: str | Path, options: ImportOptions) -> ImportResult:
    """The reader of ``tiktalk data import --from kdconv``: ``split_seed`` must be an integer."""
    try:
        seed = KDCONV_SEED if options.split_seed is None else int(options.split_seed)
    except ValueError:
        raise UsageError(f"--split-seed {options.split_seed!r}: kdconv takes an integer seed") from None
    fraction = KDCONV_VAL_FRACTION if options.val_fraction is None else options.val_fraction
    return import_kdconv(source, val_fraction=fraction, seed=seed, allow_empty_split=options.allow_empty_split)
