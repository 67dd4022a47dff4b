"""The TikTalk dataset: a versioned on-disk schema, its readers/writers, and the loader.

A built dataset is a directory::

    manifest.json              format "tiktalk-dataset", schema_version, row counts, sha256s,
                               and (for `tiktalk data build` output) the build config and
                               how many items each cleaning rule removed
    videos.jsonl | .parquet    one row per video (VIDEO_SCHEMA)
    dialogues.jsonl | .parquet one row per dialogue (DIALOGUE_SCHEMA)
    features/frames.safetensors  one tensor per video, named by video_id: (n <= 50, 2048), or
                               token grids (n <= 50, tokens, 2048) (`features extract --grid`)
    features/audio.safetensors   one tensor per video, named by video_id: (m <= 50, 128)
    features/index.json        video_id -> {"frames": [n, 2048], "audio": [m, 128]}

Columns (schema_version 1):

* videos: ``video_id`` str, ``title`` str, ``topic`` str (both may be empty: unknown),
  ``duration`` float (seconds; 0 when unknown),
  ``split`` str (train/val/test), ``frames_path`` / ``audio_path`` str or null: a
  safetensors file relative to the dataset root that holds a tensor named ``video_id``
  (one file per modality, or one file per video: both layouts read the same way).
* dialogues: ``dialogue_id`` str (unique), ``video_id`` str or null (null only for
  text-only corpora such as LCCC), ``split`` train/val/test, ``context`` list[str] (the
  turns before the response, oldest first), ``response`` str, ``references`` list[str],
  ``emoticons`` list[str] (emoticons removed from the turns by cleaning, in turn order),
  ``turn_ids`` list[str] (source comment ids of context + response; may be empty).
* ``references``: on val/test the ground-truth responses, ``response == references[0]``;
  TikTalk builds keep exactly 5 (paper section 3.2; the LCCC adapter has 1). On train
  ``references`` is ``[]``: the single target is ``response``.

Features are stored as float16 or float32 and always returned as float32. Errors in any
file raise :class:`DatasetFormatError`, whose message names file, line/row, field and value.
A dataset may also hold side files its source provides (``extra_files`` in the manifest,
e.g. ``gold_attrs.jsonl`` of the KdConv adapter).

The package by concern: :mod:`~tiktalk.dataset.schema` (constants, columns, row
validation), :mod:`~tiktalk.dataset.tables` (JSONL/Parquet tables, the one JSONL reader),
:mod:`~tiktalk.dataset.features` (feature tensors) and :mod:`~tiktalk.dataset.loader`
(:class:`TikTalkDataset`, load, write, splits); their public names are importable from
``tiktalk.dataset``. Raw comment trees become a dataset through :mod:`tiktalk.build`;
corpora that are already cleaned and split (JSONL, LCCC, KdConv) through the importers of
:mod:`tiktalk.importers` (``tiktalk data import --from NAME``; format in docs/corpus.md).
"""

from tiktalk.dataset.features import (
    as_feature,
    load_features_dir,
    save_features,
    synthetic_features,
)
from tiktalk.dataset.loader import (
    GOLD_ATTRS_FILE,
    TikTalkDataset,
    check_splits,
    empty_splits,
    from_rows,
    load_dataset,
    read_gold_attrs,
    reference_warnings,
    resolve_path,
    sample_dir,
    sample_raw_dir,
    split_of,
    write_dataset,
)
from tiktalk.dataset.schema import (
    AUDIO_DIM,
    DEFAULT_SPLIT_SEED,
    DIALOGUE_SCHEMA,
    EVAL_REFERENCES,
    FEATURE_SPECS,
    FORMAT_NAME,
    FRAME_DIM,
    MAX_AUDIO,
    MAX_FRAMES,
    OPTIONAL_FIELDS,
    PAPER_TEST_FRACTION,
    PAPER_VAL_FRACTION,
    SAMPLE_NAME,
    SCHEMA_VERSION,
    SPLITS,
    TABLE_FORMATS,
    TABLE_SCHEMAS,
    VIDEO_SCHEMA,
    DatasetFormatError,
    check_value,
    require_fields,
    validate_row,
)
from tiktalk.dataset.tables import (
    MAX_JSON_DEPTH,
    read_jsonl_rows,
    read_table,
    table_frame,
    write_table,
)

__all__ = [
    "AUDIO_DIM", "DEFAULT_SPLIT_SEED", "DIALOGUE_SCHEMA", "EVAL_REFERENCES", "FEATURE_SPECS", "FORMAT_NAME",
    "FRAME_DIM", "GOLD_ATTRS_FILE", "MAX_AUDIO", "MAX_FRAMES", "MAX_JSON_DEPTH", "OPTIONAL_FIELDS", "PAPER_TEST_FRACTION",
    "PAPER_VAL_FRACTION", "SAMPLE_NAME", "SCHEMA_VERSION", "SPLITS", "TABLE_FORMATS", "TABLE_SCHEMAS",
    "VIDEO_SCHEMA", "DatasetFormatError", "TikTalkDataset", "as_feature", "check_splits", "check_value",
    "empty_splits", "from_rows", "load_dataset", "load_features_dir", "read_gold_attrs", "read_jsonl_rows", "read_table",
    "reference_warnings", "require_fields", "resolve_path", "sample_dir", "sample_raw_dir", "save_features",
    "split_of", "synthetic_features", "table_frame", "validate_row", "write_dataset", "write_table",
]
