"""``tiktalk evaluate`` and ``tiktalk human-eval export|score``.

The prediction and reference readers they use are :mod:`tiktalk.runs.predictions`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tiktalk.commands import add_group, add_json_flag, emit
from tiktalk.errors import UsageError
from tiktalk.options import POSITIVE_INT, SEED
from tiktalk.runs.predictions import (  # noqa: F401 - read_generate_jsonl: part of this command's API
    load_eval_inputs,
    read_generate_jsonl,
    responses_for_split,
)

# ----------------------------------------------------------------------------- evaluate


def register(sub: argparse._SubParsersAction) -> None:
    from tiktalk.metrics import PROTOCOLS, TOKENIZERS

    p = sub.add_parser(
        "evaluate",
        help="BLEU-2/4, METEOR, ROUGE-L, CIDEr (coco-caption, as nlg-eval), Dist-2/3, in percent",
        description="Score predictions against references (the paper's Table 3 metrics, in percent). "
        "Default protocol: per-reference (score with each of the K references alone, average).",
    )
    p.add_argument("--predictions", required=True, metavar="P",
                   help="plain text (one response per line) or the JSONL of `tiktalk generate`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="DIR", help="built dataset directory or 'sample' (references from it)")
    src.add_argument("--references", nargs="+", metavar="R", help="reference files, one line per prediction")
    p.add_argument("--split", default="test", help="split of --data to score (default test)")
    p.add_argument("--tokenizer", choices=sorted(TOKENIZERS), default="char",
                   help="char (default): every non-space character is a token; whitespace: split on spaces")
    p.add_argument("--protocol", choices=PROTOCOLS, default="per-reference",
                   help="per-reference (default, the paper's) or corpus (plain multi-reference)")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java); reported as null")
    p.add_argument("--run", default=None, metavar="RUN",
                   help="the training run the predictions came from: its model and the share of examples "
                        "that carried each feature modality (run.json) are recorded beside the scores")
    add_json_flag(p)
    p.set_defaults(func=_evaluate)

    h_sub = add_group(sub, "human-eval", "export a human-evaluation sheet; score filled sheets (Fleiss' kappa)")
    e = h_sub.add_parser("export", help="a CSV sheet of N random dialogues x systems, 4 criteria rated 1-5")
    e.add_argument("--data", required=True, metavar="DIR", help="built dataset directory or 'sample'")
    e.add_argument("--predictions", required=True, nargs="+", metavar="P",
                   help="one file per system (plain text in split order, or `tiktalk generate` JSONL)")
    e.add_argument("--out", required=True, metavar="SHEET.csv", help="sheet to write (+ SHEET.key.json)")
    e.add_argument("--split", default="test")
    e.add_argument("--n", type=POSITIVE_INT.parse("--n"), default=100, help="dialogues to sample (default 100)")
    e.add_argument("--seed", type=SEED.parse("--seed"), default=0)
    e.add_argument("--overwrite", action="store_true")
    add_json_flag(e)
    e.set_defaults(func=_human_export)

    s = h_sub.add_parser("score", help="means per criterion (and system) and Fleiss' kappa")
    s.add_argument("sheets", nargs="+", metavar="SHEET", help="filled sheets, one per annotator")
    s.add_argument("--key", metavar="KEY.json", default=None,
                   help="the key written by export (maps items to systems); default SHEET1's "
                   "<stem>.key.json when it exists")
    add_json_flag(s)
    s.set_defaults(func=_human_score)


def references_phrase(counts: list[int]) -> str:
    """How many references each dialogue had: ``"1 reference"``, ``"5 references"``, ``"1-5 references"``."""
    low, high = min(counts), max(counts)
    if low == high:
        return f"{low} reference{'' if low == 1 else 's'}"
    return f"{low}-{high} references"


def _render_evaluate(result: dict[str, Any]) -> str:
    from tiktalk.metrics import markdown_table

    n = result["n_hypotheses"]
    meta = (f"{n} hypothes{'i' if n == 1 else 'e'}s, {result['references_phrase']} per dialogue, "
            f"protocol {result['protocol']}, tokenizer {result['tokenizer']}\n"
            f"distinct responses: {result['n_distinct_responses']} of {n} contexts "
            f"({result['distinct_responses']:.2f}%)")
    note = "" if result["meteor"] is not None else "\nMETEOR skipped (--no-meteor)."
    run = result.get("run")
    if run is not None:
        shares = ", ".join(f"{m} {share:.0%}" for m, share in (run["features_present"] or {}).items())
        note += (f"\nrun {run['path']} ({run['model']}): features present in training: {shares or 'not recorded'}"
                 + ("" if run["all_features_present"] is not False
                    else " -- trained with missing features (--allow-missing-features): not comparable to a "
                         "run that had them all"))
    return markdown_table({result["system"]: result}) + f"\n\n{meta}{note}"


def run_facts(run: str | Path) -> dict[str, Any]:
    """What a run's run.json says about how it was trained: model, modalities, and the share of
    training examples that carried each feature modality (None: not recorded)."""
    from tiktalk.errors import MissingInputError
    from tiktalk.io import read_json
    from tiktalk.models.modalities import presence_from_run

    path = Path(run) / "run.json"
    if not path.is_file():
        raise MissingInputError(f"--run {run}: no run.json there (a directory written by `tiktalk train`)")
    info = read_json(path)
    present = presence_from_run(info)
    return {"path": str(run), "model": info.get("model"), "modalities": (info.get("cli") or {}).get("modalities"),
            "features_present": present,
            "all_features_present": None if present is None else all(v >= 1.0 for v in present.values())}


def _evaluate(args: argparse.Namespace) -> int:
    from tiktalk.metrics import MeteorUnavailableError, distinct_responses, evaluate

    hyps, refs = load_eval_inputs(args.predictions, args.data, args.split, args.references)
    run = run_facts(args.run) if args.run else None
    try:
        scores = evaluate(hyps, refs, tokenizer=args.tokenizer, protocol=args.protocol,
                          meteor=not args.no_meteor, progress=not args.json)
    except MeteorUnavailableError as err:
        print(f"tiktalk evaluate: error: {err}", file=sys.stderr)
        return 2
    counts = sorted({len(r) for r in refs})
    result = {
        **scores,
        "system": Path(args.predictions).stem,
        "predictions": str(args.predictions),
        "references": str(args.data) + f" ({args.split})" if args.data else [str(r) for r in args.references],
        "n_hypotheses": len(hyps),
        "references_per_hypothesis": counts[0] if len(counts) == 1 else f"{counts[0]}-{counts[-1]}",
        "references_phrase": references_phrase(counts),
        "distinct_responses": 100.0 * distinct_responses(hyps),
        "n_distinct_responses": len(set(hyps)),
        "protocol": args.protocol,
        "tokenizer": args.tokenizer,
        "unit": "percent",
    }
    if run is not None:
        result["run"] = run
    emit(args, result, _render_evaluate)
    return 0


# ----------------------------------------------------------------------------- human eval


def _human_export(args: argparse.Namespace) -> int:
    import polars as pl

    from tiktalk import human_eval
    from tiktalk.dataset import load_dataset

    dataset = load_dataset(args.data)
    frame = dataset.dialogues.filter(pl.col("split") == args.split)
    if frame.height == 0:
        raise UsageError(f"{args.data}: split {args.split!r} has no dialogues")
    ids = frame["dialogue_id"].to_list()
    systems: dict[str, dict[str, str]] = {}
    for path in args.predictions:
        name = Path(path).stem
        if name in systems:
            raise UsageError(f"{path}: two prediction files share the system name {name!r} (rename one)")
        systems[name] = dict(zip(ids, responses_for_split(path, ids, args.split)))
    titles = {r["video_id"]: r["title"] for r in dataset.videos.iter_rows(named=True)}
    dialogues = [
        {"dialogue_id": r["dialogue_id"], "video_id": r["video_id"], "title": titles.get(r["video_id"]),
         "context": r["context"]}
        for r in frame.iter_rows(named=True)
    ]
    sheet = human_eval.build_sheet(dialogues, systems, n=args.n, seed=args.seed)
    key_path = human_eval.write_sheet(args.out, sheet, overwrite=args.overwrite,
                                      provenance={"data": str(args.data), "split": args.split,
                                                  "predictions": {k: str(p) for k, p in
                                                                  zip(systems, args.predictions)}})
    result = {"sheet": str(args.out), "key": str(key_path), "dialogues": sheet.n_dialogues,
              "requested": args.n, "systems": list(systems), "rows": len(sheet.rows), "seed": args.seed,
              "note": sheet.note}
    emit(args, result, lambda r: f"wrote {r['sheet']}: {r['rows']} rows ({r['dialogues']} dialogues x "
         f"{len(r['systems'])} system(s)), key {r['key']}" + (f"\nnote: {r['note']}" if r["note"] else ""))
    return 0


def _human_score(args: argparse.Namespace) -> int:
    from tiktalk import human_eval

    key = args.key
    if key is None:
        default = human_eval.key_path_for(args.sheets[0])
        key = default if default.exists() else None
    result = human_eval.score_sheets(args.sheets, key)
    emit(args, result, human_eval.render_scores)
    return 0
