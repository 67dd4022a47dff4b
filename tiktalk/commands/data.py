"""``tiktalk data build|import|stats|validate|lccc``: build, import, inspect and check datasets."""

from __future__ import annotations

import argparse

from tiktalk.commands import (
    add_budget_options,
    add_group,
    add_json_flag,
    emit,
    importer_option_help,
    writing,
)
from tiktalk.options import COUNT, FRACTION, POSITIVE_INT


def register(sub: argparse._SubParsersAction) -> None:
    data_sub = add_group(sub, "data", "build, inspect and validate TikTalk datasets")

    p = data_sub.add_parser(
        "build",
        help="raw comment trees (RAW/videos.jsonl, RAW/comments.jsonl) -> cleaned, split dialogues",
        description="Apply the paper's cleaning rules and write a dataset directory atomically. "
        "Options come from BuildConfig defaults, then RAW/build_config.json (or --config), then "
        "the flags below. RAW may be 'sample' (the shipped raw sample).",
    )
    p.add_argument("raw", metavar="RAW", help="raw directory, or 'sample'")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--config", default=None, help="build config JSON (default: RAW/build_config.json if present)")
    p.add_argument("--video-min-likes", type=COUNT.parse("--video-min-likes"), default=None)
    p.add_argument("--comment-min-likes", type=COUNT.parse("--comment-min-likes"), default=None)
    p.add_argument("--blocklist", default=None, help="file with one blocked word per line (replaces the list)")
    p.add_argument("--min-references", type=POSITIVE_INT.parse("--min-references"), default=None, help="responses needed by a val/test dialogue")
    p.add_argument("--val-fraction", type=FRACTION.parse("--val-fraction"), default=None)
    p.add_argument("--test-fraction", type=FRACTION.parse("--test-fraction"), default=None)
    p.add_argument("--split-seed", default=None)
    p.add_argument("--synthetic-features", type=COUNT.parse("--synthetic-features"), default=None, metavar="N",
                   help="write N seeded random frames and audio patches per video")
    p.add_argument("--features", default=None, metavar="DIR",
                   help="DIR/frames.safetensors and DIR/audio.safetensors keyed by video_id")
    p.add_argument("--split-file", default=None, metavar="FILE",
                   help="video_id -> split (train/val/test) as a JSON object or TSV lines; fixes the split "
                   "of the videos it names (others are hashed)")
    p.add_argument("--format", dest="table_format", choices=("jsonl", "parquet"), default=None)
    p.add_argument("--allow-empty-split", action="store_true",
                   help="write the dataset even if a split (e.g. val) ends up empty")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(p)
    p.set_defaults(func=_build)

    from tiktalk.importers import IMPORTERS

    formats = "; ".join(f"{name}: {imp.summary}" for name, imp in IMPORTERS.items())
    p = data_sub.add_parser(
        "import",
        help=f"an already cleaned and split corpus ({', '.join(IMPORTERS.names())}) -> a dataset",
        description="Import dialogues as they are: no cleaning, every given split kept exactly. "
        "JSONL fields: dialogue_id, video_id (null: text only), context (list of turns), response; "
        "optional references (default [response] on val/test), split (train|val|test; missing: "
        f"hashed from video_id), title, emoticons. See docs/corpus.md. Formats: {formats}.",
    )
    p.add_argument("source", metavar="SOURCE",
                   help="; ".join(f"{name}: {imp.source}" for name, imp in IMPORTERS.items()))
    p.add_argument("--from", dest="source_format", choices=IMPORTERS.names(), default=IMPORTERS.names()[0],
                   help=f"format of SOURCE (default {IMPORTERS.names()[0]})")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--val-fraction", type=FRACTION.parse("--val-fraction"), default=None, help=importer_option_help("val_fraction"))
    p.add_argument("--test-fraction", type=FRACTION.parse("--test-fraction"), default=None, help=importer_option_help("test_fraction"))
    p.add_argument("--split-seed", default=None, help=importer_option_help("split_seed"))
    p.add_argument("--expand-turns", action="store_true", help=importer_option_help("expand_turns"))
    p.add_argument("--features", default=None, metavar="DIR",
                   help="DIR/frames.safetensors and DIR/audio.safetensors keyed by video_id "
                   "(e.g. from `tiktalk features extract`)")
    p.add_argument("--format", dest="table_format", choices=("jsonl", "parquet"), default="jsonl")
    p.add_argument("--allow-empty-split", action="store_true", help="accept a split with no dialogue")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(p)
    p.set_defaults(func=_import)

    p = data_sub.add_parser("stats", help="videos, dialogues, turns and lengths per split")
    p.add_argument("data", metavar="DIR", help="built dataset directory, or 'sample'")
    add_json_flag(p)
    p.set_defaults(func=_stats)

    p = data_sub.add_parser("validate", help="load every table and every feature tensor; report problems",
                            description="Fails (exit 2) on a malformed file or an empty split; warns when "
                            "val/test dialogues have fewer references than the evaluation protocol's 5.")
    p.add_argument("data", metavar="DIR", help="built dataset directory, or 'sample'")
    p.add_argument("--allow-empty-split", action="store_true", help="an empty split is a warning, not an error")
    add_json_flag(p)
    p.set_defaults(func=_validate)

    p = data_sub.add_parser(
        "gold-knowledge",
        help="a knowledge cache from the KB triples each response used (a KdConv import's gold_attrs.jsonl)",
        description="Linearised as retrieved KB knowledge is ('entity，attribute：value' pieces), cut to a "
        "model's knowledge budget; responses that used no triple get an empty segment.",
    )
    p.add_argument("data", metavar="DIR", help="dataset directory from `tiktalk data import --from kdconv`")
    p.add_argument("--out", required=True, help="knowledge cache (Parquet, written atomically)")
    add_budget_options(p, default_model="maria")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(p)
    p.set_defaults(func=_gold_knowledge)

    p = data_sub.add_parser("lccc", help="alias of `data import --from lccc` (LCCC JSON -> a text-only dataset)")
    p.add_argument("source", metavar="JSON", help="e.g. LCCC's toy_data.json")
    p.add_argument("--out", required=True)
    p.add_argument("--expand-turns", action="store_true", help="one row per response turn, not per dialogue")
    p.add_argument("--format", dest="table_format", choices=("jsonl", "parquet"), default="jsonl")
    p.add_argument("--allow-empty-split", action="store_true", help="accept a split with no dialogue")
    p.add_argument("--overwrite", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=_lccc)


def _render_build(m: dict) -> str:
    from tiktalk.build import MODIFY_RULES, REMOVAL_RULES

    b = m["build"]
    width = max(len(k) for k, _ in REMOVAL_RULES + MODIFY_RULES)
    lines = ["removed by rule:"]
    lines += [f"  {k:<{width}} {b['removed'][k]:>7}  {text}" for k, text in REMOVAL_RULES]
    lines.append("modified by rule:")
    lines += [f"  {k:<{width}} {b['modified'][k]:>7}  {text}" for k, text in MODIFY_RULES]
    k = b["kept"]
    lines.append(f"kept {k['videos']} of {k['videos_in']} videos, {k['dialogues']} dialogues "
                 f"(train {k['train_videos']} videos / {k['train_dialogues']} dialogues, "
                 f"val {k['val_videos']} / {k['val_dialogues']}, test {k['test_videos']} / {k['test_dialogues']})")
    unknown = b["likes_unknown"]
    if unknown["videos"] or unknown["comments"]:
        lines.append(f"likes unknown for {unknown['videos']} videos and {unknown['comments']} comments: "
                     "kept without the likes thresholds")
    source = b["split_source"]
    if "split_file" in b:
        lines.append(f"split: {source['split_file']} videos from the split file, {source['hash']} by hash "
                     f"(the split file names {b['split_file']['not_in_videos']} videos absent from the raw data)")
    return "\n".join(lines)


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tiktalk.build import build_dataset, load_build_config
    from tiktalk.dataset import SAMPLE_NAME, sample_raw_dir
    from tiktalk.io import open_input, refuse_overlap

    refuse_overlap(args.out, [("RAW", args.raw), ("--config", args.config), ("--blocklist", args.blocklist),
                              ("--features", args.features), ("--split-file", args.split_file)])

    raw = sample_raw_dir() if args.raw == SAMPLE_NAME else Path(args.raw)
    blocklist = None
    if args.blocklist is not None:
        from tiktalk.errors import FormatError

        with open_input(args.blocklist, "rb") as fh:
            raw_words = fh.read()
        try:
            words = raw_words.decode("utf-8-sig").splitlines()
        except UnicodeDecodeError as err:
            raise FormatError(f"not valid UTF-8 at byte {err.start}", path=args.blocklist) from None
        blocklist = tuple(w.strip() for w in words if w.strip() and not w.startswith("#"))
    n = args.synthetic_features
    config = load_build_config(
        raw, args.config, video_min_likes=args.video_min_likes, comment_min_likes=args.comment_min_likes,
        blocklist=blocklist, min_references=args.min_references, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, split_seed=args.split_seed, synthetic_frames=n, synthetic_audio=n,
        table_format=args.table_format,
    )
    with writing(args.out) as note:
        manifest = build_dataset(raw, args.out, config, features_dir=args.features, split_file=args.split_file,
                                 allow_empty_split=args.allow_empty_split, overwrite=args.overwrite,
                                 on_notice=note)
    emit(args, manifest, lambda m: _render_build(m) + f"\nwrote {args.out}")
    return 0


def render_stats(s: dict) -> str:
    head = f"{'split':<6} {'videos':>7} {'dialogues':>9} {'turns':>7} {'avg-t':>6} {'avg-l':>6} {'5-refs':>6}"
    rows = [head]
    for name in ("train", "val", "test"):
        r = s[name]
        rows.append(f"{name:<6} {r['videos']:>7} {r['dialogues']:>9} {r['turns']:>7} {r['avg_turns']:>6.2f} "
                    f"{r['avg_utterance_chars']:>6.2f} {r['with_5_references']:>6}")
    t = s["total"]
    rows.append(f"total  {t['videos']:>7} {t['dialogues']:>9}   avg video {t['avg_video_seconds']:.2f}s, "
                f"frames for {t['videos_with_frames']} videos, audio for {t['videos_with_audio']}")
    return "\n".join(rows)


def _stats(args: argparse.Namespace) -> int:
    from tiktalk.dataset import load_dataset

    emit(args, load_dataset(args.data).stats(), render_stats)
    return 0


def _validate(args: argparse.Namespace) -> int:
    import sys

    from tiktalk.dataset import check_splits, load_dataset, reference_warnings

    ds = load_dataset(args.data)
    empty = check_splits(ds, allow_empty_split=args.allow_empty_split, what=str(args.data))
    n_frames = n_audio = 0
    for vid in ds.videos["video_id"].to_list():
        frames, audio = ds.features(vid)  # raises with file and key on a bad tensor
        n_frames += frames is not None
        n_audio += audio is not None
    warnings = [f"split {name} is empty" for name in empty] + reference_warnings(ds)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    result = {"ok": True, "path": str(ds.root), "schema_version": ds.manifest["schema_version"],
              "videos": ds.videos.height, "dialogues": ds.dialogues.height,
              "videos_with_frames": n_frames, "videos_with_audio": n_audio, "warnings": warnings}
    emit(args, result, lambda r: f"ok: {r['videos']} videos, {r['dialogues']} dialogues, "
         f"{r['videos_with_frames']} frame and {r['videos_with_audio']} audio tensors checked"
         + (f" ({len(warnings)} warning{'s' if len(warnings) != 1 else ''})" if warnings else ""))
    return 0


def _render_import(m: dict, out: str) -> str:
    r = m["import"]
    counts = ", ".join(f"{s} {r['dialogues'][s]}" for s in ("train", "val", "test"))
    f = m["features"]
    lines = [f"wrote {out}: {counts} dialogues, {r['videos']} videos"
             + (f", {r['text_only_dialogues']} text-only dialogues" if r["text_only_dialogues"] else "")
             + f"; frames for {f['frames']['videos']} videos, audio for {f['audio']['videos']}"]
    if r["split_by_hash"]:
        h = r["hash_split"]
        lines.append(f"note: {r['split_by_hash']} of {r['rows']} dialogues had no split; they got the hash split "
                     f"of their video_id (val {h['val_fraction']:.4g}, test {h['test_fraction']:.4g}, "
                     f"seed {h['seed']!r})")
    for split, hist in r["references_per_dialogue"].items():
        counts = ", ".join(f"{n} with {k} reference{'s' if k != '1' else ''}" for k, n in hist.items())
        lines.append(f"{split}: {counts}")
    return "\n".join(lines)


def _import(args: argparse.Namespace) -> int:
    import sys

    from tiktalk.dataset import load_features_dir
    from tiktalk.importers import ImportOptions
    from tiktalk.io import refuse_overlap
    from tiktalk.runs.pipeline import import_dataset

    options = ImportOptions(val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                            split_seed=args.split_seed, expand_turns=args.expand_turns,
                            allow_empty_split=args.allow_empty_split)
    refuse_overlap(args.out, [("SOURCE", args.source), ("--features", args.features)])
    features = load_features_dir(args.features) if args.features is not None else None
    warnings: list[str] = []
    with writing(args.out):  # the same output lock as every other writer of a directory
        manifest = import_dataset(args.source_format, args.source, args.out, options, features=features,
                                  table_format=args.table_format, overwrite=args.overwrite,
                                  on_warning=warnings.append)
    emit(args, manifest, lambda m: _render_import(m, args.out))
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    return 0


def _lccc(args: argparse.Namespace) -> int:
    """`data lccc` is `data import --from lccc`: one importer, one manifest, one output."""
    return _import(argparse.Namespace(**vars(args), source_format="lccc", val_fraction=None, test_fraction=None,
                                      split_seed=None, features=None))


def _gold_knowledge(args: argparse.Namespace) -> int:
    from tiktalk.io import refuse_overlap

    refuse_overlap(args.out, [("DIR", args.data)], may_write_inside=("DIR",))
    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import gold_knowledge

    budget = knowledge_budget(args.model, args.model_path, args.max_tokens)
    result = gold_knowledge(args.data, args.out, budget, overwrite=args.overwrite)
    emit(args, result, lambda r: f"wrote {r['out']}: {r['rows']} dialogues, {r['with_knowledge']} with gold "
         f"knowledge ({r['cut_by_budget']} cut to {r['budget'] or 'no budget'})")
    return 0
