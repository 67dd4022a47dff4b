"""Table 3 rows as plain Python: train, generate, score each row beside the paper's numbers.

:func:`run_table3` is ``tiktalk reproduce`` (the table3 suite) without the flags: it prepares
the knowledge cache the K rows read, runs every row (:func:`run_row`: train -> generate ->
score, with its provenance) and writes ``table3.md`` and ``table3.json``, the files the
command writes. Each row carries its provenance: the dataset (name, manifest sha256),
references per dialogue, the modalities the system reads and the share of dialogues that
actually had each (run.json's ``features_present`` when the trainer recorded it, else derived
from the dataset and the knowledge cache; the lower of the training and the scored split),
steps, distinct responses, and ``comparable_to_paper``: true only on the TikTalk release (its
published split sizes, 5 references per val/test dialogue) with every modality present for
every dialogue. Each row also states how it trained against its source's recipe
(:func:`recipe_facts`): the global batch, the optimizer steps, and ``follows_paper_recipe``
(pretrained weights and every recipe field as the source's, ``recipe_deviations`` naming the
rest); table3.md flags the rows that do not.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiktalk.errors import UsageError
from tiktalk.paper import TABLE3, PaperRow

DEFAULT_ROWS = "maria,maria+c3kg,dialogpt"


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


def recipe_facts(row: PaperRow, info: dict[str, Any]) -> dict[str, Any]:
    """From a row's run.json: its global batch, optimizer steps, and whether it follows its
    source's recipe (``follows_paper_recipe``; None when run.json holds no train_config)."""
    from tiktalk.models.base import get_model_class

    cli = info.get("cli") or {}
    facts: dict[str, Any] = {"global_batch_size": info.get("global_batch_size"),
                             "optimizer_steps": info.get("optimizer_steps")}
    if "train_config" not in info:
        return {**facts, "follows_paper_recipe": None, "recipe_deviations": ["run.json records no train_config"]}
    deviations = get_model_class(row.model).recipe_deviations(
        info["train_config"], info.get("global_batch_size"), cli.get("model_options"))
    if cli.get("preset"):
        deviations.insert(0, f"random-initialised preset {cli['preset']} with its own recipe, not pretrained weights")
    return {**facts, "follows_paper_recipe": not deviations, "recipe_deviations": deviations}


def row_provenance(row: PaperRow, run: Path, data: str, split: str, facts: dict[str, Any],
                   steps: int | None) -> dict[str, Any]:
    """The row's data, references, modalities read and present, steps and comparability."""
    from retrieval.cache import read_knowledge_cache
    from tiktalk.dataset import load_dataset
    from tiktalk.io import read_json
    from tiktalk.models.modalities import modality_string, parse_modalities, presence_from_run

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
        "steps": steps, **recipe_facts(row, info),
        "comparable_to_paper": not reasons, "not_comparable_because": reasons,
    }


def _slug(row: PaperRow) -> str:
    return row.key.replace("+", "_")


def prepare_knowledge(out: Path, data: str, *, knowledge: str | None = None, index: str | None = None,
                      kg: str = "sample", encoder: str | None = None, model: str = "maria",
                      model_path: str | None = None, progress: bool = True) -> Path:
    """The knowledge cache: given, or annotated with a given index, or index built first (into
    ``out/index``); linearised to ``model``'s knowledge budget (from ``model_path``, else its tiny preset)
    with the paper's head-major selection (what the Maria+C3KG row reproduces)."""
    from retrieval.retriever import RetrieverConfig
    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import annotate_with_index, build_index

    if knowledge:
        return Path(knowledge)
    if index is None:
        index = str(out / "index")
        print(f"building the head index of {kg} in {index}", flush=True)
        build_index(kg, index, encoder=encoder, overwrite=True, progress=progress)
    cache = out / "knowledge.parquet"
    print(f"annotating {data} with {index} into {cache}", flush=True)
    annotate_with_index(index, data, cache, knowledge_budget(model, model_path), config=RetrieverConfig(selection="paper"),
                        progress=progress)
    return cache


@dataclass
class RowResult:
    """One Table 3 row of ours: its scores (percent; ``meteor`` None when skipped), distinct
    responses, wall time and provenance; ``as_dict()`` is its entry in table3.json."""

    key: str
    scores: dict[str, Any]
    distinct_responses: float
    seconds: float
    provenance: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict, repr=False)  # the TrainSummary, not in table3.json

    def as_dict(self) -> dict[str, Any]:
        return {**self.scores, "distinct_responses": self.distinct_responses, "seconds": self.seconds,
                "provenance": self.provenance}


def _slug(row: PaperRow) -> str:
    return row.key.replace("+", "_")


def run_row(row: PaperRow, out: Path, data: str, split: str, knowledge: Path | None,
            train_options: dict[str, Any] | None, init: str | None, preset: str, scorer,
            references: dict[str, list[str]], facts: dict[str, Any] | None = None,
            progress: bool = True) -> RowResult:
    """Train one row into ``out/runs/<row>`` (``train_options``: TrainConfig fields over the
    model's recipe; ``progress``: the training bar with ETA on stderr), generate for ``split`` into ``out/preds/<row>.jsonl``, score against its
    references (``scorer``: a :class:`~tiktalk.metrics.MeteorScorer`, or False to skip METEOR)."""
    from tiktalk.metrics import distinct_responses, evaluate
    from tiktalk.models.base import get_model_class
    from tiktalk.runs.training import RunOptions, generate_responses, train_config, train_run

    run, preds = out / "runs" / _slug(row), out / "preds" / f"{_slug(row)}.jsonl"
    print(f"\n=== {row.label} ({row.model}{', ' + row.modalities if row.modalities else ''}) ===", flush=True)
    if row.knowledge and knowledge is None:
        raise UsageError(f"row {row.key!r} needs a knowledge cache")
    options = RunOptions(model=row.model, modalities=row.modalities or None, data=data,
                         knowledge=str(knowledge) if row.knowledge else None,
                         init=init, preset=None if init else preset)
    config = train_config(get_model_class(row.model).recipe(None if init else preset),
                          {**(train_options or {}), "progress": progress})
    start = time.perf_counter()
    summary = train_run(options, config, run, overwrite=True)
    print(f"trained {row.model} for {summary.steps} steps in {summary.seconds} s", flush=True)
    generate_responses(run, preds, data=data, split=split)
    predictions = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines() if line.strip()]
    for p in predictions[:3]:
        print(f"  {p['dialogue_id']}: {p['response']}")
    missing = [p["dialogue_id"] for p in predictions if p["dialogue_id"] not in references]
    if missing:
        raise UsageError(f"{preds}: dialogue ids {missing[:3]} have no references in split {split!r}")
    responses = [p["response"] for p in predictions]
    scores: dict[str, Any] = evaluate(responses, [references[p["dialogue_id"]] for p in predictions], meteor=scorer)
    return RowResult(key=row.key, scores=scores, distinct_responses=100.0 * distinct_responses(responses),
                     seconds=round(time.perf_counter() - start, 1),
                     provenance=row_provenance(row, run, data, split, facts or data_facts(data, split),
                                               summary.steps),
                     train=summary.as_dict())


def run_rows(rows: list[PaperRow], out: Path, data: str = "sample", split: str = "test",
             knowledge: Path | None = None, train_options: dict[str, Any] | None = None,
             inits: dict[str, str] | None = None, preset: str = "tiny", meteor: bool = True,
             progress: bool = True) -> dict[str, RowResult]:
    """:func:`run_row` for each row (one METEOR JVM for all), keyed by row."""
    import polars as pl

    from tiktalk.dataset import load_dataset
    from tiktalk.metrics import MeteorScorer

    dialogues = load_dataset(data).dialogues.filter(pl.col("split") == split)
    references = dict(zip(dialogues["dialogue_id"].to_list(), dialogues["references"].to_list()))
    if not any(references.values()):
        raise UsageError(f"split {split!r} of {data} has no references to score against")
    inits = inits or {}
    facts = data_facts(data, split)
    results: dict[str, RowResult] = {}
    with contextlib.ExitStack() as stack:
        scorer = stack.enter_context(MeteorScorer()) if meteor else False  # one JVM for every row
        for row in rows:
            init = inits.get(row.key) or inits.get(row.model)
            results[row.key] = run_row(row, out, data, split, knowledge, train_options, init, preset,
                                       scorer, references, facts, progress)
    return results


@dataclass
class Table3Result:
    """What ``tiktalk reproduce`` writes: our rows, the paper's, and the markdown beside them."""

    rows: dict[str, RowResult]
    table: str
    out: Path

    def as_dict(self) -> dict[str, Any]:
        """The content of table3.json."""
        ours = {k: r.as_dict() for k, r in self.rows.items()}
        return {"ours": ours, "paper": {k: TABLE3[k].scores for k in ours},
                "comparable_to_paper": {k: r.provenance["comparable_to_paper"] for k, r in self.rows.items()}}


def run_table3(rows: str | list[PaperRow] = DEFAULT_ROWS, out: str | Path = "reproduce_out", *, data: str = "sample",
               split: str = "test", knowledge: str | None = None, index: str | None = None, kg: str = "sample",
               encoder: str | None = None, inits: dict[str, str] | None = None, preset: str = "tiny",
               train_options: dict[str, Any] | None = None, meteor: bool = True,
               command: str | None = None, progress: bool = True) -> Table3Result:
    """Table 3 rows (``"maria+c3kg,dialogpt"``, ``"all"`` or PaperRows) on ``data``, into ``out``:
    one knowledge cache for the K rows (given, annotated with ``index``, or built from ``kg``;
    linearised for the first K row's model), every row trained, generated and scored;
    writes ``out/table3.md`` and ``out/table3.json`` as ``tiktalk reproduce`` does (``command``:
    how the table says it was made; default the equivalent command line)."""
    from tiktalk.io import atomic_write_text, write_json
    from tiktalk.paper import parse_rows
    from tiktalk.runs.reports import comparison_markdown

    models = rows if isinstance(rows, str) else ",".join(r.key for r in rows)
    paper_rows = parse_rows(rows) if isinstance(rows, str) else list(rows)
    inits = dict(inits or {})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = None
    knowledge_rows = [r for r in paper_rows if r.knowledge]
    if knowledge_rows:  # one cache, linearised for the first knowledge row's model
        first = knowledge_rows[0]
        cache = prepare_knowledge(out, data, knowledge=knowledge, index=index, kg=kg, encoder=encoder,
                                  model=first.model, model_path=inits.get(first.key) or inits.get(first.model), progress=progress)
    results = run_rows(paper_rows, out, data, split, cache, train_options, inits, preset, meteor=meteor,
                       progress=progress)
    command = command or f"tiktalk reproduce --data {data} --models {models}"
    note = (f"Ours: `{command}` ({'init ' + str(inits) if inits else 'preset ' + preset}, split {split}). "
            "Paper: TikTalk (ACM MM 2023) Table 3, test set.")
    result = Table3Result(rows=results, table="", out=out)
    result.table = comparison_markdown({k: r.as_dict() for k, r in results.items()}, note)
    atomic_write_text(out / "table3.md", result.table + "\n")
    write_json(out / "table3.json", result.as_dict())
    return result
