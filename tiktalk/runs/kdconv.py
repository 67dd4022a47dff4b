"""The KdConv suite: does Maria read knowledge, on KdConv (real knowledge-grounded dialogues)?

:func:`run_kdconv_suite` imports a KdConv domain, converts its KB, indexes its entities,
annotates the dialogues it reads with retrieved knowledge and writes the gold knowledge of the
triples each response used (:func:`prepare_kdconv`, one function per knowledge cache); then
trains, generates, evaluates and probes each run of :func:`kdconv_runs` (Maria T, T+K with
retrieved (the paper's head-major selection), T+K with the learned piece selection and T+K
with gold knowledge) and writes ``kdconv.json`` / ``kdconv.md`` as
``tiktalk reproduce --suite kdconv`` does: per run its metrics on (the first ``limit``
dialogues of) the test split and the knowledge probe on the test dialogues that have gold
knowledge (the same dialogues for every run, each run with its own knowledge). See docs/kdconv.md.

A run is a name and a knowledge cache (None: text only); adding one is a cache-preparing
function and one entry in :func:`kdconv_runs`. In kdconv.json a run's ``knowledge`` is the
cache's label: its file name ``knowledge-<label>.parquet``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiktalk.errors import UsageError

# The kdconv suite's training of the tiny Maria, chosen by measurement (docs/kdconv.md): it learns
# to read knowledge on KdConv within the CPU budget (a 4x wider Maria read a little more, at a
# higher NLL, for the same CPU time, so no larger preset was added).
KDCONV_TRAIN = {"max_steps": 1200, "batch_size": 16, "lr": 3e-3, "warmup_steps": 30}
KDCONV_LIMIT = 300  # test dialogues generated and scored with the usual metrics
KDCONV_PROBE_LIMIT = 500  # test dialogues with gold knowledge that the probe scores


def kdconv_kb_file(folder: Path) -> Path:
    """The one ``kb_<domain>.json`` of a KdConv domain directory."""
    files = sorted(folder.glob("kb_*.json"))
    if len(files) != 1:
        raise UsageError(f"{folder}: expected one KdConv KB file kb_<domain>.json, found "
                         f"{[f.name for f in files] or 'none'}")
    return files[0]


@dataclass
class KdconvPrepared:
    """What the suite's runs read: the imported dataset, the KB as a KG, the knowledge caches,
    the test dialogues scored and probed, and the budget every cache is cut to."""

    folder: Path
    data: Path
    graph: Path
    budget: Any  # KnowledgeBudget
    test_ids: list[str]
    generate_ids: list[str]  # the test dialogues generated for and scored (the first ``limit``)
    probe_ids: list[str]  # the test dialogues probed (the first ``probe_limit`` with gold knowledge)
    with_gold: list[str]
    read: int  # test dialogues read: up to the last generated for or probed
    caches: dict[str, Path] = dataclasses.field(default_factory=dict)  # label -> knowledge cache
    index: Path | None = None  # the KB's index (with pieces), once built
    contexts: Path | None = None  # the contexts the suite annotates (training split and test prefix)


def knowledge_label(cache: Path | None) -> str | None:
    """``knowledge-gold.parquet`` -> ``gold``: a run's knowledge as kdconv.json names it."""
    return None if cache is None else cache.stem.removeprefix("knowledge-")


def kdconv_budget(preset: str = "tiny"):
    """The knowledge budget of the Maria T+K the suite trains: every cache is cut to it."""
    from tiktalk.models.base import get_model_class

    # read from the preset's config and tokenizer, no model built
    return get_model_class("maria").knowledge_budget_of(preset=preset, modalities=("text", "knowledge"))


def prepare_kdconv(folder: str | Path, out: Path, *, preset: str = "tiny", limit: int | None = KDCONV_LIMIT,
                   probe_limit: int | None = KDCONV_PROBE_LIMIT) -> KdconvPrepared:
    """Import the domain into ``out/data``, its KB into ``out/kg``, its gold knowledge into
    ``out/knowledge-gold.parquet``; choose the test dialogues scored and probed."""
    import polars as pl

    from retrieval.cache import read_knowledge_cache
    from tiktalk.dataset import load_dataset
    from tiktalk.runs.pipeline import convert_kg, import_dataset

    folder = Path(folder)
    data, graph = out / "data", out / "kg"
    print(f"importing {folder} into {data}; its KB into {graph}", flush=True)
    import_dataset("kdconv", folder, data, overwrite=True,
                   on_warning=lambda line: print(f"warning: {line}", file=sys.stderr))
    convert_kg([kdconv_kb_file(folder)], graph, overwrite=True)
    budget = kdconv_budget(preset)
    gold_cache = prepare_gold_knowledge(data, out, budget)
    dialogues = load_dataset(data).dialogues
    test_ids = dialogues.filter(pl.col("split") == "test")["dialogue_id"].to_list()
    gold = read_knowledge_cache(gold_cache)
    with_gold = [i for i in test_ids if gold.get(i)]
    probe_ids, generate_ids = with_gold[: probe_limit or None], test_ids[: limit or None]
    read = max(len(generate_ids), test_ids.index(probe_ids[-1]) + 1 if probe_ids else 0)
    return KdconvPrepared(folder=folder, data=data, graph=graph, budget=budget, test_ids=test_ids,
                          generate_ids=generate_ids, probe_ids=probe_ids, with_gold=with_gold, read=read,
                          caches={"gold": gold_cache})


def prepare_gold_knowledge(data: Path, out: Path, budget) -> Path:
    """``out/knowledge-gold.parquet``: the KB triples each response used, cut to ``budget``."""
    from dataclasses import replace

    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import gold_knowledge

    cache = out / "knowledge-gold.parquet"
    print(f"gold knowledge of {data} into {cache}", flush=True)
    gold_knowledge(data, cache, replace(knowledge_budget("maria"), max_tokens=budget.max_tokens), overwrite=True)
    return cache


def prepare_retrieved_knowledge(prepared: KdconvPrepared, out: Path, encoder: str | None = None) -> Path:
    """``out/knowledge-retrieved.parquet``: the KB entities retrieved for each dialogue the suite
    reads. Retrieval (the slow step on a CPU) runs for the training split and the test split up
    to the last dialogue generated for or probed; the index of the KB goes to ``out/index``."""
    import polars as pl

    from retrieval.retriever import RetrieverConfig
    from tiktalk.dataset import load_dataset
    from tiktalk.io import atomic_write_text
    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import annotate_with_index, build_index

    dialogues = load_dataset(prepared.data).dialogues
    wanted = set(dialogues.filter(pl.col("split") == "train")["dialogue_id"].to_list()) | set(
        prepared.test_ids[: prepared.read])
    contexts_file = out / "contexts.jsonl"
    atomic_write_text(contexts_file, "".join(
        json.dumps({"dialogue_id": i, "context": c}, ensure_ascii=False) + "\n"
        for i, c in dialogues.select("dialogue_id", "context").iter_rows() if i in wanted))
    index, cache = out / "index", out / "knowledge-retrieved.parquet"
    print(f"indexing {prepared.graph} into {index}; annotating {len(wanted)} dialogues into {cache}", flush=True)
    # with its pieces, which the dense and learned selections score (paper's knowledge is unchanged by them)
    build_index(str(prepared.graph), index, encoder=encoder, pieces=True, overwrite=True)
    prepared.index, prepared.contexts = index, contexts_file
    annotate_with_index(index, contexts_file, cache, knowledge_budget("maria", max_tokens=prepared.budget.max_tokens),
                        config=RetrieverConfig(selection="paper"))
    return cache


def prepare_dense_knowledge(prepared: KdconvPrepared, out: Path) -> Path:
    """``out/knowledge-dense.parquet``: the ``dense`` piece selection (no training) of the same dialogues."""
    from retrieval.retriever import RetrieverConfig
    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import annotate_with_index

    cache = out / "knowledge-dense.parquet"
    print(f"dense piece selection into {cache}", flush=True)
    annotate_with_index(prepared.index, prepared.contexts, cache,
                        knowledge_budget("maria", max_tokens=prepared.budget.max_tokens),
                        config=RetrieverConfig(selection="dense"))
    return cache


def prepare_selected_knowledge(prepared: KdconvPrepared, out: Path, progress: bool = False,
                               ) -> tuple[Path, dict[str, Any]]:
    """``out/knowledge-selected.parquet``: a selector trained on the training split's gold attrs
    (``out/selector``; its step and abstain threshold chosen on the val split, never the test
    split), then the learned selection of the same dialogues. Returns the cache and the
    selector's training summary."""
    from retrieval.retriever import RetrieverConfig
    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import annotate_with_index
    from tiktalk.runs.select import train_dataset_selector

    selector, cache = out / "selector", out / "knowledge-selected.parquet"
    print(f"training a selector on {prepared.data}'s gold attrs into {selector}", flush=True)
    summary = train_dataset_selector(prepared.data, prepared.index, selector, labels="gold",
                                     max_tokens=prepared.budget.max_tokens, overwrite=True, progress=progress)
    print(f"learned piece selection into {cache}", flush=True)
    annotate_with_index(prepared.index, prepared.contexts, cache,
                        knowledge_budget("maria", max_tokens=prepared.budget.max_tokens),
                        config=RetrieverConfig(selection="learned", selector=str(selector)))
    return cache, summary


def kdconv_runs(prepared: KdconvPrepared) -> list[tuple[str, Path | None]]:
    """The suite's runs, in order: (name, knowledge cache or None for text only)."""
    return [("T", None), ("T+K-retrieved", prepared.caches["retrieved"]), ("T+K-selected", prepared.caches["selected"]),
            ("T+K-gold", prepared.caches["gold"])]


def kdconv_probe(run: Path, data: Path, knowledge: Path | None, ids: list[str], within: int,
                 seed: int = 0) -> dict[str, Any]:
    """The probe of one run over the test dialogues ``ids`` (among the first ``within``), each
    with the run's own knowledge (``knowledge``: its cache); a run without knowledge reports
    its NLL only (``nll_none``)."""
    from tiktalk.models.probe import bootstrap_ci, per_token_nll, probe_knowledge
    from tiktalk.runs.training import load_examples, load_run_model

    model, _ = load_run_model(run)
    examples, _ = load_examples(str(data), "test", None if knowledge is None else str(knowledge), within)
    by_id = {e.dialogue_id: e for e in examples}
    chosen = [by_id[i] for i in ids]
    if knowledge is not None:
        # the probe leaves out dialogues with an empty segment (an abstaining selection has them);
        # ``nll_own_all`` scores every probed dialogue with its own segment, empty or not, so it
        # compares with T's ``nll_none`` over the same dialogues
        nll = per_token_nll(model, chosen, batch_size=32)
        return {**probe_knowledge(model, chosen, seed=seed).as_dict(), "nll_own_all": float(nll.mean()),
                "nll_own_all_ci95": bootstrap_ci(nll, 1000, seed), "n_all": len(chosen)}
    nll = per_token_nll(model, [dataclasses.replace(e, knowledge=None) for e in chosen], batch_size=32)
    return {"n": len(chosen), "nll_none": float(nll.mean()), "nll_none_ci95": bootstrap_ci(nll, 1000, seed),
            "note": "reads no knowledge: its NLL with none"}


@dataclass
class KdconvResult:
    """What kdconv.json holds (``as_dict()``), and the markdown of kdconv.md."""

    runs: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    test: dict[str, Any]
    table: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "settings": self.settings, "test": self.test}


def run_kdconv_suite(folder: str | Path, out: str | Path, *, preset: str = "tiny",
                     train_options: dict[str, Any] | None = None, encoder: str | None = None,
                     limit: int | None = KDCONV_LIMIT, probe_limit: int | None = KDCONV_PROBE_LIMIT,
                     meteor: bool = True, threads: int | None = None, command: str | None = None,
                     progress: bool = True) -> KdconvResult:
    """Prepare (import, convert, index, annotate, gold knowledge), then train, generate, evaluate
    and probe every run of :func:`kdconv_runs`; write ``out/kdconv.json`` and ``out/kdconv.md``.
    ``train_options``: TrainConfig fields (default :data:`KDCONV_TRAIN`); ``limit`` /
    ``probe_limit``: None or 0 = every dialogue; ``command``: how kdconv.md says it was made;
    ``progress``: tqdm bars (stderr) for selector training and each run's training."""
    import polars as pl

    from retrieval.cache import read_knowledge_cache
    from retrieval.gold import gold_value_use
    from tiktalk.dataset import load_dataset, read_gold_attrs
    from tiktalk.io import atomic_write_text, write_json
    from tiktalk.metrics import MeteorScorer, distinct_responses, evaluate
    from tiktalk.models.base import get_model_class
    from tiktalk.models.probe import copy_rate
    from tiktalk.runs.reports import kdconv_markdown, probe_line
    from tiktalk.runs.training import RunOptions, generate_responses, train_config, train_run
    from tiktalk.types import DialogueExample

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    train_options = dict(KDCONV_TRAIN if train_options is None else train_options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = start = time.perf_counter()
    seconds: dict[str, float] = {}
    prepared = prepare_kdconv(folder, out, preset=preset, limit=limit, probe_limit=probe_limit)
    prepared.caches["retrieved"] = prepare_retrieved_knowledge(prepared, out, encoder)
    seconds["prepare"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    dense_cache = prepare_dense_knowledge(prepared, out)
    seconds["dense"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    prepared.caches["selected"], selector = prepare_selected_knowledge(prepared, out, progress)
    seconds["selector"] = round(time.perf_counter() - start, 1)

    data, probe_ids = prepared.data, prepared.probe_ids
    test = load_dataset(data).dialogues.filter(pl.col("split") == "test")
    references = dict(zip(prepared.test_ids, test["references"].to_list()))
    contexts = dict(zip(prepared.test_ids, test["context"].to_list()))
    knowledge = {label: read_knowledge_cache(path) for label, path in prepared.caches.items()}
    attrs = read_gold_attrs(data)
    # what each cache holds of the values the probed responses used (issue 20's measure)
    use = {label: gold_value_use(segments, attrs, probe_ids, prepared.budget) for label, segments in
           [*knowledge.items(), ("dense", read_knowledge_cache(dense_cache))]}
    heads = {label: dict(pl.read_parquet(path, columns=["dialogue_id", "heads"]).iter_rows())
             for label, path in prepared.caches.items()}
    recipe = get_model_class("maria").recipe(preset)
    runs: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        scorer = stack.enter_context(MeteorScorer()) if meteor else False
        for name, cache in kdconv_runs(prepared):
            source = knowledge_label(cache)
            modalities = "T+K" if cache else "T"
            print(f"\n=== {name} (maria {modalities}{', ' + source + ' knowledge' if source else ''}) ===", flush=True)
            slug = name.replace("+", "_")
            run, preds = out / "runs" / slug, out / "preds" / f"{slug}.jsonl"
            start = time.perf_counter()
            options = RunOptions(model="maria", preset=preset, modalities=modalities, data=str(data),
                                 knowledge=str(cache) if cache else None)
            summary = train_run(options, train_config(recipe, {**train_options, "progress": progress}), run,
                                overwrite=True)
            generate_responses(run, preds, data=str(data), split="test", limit=len(prepared.generate_ids))
            predictions = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines() if line.strip()]
            responses = [p["response"] for p in predictions]
            ids = [p["dialogue_id"] for p in predictions]
            metrics: dict[str, Any] = evaluate(responses, [references[i] for i in ids], meteor=scorer)
            metrics["distinct_responses"] = 100.0 * distinct_responses(responses)
            metrics["dialogues"] = len(ids)
            if source:  # generated responses that copy a span of their knowledge absent from the context
                pairs = [(r, i) for r, i in zip(responses, ids) if knowledge[source].get(i)]
                examples = [DialogueExample(i, contexts[i], knowledge=knowledge[source][i]) for _, i in pairs]
                metrics["knowledge_copy"] = {"dialogues": len(pairs),
                                             "generated": copy_rate([r for r, _ in pairs], examples),
                                             "references": copy_rate([references[i][0] for _, i in pairs], examples)}
            probe = kdconv_probe(run, data, cache, probe_ids, prepared.read)
            runs[name] = {"modalities": modalities, "knowledge": source and {"source": source, **use[source]},
                          "steps": summary.steps,
                          "final_loss": summary.final_loss, "train_seconds": summary.seconds,
                          "metrics": metrics, "probe": probe, "seconds": round(time.perf_counter() - start, 1)}
            print(f"{name}: " + probe_line(probe), flush=True)
    gold_retrieved = [bool(set(heads["gold"][i]) & set(heads["retrieved"][i])) for i in probe_ids]
    generate_ids, with_gold, test_ids = prepared.generate_ids, prepared.with_gold, prepared.test_ids
    seconds["total"] = round(time.perf_counter() - total, 1)
    train_args = [item for key, value in train_options.items()
                  for item in (f"--{key.replace('_', '-')}", str(value))]
    result = KdconvResult(
        runs=runs,
        settings={"data": str(folder), "preset": preset, "train_args": train_args, "encoder": encoder,
                  "knowledge_budget": prepared.budget.as_dict(), "seconds": seconds, "threads": threads},
        test={"dialogues": len(references), "with_gold_knowledge": len(with_gold),
              "metrics_on": {"dialogues": len(generate_ids), "subset": len(generate_ids) < len(test_ids),
                             "which": "the first dialogues of the test split"},
              "probe_on": {"dialogues": len(probe_ids), "subset": len(probe_ids) < len(with_gold),
                           "which": "the first test dialogues with gold knowledge, the same for every run"},
              "gold_entity_retrieved": sum(gold_retrieved) / max(len(gold_retrieved), 1),
              "gold_value_retrieved": use["retrieved"]["gold_value_in_segment"],
              "knowledge_use": use, "selector": {k: selector[k] for k in ("labels_from", "train", "validation",
                                                                          "threshold", "hub_background")}})
    result.table = kdconv_markdown(result.as_dict(), command or kdconv_command(folder, out, preset=preset,
                                                                                encoder=encoder, meteor=meteor))
    atomic_write_text(out / "kdconv.md", result.table + "\n")
    write_json(out / "kdconv.json", result.as_dict())
    return result


def kdconv_command(folder: str | Path, out: str | Path, *, preset: str = "tiny", encoder: str | None = None,
                   meteor: bool = True, **given: Any) -> str:
    """The ``tiktalk reproduce --suite kdconv`` command line of these options (``given``: the
    other flags as TrainConfig / option names: max_steps, limit, probe_limit, threads, ...)."""
    flags = [("--data", folder), ("--out", out), ("--preset", None if preset == "tiny" else preset),
             ("--encoder", encoder), *((f"--{k.replace('_', '-')}", v) for k, v in given.items())]
    shown = [f"{flag} {value}" for flag, value in flags if value is not None]
    return " ".join(["tiktalk reproduce --suite kdconv", *shown, *([] if meteor else ["--no-meteor"])])
