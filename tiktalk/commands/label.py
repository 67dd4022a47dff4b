"""``tiktalk label export|score``: annotation sheets for the paper's Figure 2(b) (context
sources) and appendix A.3 (knowledge types), scored with Fleiss' kappa
(:func:`tiktalk.runs.analysis.run_label_export`, :func:`~tiktalk.runs.analysis.run_label_score`)."""

from __future__ import annotations

import argparse

from tiktalk.commands import add_group, add_json_flag, emit


def _tasks() -> list[str]:
    from tiktalk.analysis.label_tasks import TASKS

    return list(TASKS)


def register(sub: argparse._SubParsersAction) -> None:
    group = add_group(sub, "label", "context-source / knowledge-type annotation sheets (Figure 2(b), appendix A.3)")

    e = group.add_parser("export", help="a blind CSV sheet of N responses per corpus (+ SHEET.key.json)")
    e.add_argument("--task", required=True, choices=_tasks())
    e.add_argument("--data", required=True, nargs="+", metavar="DIR",
                   help="built dataset directories (or 'sample'); several are shuffled together, the key names each")
    e.add_argument("--n", type=int, default=300, help="responses to draw per corpus (default 300, as the paper)")
    e.add_argument("--out", required=True, metavar="SHEET.csv")
    e.add_argument("--split", default=None, help="draw from one split only (default: all)")
    e.add_argument("--items", default=None, metavar="JSONL",
                   help="draw only from these dialogues ({\"dialogue_id\"} lines; for knowledge-type, lines "
                        "of `label score --majority-out` count when their sources include knowledge)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--overwrite", action="store_true")
    add_json_flag(e)
    e.set_defaults(func=_export)

    s = group.add_parser("score", help="shares per source / type (per corpus, per level) and Fleiss' kappa")
    s.add_argument("sheets", nargs="+", metavar="SHEET", help="filled sheets, one per annotator")
    s.add_argument("--task", required=True, choices=_tasks())
    s.add_argument("--key", default=None, metavar="KEY.json",
                   help="the key written by export (default: SHEET1's <stem>.key.json when it exists)")
    s.add_argument("--majority-out", default=None, metavar="JSONL",
                   help="write each item's majority labels (dialogue_id, dataset, sources/types)")
    s.add_argument("--overwrite", action="store_true", help="replace --majority-out if it exists")
    add_json_flag(s)
    s.set_defaults(func=_score)


def _export(args: argparse.Namespace) -> int:
    from tiktalk.runs.analysis import run_label_export

    result = run_label_export(args.task, args.data, args.out, n=args.n, seed=args.seed, split=args.split,
                              items=args.items, overwrite=args.overwrite)
    emit(args, result, lambda r: f"wrote {r['sheet']}: {r['rows']} rows ("
         + ", ".join(f"{k} {v}" for k, v in r["sampled"].items()) + f"), key {r['key']}"
         + "".join(f"\nnote: {n}" for n in r["notes"]))
    return 0


def _score(args: argparse.Namespace) -> int:
    from tiktalk.runs.analysis import render_labels, run_label_score

    result = run_label_score(args.task, args.sheets, args.key, majority_out=args.majority_out,
                             overwrite=args.overwrite)
    emit(args, result, render_labels)
    return 0
