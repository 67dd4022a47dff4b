"""``tiktalk reproduce``: train -> generate -> evaluate per Table 3 row, beside the paper's numbers.

Every step is the ordinary subcommand (``index build``, ``annotate``, ``train``,
``generate``), run in-process, so a reproduction is exactly what a user would type.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

from tiktalk.commands import add_json_flag, emit
from tiktalk.errors import CommandFailedError, UsageError
from tiktalk.metrics import METRIC_KEYS, METRIC_LABELS
from tiktalk.paper import TABLE3, PaperRow, parse_rows


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="train, generate and evaluate Table 3 rows; markdown beside the paper")
    p.add_argument("--data", default="sample", help="built dataset directory or 'sample'")
    p.add_argument("--models", default="maria,maria+c3kg,dialogpt",
                   help=f"comma-separated rows of Table 3, or 'all': {', '.join(TABLE3)}")
    p.add_argument("--out", required=True, help="working directory: runs, predictions, table3.md/json")
    p.add_argument("--init", action="append", default=[], metavar="ROW=PATH",
                   help="initialise a row (or every row of a model: maria=PATH) from a local directory")
    p.add_argument("--preset", default="tiny", help="preset for rows without --init (default tiny)")
    p.add_argument("--knowledge", default=None, help="existing knowledge cache (else built with --index/--kg)")
    p.add_argument("--index", default=None, help="existing head index to annotate with")
    p.add_argument("--kg", default="sample", help="KG to index when neither --knowledge nor --index is given")
    p.add_argument("--encoder", default=None, help="encoder for a new index (default: the library default)")
    p.add_argument("--split", default="test", help="split to generate and score (default test)")
    p.add_argument("--max-steps", type=int, default=None, help="training steps per row")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java)")
    add_json_flag(p)
    p.set_defaults(func=_reproduce)


def _cli(*argv: str) -> None:
    from tiktalk.commands.main import main

    print("$ tiktalk " + " ".join(argv), flush=True)
    code = main(list(argv))
    if code:
        raise CommandFailedError(f"`tiktalk {' '.join(argv)}` exited with {code}")


def _slug(row: PaperRow) -> str:
    return row.key.replace("+", "_")


def prepare_knowledge(out: Path, data: str, *, knowledge: str | None = None, index: str | None = None,
                      kg: str = "sample", encoder: str | None = None, model: str = "maria",
                      model_path: str | None = None) -> Path:
    """The knowledge cache: given, or annotated with a given index, or index built first;
    linearised to ``model``'s knowledge budget (from ``model_path``, else its tiny preset)."""
    if knowledge:
        return Path(knowledge)
    if index is None:
        index = str(out / "index")
        build = ["index", "build", "--kg", kg, "--out", index, "--overwrite"]
        if encoder:
            build += ["--encoder", encoder]
        _cli(*build)
    cache = out / "knowledge.parquet"
    annotate = ["annotate", "--index", index, "--data", data, "--out", str(cache), "--overwrite", "--model", model]
    _cli(*annotate, *(["--model-path", model_path] if model_path else []))
    return cache


def run_row(row: PaperRow, out: Path, data: str, split: str, knowledge: Path | None, train_args: list[str],
            init: str | None, preset: str, scorer, references: dict[str, list[str]]) -> dict:
    """Train one row, generate for ``split``, score against its references."""
    from tiktalk.metrics import evaluate

    run, preds = out / "runs" / _slug(row), out / "preds" / f"{_slug(row)}.jsonl"
    print(f"\n=== {row.label} ({row.model}{', ' + row.modalities if row.modalities else ''}) ===", flush=True)
    train = ["train", "--model", row.model, "--data", data, "--out", str(run), "--overwrite", "--no-progress",
             *(["--init", init] if init else ["--preset", preset]), *train_args]
    if row.modalities:
        train += ["--modalities", row.modalities]
    if row.knowledge:
        if knowledge is None:
            raise UsageError(f"row {row.key!r} needs a knowledge cache")
        train += ["--knowledge", str(knowledge)]
    start = time.perf_counter()
    _cli(*train)
    _cli("generate", "--run", str(run), "--data", data, "--split", split, "--out", str(preds))
    predictions = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines() if line.strip()]
    for p in predictions[:3]:
        print(f"  {p['dialogue_id']}: {p['response']}")
    missing = [p["dialogue_id"] for p in predictions if p["dialogue_id"] not in references]
    if missing:
        raise UsageError(f"{preds}: dialogue ids {missing[:3]} have no references in split {split!r}")
    scores = evaluate([p["response"] for p in predictions], [references[p["dialogue_id"]] for p in predictions],
                      meteor=scorer)
    scores["seconds"] = round(time.perf_counter() - start, 1)
    return scores


def run_rows(rows: list[PaperRow], out: Path, data: str = "sample", split: str = "test",
             knowledge: Path | None = None, train_args: list[str] | None = None,
             inits: dict[str, str] | None = None, preset: str = "tiny", meteor: bool = True) -> dict[str, dict]:
    import polars as pl

    from tiktalk.dataset import load_dataset
    from tiktalk.metrics import MeteorScorer

    dialogues = load_dataset(data).dialogues.filter(pl.col("split") == split)
    references = dict(zip(dialogues["dialogue_id"].to_list(), dialogues["references"].to_list()))
    if not any(references.values()):
        raise UsageError(f"split {split!r} of {data} has no references to score against")
    inits = inits or {}
    results: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        scorer = stack.enter_context(MeteorScorer()) if meteor else False  # one JVM for every row
        for row in rows:
            init = inits.get(row.key) or inits.get(row.model)
            results[row.key] = run_row(row, out, data, split, knowledge, train_args or [], init, preset,
                                       scorer, references)
    return results


def comparison_markdown(results: dict[str, dict], note: str = "") -> str:
    """Ours beside the paper's, one pair of lines per row."""
    lines = ["| system | source | " + " | ".join(METRIC_LABELS[k] for k in METRIC_KEYS) + " |",
             "|---|---|" + "---:|" * len(METRIC_KEYS)]
    for key, scores in results.items():
        row = TABLE3[key]
        ours = ["-" if scores.get(k) is None else f"{scores[k]:.2f}" for k in METRIC_KEYS]
        lines.append(f"| {row.label} | ours | " + " | ".join(ours) + " |")
        lines.append("| | paper | " + " | ".join(f"{row.scores[k]:.2f}" for k in METRIC_KEYS) + " |")
    if note:
        lines += ["", note]
    return "\n".join(lines)


def _reproduce(args: argparse.Namespace) -> int:
    from tiktalk.io import atomic_write_text, write_json

    rows = parse_rows(args.models)
    inits = {}
    for item in args.init:
        key, sep, path = item.partition("=")
        if not sep or not path:
            raise UsageError(f"--init {item!r} is not ROW=PATH")
        inits[key] = path
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    knowledge = None
    knowledge_rows = [r for r in rows if r.knowledge]
    if knowledge_rows:  # one cache, linearised for the first knowledge row's model
        first = knowledge_rows[0]
        knowledge = prepare_knowledge(out, args.data, knowledge=args.knowledge, index=args.index,
                                      kg=args.kg, encoder=args.encoder, model=first.model,
                                      model_path=inits.get(first.key) or inits.get(first.model))
    train_args: list[str] = []
    for flag, value in (("--max-steps", args.max_steps), ("--epochs", args.epochs),
                        ("--batch-size", args.batch_size), ("--lr", args.lr), ("--seed", args.seed)):
        if value is not None:
            train_args += [flag, str(value)]
    results = run_rows(rows, out, args.data, args.split, knowledge, train_args, inits, args.preset,
                       meteor=not args.no_meteor)
    note = (f"Ours: `tiktalk reproduce --data {args.data} --models {args.models}` "
            f"({'init ' + str(inits) if inits else 'preset ' + args.preset}, split {args.split}). "
            "Paper: TikTalk (ACM MM 2023) Table 3, test set.")
    table = comparison_markdown(results, note)
    atomic_write_text(out / "table3.md", table + "\n")
    write_json(out / "table3.json", {"ours": results, "paper": {k: TABLE3[k].scores for k in results}})
    emit(args, {"table": str(out / "table3.md"), "ours": results}, lambda _: table + f"\n\nwritten: {out / 'table3.md'}")
    return 0
