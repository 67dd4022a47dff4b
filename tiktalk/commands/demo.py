"""``tiktalk demo``: the main job end to end on the shipped samples, offline
(:func:`tiktalk.runs.demo.run_demo`)."""

from __future__ import annotations

import argparse

from tiktalk.commands import add_json_flag, add_progress_flag, emit, show_progress
from tiktalk.options import POSITIVE_INT


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the shipped samples (offline)")
    p.add_argument("--out", default="demo_out", help="working directory (default: demo_out)")
    p.add_argument("--steps", type=POSITIVE_INT.parse("--steps"), default=None,
                   help="training steps of the tiny model(s) (default: each model's tiny-preset recipe)")
    p.add_argument("--all", action="store_true",
                   help="train and evaluate every registered model, then print one Table-3-style comparison")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java)")
    add_progress_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from tiktalk.runs.demo import run_demo

    summary = run_demo(args.out, all_rows=args.all, steps=args.steps, meteor=not args.no_meteor,
                       progress=show_progress(args))
    if args.json:
        emit(args, summary)
    return 0
