"""``tiktalk reproduce``: train -> generate -> evaluate per Table 3 row, beside the paper's numbers
(:func:`tiktalk.runs.experiments.run_table3`); ``--suite kdconv``: does Maria read knowledge, on
KdConv (:func:`tiktalk.runs.kdconv.run_kdconv_suite`, docs/kdconv.md).

The command parses, calls the run layer and prints; the run layer writes table3.md/json
(kdconv.md/json). See those modules for what the rows and runs carry.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tiktalk.commands import add_json_flag, add_progress_flag, emit, encoder_help, show_progress
from tiktalk.errors import UsageError
from tiktalk.options import COUNT, POSITIVE, POSITIVE_INT, SEED
from tiktalk.paper import TABLE3
from tiktalk.runs.experiments import DEFAULT_ROWS
from tiktalk.runs.kdconv import KDCONV_LIMIT, KDCONV_PROBE_LIMIT, KDCONV_TRAIN

SUITES = ("table3", "kdconv")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="train, generate and evaluate Table 3 rows; markdown beside the paper "
                       "(--suite kdconv: does Maria read knowledge, on KdConv)")
    p.add_argument("--suite", choices=SUITES, default="table3",
                   help="table3 (default): Table 3 rows on a TikTalk dataset; kdconv: Maria T, T+K with retrieved "
                   "and with gold knowledge on a KdConv domain, with the knowledge probe (docs/kdconv.md)")
    p.add_argument("--data", default=None, help="table3: built dataset directory or 'sample' (default); "
                   "kdconv: a KdConv domain directory (dev.json, test.json, kb_<domain>.json)")
    p.add_argument("--models", default=None,
                   help=f"table3: comma-separated rows of Table 3, or 'all' (default {DEFAULT_ROWS}): {', '.join(TABLE3)}")
    p.add_argument("--out", required=True, help="working directory: runs, predictions, table3.md/json "
                   "(kdconv: kdconv.md/json)")
    p.add_argument("--init", action="append", default=[], metavar="ROW=PATH",
                   help="initialise a row (or every row of a model: maria=PATH) from a local directory")
    p.add_argument("--preset", default="tiny", help="preset for rows without --init (default tiny)")
    p.add_argument("--knowledge", default=None, help="existing knowledge cache (else built with --index/--kg)")
    p.add_argument("--index", default=None, help="existing head index to annotate with")
    p.add_argument("--kg", default=None, help="KG to index when neither --knowledge nor --index is given (default sample)")
    p.add_argument("--encoder", default=None, help=encoder_help("for a new index"))
    p.add_argument("--split", default=None, help="split to generate and score (default test)")
    p.add_argument("--max-steps", type=POSITIVE_INT.parse("--max-steps"), default=None, help="training steps per row")
    p.add_argument("--epochs", type=POSITIVE_INT.parse("--epochs"), default=None)
    p.add_argument("--batch-size", type=POSITIVE_INT.parse("--batch-size"), default=None)
    p.add_argument("--lr", type=POSITIVE.parse("--lr"), default=None)
    p.add_argument("--seed", type=SEED.parse("--seed"), default=None)
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java)")
    p.add_argument("--limit", type=COUNT.parse("--limit"), default=None,
                   help=f"kdconv: generate and score the first N test dialogues (default {KDCONV_LIMIT}; 0: all)")
    p.add_argument("--probe-limit", type=COUNT.parse("--probe-limit"), default=None,
                   help=f"kdconv: probe the first N test dialogues with gold knowledge (default {KDCONV_PROBE_LIMIT}; 0: all)")
    p.add_argument("--threads", type=POSITIVE_INT.parse("--threads"), default=None, help="kdconv: torch threads (default: torch's)")
    add_progress_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_reproduce)


def _train_options(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """TrainConfig fields for every run: the flags given, else ``defaults``."""
    given = {"max_steps": args.max_steps, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "seed": args.seed}
    options = dict(defaults or {})
    if args.epochs is not None and args.max_steps is None:
        options.pop("max_steps", None)  # --epochs alone: not capped by a default step count
    options.update({k: v for k, v in given.items() if v is not None})
    return options


def _reproduce_kdconv(args: argparse.Namespace) -> int:
    from tiktalk.runs.kdconv import kdconv_command, run_kdconv_suite

    given = [flag for flag, value in (("--models", args.models), ("--init", args.init), ("--knowledge", args.knowledge),
                                      ("--index", args.index), ("--kg", args.kg), ("--split", args.split)) if value]
    if given:
        raise UsageError(f"--suite kdconv builds its own data, KG, index and knowledge and scores the test split: "
                         f"{', '.join(given)} do not apply")
    if args.data is None:
        raise UsageError("--suite kdconv needs --data: a KdConv domain directory (thu-coai/KdConv data/<domain>: "
                         "dev.json, test.json, kb_<domain>.json)")
    command = kdconv_command(args.data, args.out, preset=args.preset, encoder=args.encoder, meteor=not args.no_meteor,
                             max_steps=args.max_steps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             seed=args.seed, limit=args.limit, probe_limit=args.probe_limit, threads=args.threads)
    out = Path(args.out)
    result = run_kdconv_suite(args.data, out, preset=args.preset, train_options=_train_options(args, KDCONV_TRAIN),
                              encoder=args.encoder, limit=KDCONV_LIMIT if args.limit is None else args.limit,
                              probe_limit=KDCONV_PROBE_LIMIT if args.probe_limit is None else args.probe_limit,
                              meteor=not args.no_meteor, threads=args.threads, command=command,
                              progress=show_progress(args))
    emit(args, result.as_dict(), lambda _: result.table + f"\n\nwritten: {out / 'kdconv.json'}, {out / 'kdconv.md'}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    if args.suite == "kdconv":
        return _reproduce_kdconv(args)
    from tiktalk.runs.experiments import run_table3

    given = [flag for flag, value in (("--limit", args.limit), ("--probe-limit", args.probe_limit),
                                      ("--threads", args.threads)) if value is not None]
    if given:
        raise UsageError(f"{', '.join(given)} apply to --suite kdconv only")
    data, models = args.data or "sample", args.models or DEFAULT_ROWS
    inits = {}
    for item in args.init:
        key, sep, path = item.partition("=")
        if not sep or not path:
            raise UsageError(f"--init {item!r} is not ROW=PATH")
        inits[key] = path
    result = run_table3(models, args.out, data=data, split=args.split or "test", knowledge=args.knowledge,
                        index=args.index, kg=args.kg or "sample", encoder=args.encoder, inits=inits,
                        preset=args.preset, train_options=_train_options(args), meteor=not args.no_meteor,
                        command=f"tiktalk reproduce --data {data} --models {models}", progress=show_progress(args))
    out = Path(args.out)
    emit(args, {"table": str(out / "table3.md"), "ours": {k: r.as_dict() for k, r in result.rows.items()}},
         lambda _: result.table + f"\n\nwritten: {out / 'table3.md'}")
    return 0
