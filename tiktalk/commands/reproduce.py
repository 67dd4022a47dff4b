"""``tiktalk reproduce``: train -> generate -> evaluate per Table 3 row, beside the paper's numbers.

Every step is the ordinary subcommand (``index build``, ``annotate``, ``train``,
``generate``), run in-process, so a reproduction is exactly what a user would type.

Each row carries its provenance: the dataset (name, manifest sha256), references per
dialogue, the modalities the system reads and the share of dialogues that actually had
each (run.json's ``features_present`` when the trainer recorded it, else derived from the
dataset and the knowledge cache; the lower of the training and the scored split), steps,
distinct responses, and ``comparable_to_paper``: true only on the TikTalk release (its
published split sizes, 5 references per val/test dialogue) with every modality present for
every dialogue. table3.md says so above the numbers when a row is not comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

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


def _cli(*argv: str, capture: bool = False) -> str:
    """Run ``tiktalk ARGV`` in-process; with ``capture``, return what it printed (still shown)."""
    from tiktalk.commands.main import main

    print("$ tiktalk " + " ".join(argv), flush=True)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer) if capture else contextlib.nullcontext():
        code = main(list(argv))
    sys.stdout.write(buffer.getvalue())
    if code:
        raise CommandFailedError(f"`tiktalk {' '.join(argv)}` exited with {code}")
    return buffer.getvalue()


# ---------------------------------------------------------------------------- provenance


def data_facts(data: str, split: str) -> dict[str, Any]:
    """What every row shares: the dataset's name and hash, whether it is the release, refs."""
    import polars as pl

    from tiktalk.dataset import load_dataset, resolve_path
    from tiktalk.io import sha256_file
    from tiktalk.paper import release_mismatches

    dataset = load_dataset(data)
    counts = sorted({len(r) for r in dataset.dialogues.filter(pl.col("split") == split)["references"].to_list()})
    return {
        "name": str(data) if str(data) == "sample" else resolve_path(data).name,
        "source": dataset.manifest.get("source"),
        "manifest_sha256": sha256_file(resolve_path(data) / "manifest.json"),
        "release_mismatches": release_mismatches(dataset.stats()),
        "references_per_dialogue": (counts[0] if len(counts) == 1 else f"{counts[0]}-{counts[-1]}") if counts else 0,
    }


def presence_from_run(info: dict) -> dict[str, float] | None:
    """run.json's ``features_present`` as modality name -> share present, when recorded.

    Keys may be modality names (vision, audio, knowledge), letters (I, A, K) or feature
    names (frames, audio); values a share in [0, 1] or an object with a ``fraction``.
    """
    from tiktalk.models.modalities import MODALITIES, MODALITY_LETTERS

    recorded = info.get("features_present")
    if not isinstance(recorded, dict):
        return None
    out: dict[str, float] = {}
    for key, value in recorded.items():
        name = {"frames": "vision"}.get(key) or MODALITY_LETTERS.get(str(key).upper()) or (
            key if key in MODALITIES else None)
        share = value.get("fraction") if isinstance(value, dict) else value
        if name is not None and isinstance(share, (int, float)) and not isinstance(share, bool):
            out[name] = float(share)
    return out


def row_provenance(row: PaperRow, run: Path, data: str, split: str, facts: dict[str, Any],
                   steps: int | None) -> dict[str, Any]:
    """The row's data, references, modalities read and present, steps and comparability."""
    from retrieval.cache import read_knowledge_cache
    from tiktalk.dataset import load_dataset
    from tiktalk.io import read_json
    from tiktalk.models.modalities import modality_string, parse_modalities

    info = read_json(run / "run.json")
    dataset = load_dataset(data)
    read = parse_modalities(row.modalities_read)
    knowledge_path = (info.get("knowledge") or {}).get("path")
    knowledge = read_knowledge_cache(knowledge_path) if "knowledge" in read and knowledge_path else None
    recorded = presence_from_run(info)
    train_split = (info.get("data") or {}).get("split", "train")
    # run.json records the feature modalities the trainer saw; knowledge comes from its cache
    trained = {**dataset.modality_presence(train_split, knowledge), **(recorded or {})}
    scored = dataset.modality_presence(split, knowledge)
    presence = {m: min(trained.get(m, 0.0), scored.get(m, 0.0)) for m in read if m != "text"}
    present = tuple(m for m in read if m == "text" or presence[m] == 1.0)
    reasons = []
    if facts["release_mismatches"]:
        reasons.append(f"data {facts['name']} is not the TikTalk release ({facts['release_mismatches'][0]})")
    reasons += [f"{m} present for {presence[m]:.0%} of dialogues" for m in read if m != "text" and presence[m] < 1]
    return {
        "dataset": facts["name"], "dataset_source": facts["source"], "dataset_sha256": facts["manifest_sha256"],
        "references_per_dialogue": facts["references_per_dialogue"],
        "modalities_read": modality_string(read), "modalities_present": modality_string(present),
        "presence": presence,
        "presence_source": ("run.json features_present; knowledge from its cache" if recorded is not None
                            else "derived from the dataset and the knowledge cache"),
        "steps": steps,
        "comparable_to_paper": not reasons, "not_comparable_because": reasons,
    }


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
            init: str | None, preset: str, scorer, references: dict[str, list[str]],
            facts: dict[str, Any] | None = None) -> dict:
    """Train one row, generate for ``split``, score against its references; with its provenance."""
    from tiktalk.metrics import distinct_responses, evaluate

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
    summary = json.loads(_cli(*train, "--json", capture=True))
    _cli("generate", "--run", str(run), "--data", data, "--split", split, "--out", str(preds))
    predictions = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines() if line.strip()]
    for p in predictions[:3]:
        print(f"  {p['dialogue_id']}: {p['response']}")
    missing = [p["dialogue_id"] for p in predictions if p["dialogue_id"] not in references]
    if missing:
        raise UsageError(f"{preds}: dialogue ids {missing[:3]} have no references in split {split!r}")
    responses = [p["response"] for p in predictions]
    scores: dict[str, Any] = evaluate(responses, [references[p["dialogue_id"]] for p in predictions], meteor=scorer)
    scores["distinct_responses"] = 100.0 * distinct_responses(responses)
    scores["seconds"] = round(time.perf_counter() - start, 1)
    scores["provenance"] = row_provenance(row, run, data, split, facts or data_facts(data, split),
                                          summary.get("steps"))
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
    facts = data_facts(data, split)
    results: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        scorer = stack.enter_context(MeteorScorer()) if meteor else False  # one JVM for every row
        for row in rows:
            init = inits.get(row.key) or inits.get(row.model)
            results[row.key] = run_row(row, out, data, split, knowledge, train_args or [], init, preset,
                                       scorer, references, facts)
    return results


def _provenance_lines(results: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(a caveat above the numbers, a provenance table below them) for rows that carry one."""
    rows = {key: r["provenance"] for key, r in results.items() if "provenance" in r}
    if not rows:
        return [], []
    caveat = []
    bad = {key: p["not_comparable_because"] for key, p in rows.items() if not p["comparable_to_paper"]}
    if bad:
        shared = [r for r in next(iter(bad.values())) if all(r in reasons for reasons in bad.values())]
        text = f"**Not comparable to the paper**: {len(bad)} of {len(rows)} rows"
        text += f" ({'; '.join(shared)})." if shared else "."
        text += "".join(f" {TABLE3[k].label}: {'; '.join(r for r in reasons if r not in shared)}."
                        for k, reasons in bad.items() if any(r not in shared for r in reasons))
        caveat = [text, ""]
    header = ("| system | data (manifest sha256) | refs/dialogue | reads | present | steps | distinct responses "
              "| comparable to paper |")
    table = ["", header, "|---|---|---:|---|---|---:|---:|---|"]
    for key, p in rows.items():
        missing = ", ".join(f"{m} {share:.0%}" for m, share in p["presence"].items() if share < 1)
        present = p["modalities_present"] + (f" ({missing})" if missing else "")
        steps = "-" if p["steps"] is None else str(p["steps"])
        table.append(f"| {TABLE3[key].label} | {p['dataset']} ({p['dataset_sha256'][:12]}) | "
                     f"{p['references_per_dialogue']} | {p['modalities_read']} | {present} | {steps} | "
                     f"{results[key]['distinct_responses']:.1f}% | {'yes' if p['comparable_to_paper'] else 'no'} |")
    return caveat, table


def comparison_markdown(results: dict[str, dict], note: str = "") -> str:
    """Ours beside the paper's, one pair of lines per row; provenance and caveat when known."""
    caveat, provenance = _provenance_lines(results)
    lines = [*caveat, "| system | source | " + " | ".join(METRIC_LABELS[k] for k in METRIC_KEYS) + " |",
             "|---|---|" + "---:|" * len(METRIC_KEYS)]
    for key, scores in results.items():
        row = TABLE3[key]
        ours = ["-" if scores.get(k) is None else f"{scores[k]:.2f}" for k in METRIC_KEYS]
        lines.append(f"| {row.label} | ours | " + " | ".join(ours) + " |")
        lines.append("| | paper | " + " | ".join(f"{row.scores[k]:.2f}" for k in METRIC_KEYS) + " |")
    lines += provenance
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
    write_json(out / "table3.json", {
        "ours": results, "paper": {k: TABLE3[k].scores for k in results},
        "comparable_to_paper": {k: r["provenance"]["comparable_to_paper"] for k, r in results.items()},
    })
    emit(args, {"table": str(out / "table3.md"), "ours": results}, lambda _: table + f"\n\nwritten: {out / 'table3.md'}")
    return 0
