"""``tiktalk evaluate`` and ``tiktalk human-eval export|score``, and the readers they share.

Prediction files are either plain text (one response per line, in the order of the
references / of the split's dialogues, as nlg-eval takes them) or the JSONL that
``tiktalk generate`` writes (one ``{"dialogue_id": ..., "response": ...}`` per line),
matched by id against ``--data``. Reference files (``--references``) are plain text.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tiktalk.commands import add_group, add_json_flag, emit
from tiktalk.errors import UsageError

JSONL_FIELDS = ("dialogue_id", "response")


# ----------------------------------------------------------------------------- readers


def read_text_lines(path: str | Path) -> list[str]:
    """One response per line (a trailing newline adds no line; '\\r\\n' is accepted)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err})") from None
    return text.splitlines()


def is_generate_jsonl(path: str | Path) -> bool:
    """A ``.jsonl`` file, or one whose first non-empty line is a JSON object with both fields."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return True
    for line in read_text_lines(path):
        if line.strip():
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):  # (JSONDecodeError is a ValueError)
                return False
            return isinstance(obj, dict) and all(k in obj for k in JSONL_FIELDS)
    return False


def read_generate_jsonl(path: str | Path) -> list[tuple[str, str]]:
    """(dialogue_id, response) per line of a ``tiktalk generate`` JSONL, ids unique."""
    from tiktalk.dataset import read_jsonl_rows  # the one JSONL reader: names file and line

    path = Path(path)
    out: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    for line_no, obj in read_jsonl_rows(path):
        if not isinstance(obj, dict):
            raise UsageError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
        for key in JSONL_FIELDS:
            if not isinstance(obj.get(key), str):
                raise UsageError(f"{path}:{line_no}: field {key!r} must be a string, got {obj.get(key)!r}")
        did = obj["dialogue_id"]
        if did in first_line:
            raise UsageError(f"{path}:{line_no}: duplicate dialogue_id {did!r} (first on line {first_line[did]})")
        first_line[did] = line_no
        out.append((did, obj["response"]))
    return out


def _first(ids: list[str], k: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:k])
    return shown + (f" and {len(ids) - k} more" if len(ids) > k else "")


def responses_for_split(path: str | Path, dialogue_ids: list[str], split: str) -> list[str]:
    """The responses of ``path`` in the order of ``dialogue_ids`` (one split's dialogues).

    JSONL is matched by id (every dialogue needs one, no unknown ids); plain text must have
    exactly one line per dialogue.
    """
    path = Path(path)
    if is_generate_jsonl(path):
        by_id = dict(read_generate_jsonl(path))
        missing = [d for d in dialogue_ids if d not in by_id]
        known = set(dialogue_ids)
        unknown = [d for d in by_id if d not in known]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"{len(missing)} of the {len(dialogue_ids)} {split} dialogues have no "
                             f"prediction (first: {_first(missing)})")
            if unknown:
                parts.append(f"{len(unknown)} predicted dialogue_id(s) are not in split {split} "
                             f"(first: {_first(unknown)})")
            raise UsageError(f"{path}: dialogue id mismatch: " + "; ".join(parts))
        return [by_id[d] for d in dialogue_ids]
    lines = read_text_lines(path)
    if len(lines) != len(dialogue_ids):
        raise UsageError(f"{path}: {len(lines)} prediction lines but split {split} has "
                         f"{len(dialogue_ids)} dialogues: counts must match (or use the JSONL of "
                         "`tiktalk generate`, matched by dialogue_id)")
    return lines


def split_references(data: str | Path, split: str) -> tuple[list[str], list[list[str]]]:
    """Dialogue ids and reference lists of one split of a built dataset (or ``sample``)."""
    import polars as pl

    from tiktalk.dataset import load_dataset

    frame = load_dataset(data).dialogues.filter(pl.col("split") == split)
    if frame.height == 0:
        raise UsageError(f"{data}: split {split!r} has no dialogues")
    ids = frame["dialogue_id"].to_list()
    refs = frame["references"].to_list()
    empty = [d for d, r in zip(ids, refs) if not r]
    if empty:
        raise UsageError(f"{data}: {len(empty)} dialogue(s) of split {split!r} have no references "
                         f"(first: {_first(empty)}); evaluate on val or test")
    return ids, refs


def load_eval_inputs(
    predictions: str | Path,
    data: str | Path | None = None,
    split: str = "test",
    references: list[str | Path] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Hypotheses and their reference lists, aligned and count-checked."""
    if (data is None) == (not references):
        raise UsageError("give either --data DIR (with --split) or --references R1 [R2 ...], not both")
    if data is not None:
        ids, refs = split_references(data, split)
        return responses_for_split(predictions, ids, split), refs
    pred_path = Path(predictions)
    if is_generate_jsonl(pred_path):
        hyps = [resp for _, resp in read_generate_jsonl(pred_path)]
    else:
        hyps = read_text_lines(pred_path)
    columns = []
    for ref_path in references:
        lines = read_text_lines(ref_path)
        if len(lines) != len(hyps):
            raise UsageError(f"{ref_path}: {len(lines)} reference lines but {pred_path} has "
                             f"{len(hyps)} predictions: counts must match")
        columns.append(lines)
    return hyps, [list(row) for row in zip(*columns)]


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
    e.add_argument("--n", type=int, default=100, help="dialogues to sample (default 100)")
    e.add_argument("--seed", type=int, default=0)
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
