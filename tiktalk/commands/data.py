"""``tiktalk data build|stats|validate|lccc``: build, inspect and check TikTalk datasets."""

from __future__ import annotations

import argparse

from tiktalk.commands import add_json_flag, emit, writing


def register(sub: argparse._SubParsersAction) -> None:
    data_parser = sub.add_parser("data", help="build, inspect and validate TikTalk datasets")
    data_sub = data_parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_sub.required = True

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
    p.add_argument("--video-min-likes", type=int, default=None)
    p.add_argument("--comment-min-likes", type=int, default=None)
    p.add_argument("--blocklist", default=None, help="file with one blocked word per line (replaces the list)")
    p.add_argument("--min-references", type=int, default=None, help="responses needed by a val/test dialogue")
    p.add_argument("--val-fraction", type=float, default=None)
    p.add_argument("--test-fraction", type=float, default=None)
    p.add_argument("--split-seed", default=None)
    p.add_argument("--synthetic-features", type=int, default=None, metavar="N",
                   help="write N seeded random frames and audio patches per video")
    p.add_argument("--features", default=None, metavar="DIR",
                   help="DIR/frames.safetensors and DIR/audio.safetensors keyed by video_id")
    p.add_argument("--format", dest="table_format", choices=("jsonl", "parquet"), default=None)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(p)
    p.set_defaults(func=_build)

    p = data_sub.add_parser("stats", help="videos, dialogues, turns and lengths per split")
    p.add_argument("data", metavar="DIR", help="built dataset directory, or 'sample'")
    add_json_flag(p)
    p.set_defaults(func=_stats)

    p = data_sub.add_parser("validate", help="load every table and every feature tensor; report problems")
    p.add_argument("data", metavar="DIR", help="built dataset directory, or 'sample'")
    add_json_flag(p)
    p.set_defaults(func=_validate)

    p = data_sub.add_parser("lccc", help="convert LCCC JSON (train/valid/test) into a text-only dataset")
    p.add_argument("source", metavar="JSON", help="e.g. LCCC's toy_data.json")
    p.add_argument("--out", required=True)
    p.add_argument("--expand-turns", action="store_true", help="one row per response turn, not per dialogue")
    p.add_argument("--format", dest="table_format", choices=("jsonl", "parquet"), default="jsonl")
    p.add_argument("--overwrite", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=_lccc)


def _render_build(m: dict) -> str:
    from tiktalk.cleaning import MODIFY_RULES, REMOVAL_RULES

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
    return "\n".join(lines)


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tiktalk.cleaning import build_dataset, load_build_config
    from tiktalk.dataset import SAMPLE_NAME, sample_raw_dir

    raw = sample_raw_dir() if args.raw == SAMPLE_NAME else Path(args.raw)
    blocklist = None
    if args.blocklist is not None:
        with open(args.blocklist, encoding="utf-8") as fh:
            blocklist = tuple(w.strip() for w in fh if w.strip() and not w.startswith("#"))
    n = args.synthetic_features
    config = load_build_config(
        raw, args.config, video_min_likes=args.video_min_likes, comment_min_likes=args.comment_min_likes,
        blocklist=blocklist, min_references=args.min_references, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, split_seed=args.split_seed, synthetic_frames=n, synthetic_audio=n,
        table_format=args.table_format,
    )
    with writing(args.out) as note:
        manifest = build_dataset(raw, args.out, config, features_dir=args.features, overwrite=args.overwrite,
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
    from tiktalk.dataset import load_dataset

    ds = load_dataset(args.data)
    n_frames = n_audio = 0
    for vid in ds.videos["video_id"].to_list():
        frames, audio = ds.features(vid)  # raises with file and key on a bad tensor
        n_frames += frames is not None
        n_audio += audio is not None
    result = {"ok": True, "path": str(ds.root), "schema_version": ds.manifest["schema_version"],
              "videos": ds.videos.height, "dialogues": ds.dialogues.height,
              "videos_with_frames": n_frames, "videos_with_audio": n_audio}
    emit(args, result, lambda r: f"ok: {r['videos']} videos, {r['dialogues']} dialogues, "
         f"{r['videos_with_frames']} frame and {r['videos_with_audio']} audio tensors checked")
    return 0


def _lccc(args: argparse.Namespace) -> int:
    from tiktalk.dataset import load_lccc, write_dataset

    ds = load_lccc(args.source, expand_turns=args.expand_turns)
    manifest = write_dataset(ds, args.out, table_format=args.table_format, overwrite=args.overwrite,
                             extra_manifest={"source": "LCCC", "lccc": {"expand_turns": args.expand_turns}})
    emit(args, manifest, lambda m: f"wrote {args.out}: " + ", ".join(
        f"{s} {m['counts'][s]['dialogues']}" for s in ("train", "val", "test")) + " dialogues")
    return 0
