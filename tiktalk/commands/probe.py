"""``tiktalk probe knowledge``: does a trained run read its knowledge? (see tiktalk.models.probe)"""

from __future__ import annotations

import argparse
from pathlib import Path

from tiktalk.commands import add_group, add_json_flag, add_run_input_arguments, device_arg, emit
from tiktalk.errors import UsageError
from tiktalk.options import POSITIVE_INT, SEED


def register(sub: argparse._SubParsersAction) -> None:
    probe_sub = add_group(sub, "probe", "probes of trained runs")
    p = probe_sub.add_parser(
        "knowledge",
        help="NLL of the references with own / another dialogue's / no knowledge, with 95%% bootstrap intervals",
    )
    add_run_input_arguments(p)
    p.add_argument("--generated", default=None, metavar="JSONL",
                   help="`tiktalk generate` output: also report how often responses copy knowledge spans")
    p.add_argument("--seed", type=SEED.parse("--seed"), default=0, help="seed of the shuffle and the bootstrap (default 0)")
    p.add_argument("--bootstrap", type=POSITIVE_INT.parse("--bootstrap"), default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--limit", type=POSITIVE_INT.parse("--limit"), default=None, help="only the first N dialogues")
    p.add_argument("--device", default=None, type=device_arg, help="cpu, cuda, ... (default: cuda if available)")
    add_json_flag(p)
    p.set_defaults(func=_probe_knowledge)


def _probe_knowledge(args: argparse.Namespace) -> int:
    from tiktalk.models.probe import probe_knowledge
    from tiktalk.runs.predictions import read_generate_jsonl
    from tiktalk.runs.training import load_examples, load_run_model

    model, info = load_run_model(Path(args.run), args.step, args.device)
    knowledge = args.knowledge or ((info.get("knowledge") or {}).get("path"))
    if not knowledge:
        raise UsageError(f"{args.run} was trained without knowledge: pass --knowledge PARQUET")
    examples, _ = load_examples(args.data, args.split, knowledge, args.limit)
    if not examples:
        raise UsageError(f"split {args.split!r} of {args.data} has no dialogues")
    generated = None
    if args.generated:
        by_id = dict(read_generate_jsonl(args.generated))
        absent = [e.dialogue_id for e in examples if e.dialogue_id not in by_id]
        if absent:
            raise UsageError(f"{args.generated}: no response for {len(absent)} dialogues (e.g. {absent[:3]})")
        generated = [by_id[e.dialogue_id] for e in examples]
    result = probe_knowledge(model, examples, seed=args.seed, n_bootstrap=args.bootstrap, generated=generated)
    out = {"run": str(args.run), "model": info["model"], "split": args.split, "knowledge": str(knowledge),
           **result.as_dict()}
    emit(args, out, lambda _: result.summary())
    return 0
