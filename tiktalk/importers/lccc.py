"""``--from lccc``: LCCC (thu-coai's Large-scale Cleaned Chinese Conversation) JSON, text only."""

from __future__ import annotations

from pathlib import Path

from tiktalk.dataset import DatasetFormatError, TikTalkDataset
from tiktalk.importers import ImportOptions
from tiktalk.importers.records import ImportResult, import_records, read_json_file

_LCCC_SPLITS = {"train": "train", "valid": "val", "test": "test"}


def lccc_utterance(text: str) -> str:
    """LCCC stores utterances as characters separated by spaces; join them back.

    Every token of the toy release is one character, so the original word spaces cannot
    be recovered; the characters are simply concatenated.
    """
    return "".join(text.split())


def import_lccc(path: str | Path, *, expand_turns: bool = False, allow_empty_split: bool = False) -> ImportResult:
    """Read LCCC JSON (``{"train"|"valid"|"test": [[utt, ...], ...]}``) as a text-only dataset.

    Each dialogue of n utterances gives one record: context = first n-1, response = last. With
    ``expand_turns`` every prefix gives a record (utterance i >= 1 as the response to 0..i-1),
    which is how CDial-GPT trains. Records go through :func:`import_records` with LCCC's own
    split (valid -> val); val/test dialogues have one reference.
    """
    path = Path(path)
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise DatasetFormatError("expected an object with train/valid/test lists", path=path)
    records: list[tuple[int | None, dict]] = []
    for key, split in _LCCC_SPLITS.items():
        dialogues = data.get(key, [])
        if not isinstance(dialogues, list):
            raise DatasetFormatError("expected a list of dialogues", path=path, field=key)
        for i, dialogue in enumerate(dialogues):
            ok = isinstance(dialogue, list) and len(dialogue) >= 2 and all(isinstance(u, str) for u in dialogue)
            utts = [lccc_utterance(u) for u in dialogue] if ok else []
            if not ok or not all(utts):
                raise DatasetFormatError("a dialogue must be a list of >= 2 non-empty strings",
                                         path=path, field=f"{key}[{i}]", value=dialogue)
            ends = range(1, len(utts)) if expand_turns else [len(utts) - 1]
            for end in ends:
                suffix = f"-{end}" if expand_turns else ""
                records.append((None, {"dialogue_id": f"lccc-{split}-{i:05d}{suffix}", "video_id": None,
                                       "split": split, "context": utts[:end], "response": utts[end]}))
    result = import_records(records, path=path, allow_empty_split=allow_empty_split)
    result.manifest.update({"source": "LCCC", "lccc": {"expand_turns": expand_turns}})
    return result


def load_lccc(path: str | Path, *, expand_turns: bool = False) -> TikTalkDataset:
    """The dataset of :func:`import_lccc`."""
    return import_lccc(path, expand_turns=expand_turns).dataset


def from_options(source: str | Path, options: ImportOptions) -> ImportResult:
    """The reader of ``tiktalk data import --from lccc``."""
    return import_lccc(source, expand_turns=options.expand_turns, allow_empty_split=options.allow_empty_split)
