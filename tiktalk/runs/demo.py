"""The ``tiktalk demo`` pipeline: the main job end to end on the shipped samples, offline.

:func:`run_demo` runs the stages in order, each printing what it did; every artefact lands
under ``out``. The last line is the knowledge probe of the Maria+C3KG run (does it read its
knowledge?).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

DEMO_HEADS = ("有人买披萨", "有人带狗去公园", "火锅")


def _banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def stage_kg(out: Path) -> dict:
    import kg
    from tiktalk.runs.reports import render_kg_stats
    from tiktalk.types import KnowledgeBudget

    _banner("1. C3KG: convert the sample release files, stats, flows")
    manifest = kg.convert([kg.sample_dir()], out / "kg", overwrite=True)
    graph = kg.load_kg(out / "kg")
    print(f"converted sample -> {out / 'kg'} (content sha256 {manifest['content_sha256'][:12]})")
    print(render_kg_stats(graph.stats()))
    heads = [h for h in DEMO_HEADS if h in graph] or graph.heads()[:3]
    for head in heads:
        item = graph.flows(head, depth=1, fanout=2, top_k_tails=2)
        print(f"\n{head} [{item.kind}]")
        print("  " + kg.linearize([item], budget=KnowledgeBudget(120)).text)  # 120 characters
    return {"kg": str(out / "kg"), "content_sha256": manifest["content_sha256"]}


def stage_analysis(out: Path) -> dict:
    """Table 2 and Table 5 of the shipped sample (``tiktalk analyze all --data sample``), beside the paper's."""
    from tiktalk.runs.analysis import render_stats, render_topics, run_analysis_all

    _banner("0. The sample's data: Table 2 (data division) and Table 5 (topics), beside the paper")
    summary = run_analysis_all("sample", out / "analysis", overwrite=True)
    print(render_stats(summary["tables"]["table2"]) + "\n\n" + render_topics(summary["tables"]["table5"]))
    return {"out": summary["out"], "table2": summary["tables"]["table2"]["splits"],
            "table5": summary["tables"]["table5"]["counts"]}


def stage_retrieval(out: Path, progress: bool = True) -> dict:
    _banner("2. Retrieval: encode the heads, FAISS index, knowledge for a few contexts")
    return run_retrieval_demo(out, progress=progress)


def stage_annotate(out: Path, progress: bool = True) -> dict:
    from tiktalk.runs.experiments import prepare_knowledge

    _banner("3. Annotate: the knowledge cache every training run reads")
    return {"knowledge": str(prepare_knowledge(out, "sample", index=str(out / "index"), progress=progress))}


def stage_train(out: Path, all_rows: bool, steps: int | None, meteor: bool, progress: bool = True) -> dict:
    """Tiny random models trained with their preset's recipe: the pipeline, not the paper's numbers."""
    from tiktalk.paper import parse_rows
    from tiktalk.runs.experiments import run_rows
    from tiktalk.runs.reports import comparison_markdown

    rows = parse_rows("all" if all_rows else "maria+c3kg")
    options = {} if steps is None else {"max_steps": steps}
    results = {k: r.as_dict() for k, r in run_rows(rows, out, "sample", "test", out / "knowledge.parquet",
                                                    options, meteor=meteor, progress=progress).items()}
    _banner("4. Results on the sample test split (%): tiny random models (their preset recipe), beside the paper")
    print(comparison_markdown(results))
    return results


def stage_probe(out: Path):
    """The knowledge probe of the Maria+C3KG run on the sample's test split (its own knowledge
    cache); what ``tiktalk probe knowledge --run OUT/runs/maria_c3kg`` prints."""
    from tiktalk.models.probe import probe_knowledge
    from tiktalk.runs.training import load_examples, load_run_model

    run = out / "runs" / "maria_c3kg"
    _banner("5. Does Maria+C3KG read its knowledge? Reference NLL with its own / another dialogue's / no knowledge")
    print(f"$ tiktalk probe knowledge --run {run} --split test", flush=True)
    model, info = load_run_model(run)
    examples, _ = load_examples("sample", "test", info["knowledge"]["path"])
    return probe_knowledge(model, examples)


def run_demo(out: str | Path = "demo_out", *, all_rows: bool = False, steps: int | None = None,
             meteor: bool = True, progress: bool = True) -> dict[str, Any]:
    """Every stage on the samples into ``out``; what ``tiktalk demo --json`` prints (``progress``:
    bars with ETA on stderr over the encoding, the annotation and each training)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    start = time.perf_counter()
    summary["analysis"] = stage_analysis(out)
    summary["kg"] = stage_kg(out)
    summary["retrieval"] = stage_retrieval(out, progress)
    summary["annotate"] = stage_annotate(out, progress)
    summary["results"] = stage_train(out, all_rows, steps, meteor=meteor, progress=progress)
    probe = stage_probe(out)
    summary["probe"] = probe.as_dict()
    summary["seconds"] = round(time.perf_counter() - start, 1)
    _banner(f"done in {summary['seconds']} s; artefacts under {out}/")
    print(f"Maria+C3KG {probe.summary()}")  # the last line: does the model read its knowledge?
    return summary


DEMO_CONTEXTS: tuple[tuple[str, ...], ...] = (
    ("深夜来了个意式大饼，芝士拉丝拉老长", "看得我口水直流"),
    ("回家一看客厅全是棉花，二哈干的好事",),
    ("周末登顶了，一千多级台阶", "腿到现在还在抖"),
    ("十连又是全紫，非酋本酋",),
)


def run_retrieval_demo(out_dir: str | Path, encoder: str | None = None, top_k: int = 3, *,
                       progress: bool = True) -> dict:
    """Build ``<out_dir>/index`` from the sample KG, print the knowledge for DEMO_CONTEXTS.

    Returns ``{"index": path, "results": [retrieval dicts]}``.
    """
    import kg
    from retrieval.encoders import get_encoder
    from retrieval.hubness import read_background
    from retrieval.index import build_head_index
    from retrieval.retriever import Retriever, RetrieverConfig
    from retrieval.search import configure_threads
    from tiktalk.runs.budget import knowledge_budget

    configure_threads()
    out = Path(out_dir) / "index"
    graph = kg.load_kg("sample")
    enc = get_encoder(encoder)
    # hub statistics from the shipped sample's contexts, as `tiktalk index build` makes them by default
    index = build_head_index(graph, enc, out, overwrite=True, kg_source="sample", progress=progress,
                             background=read_background("sample"))
    print(f"built {out}: {len(index)} heads {index.manifest['counts']}, {enc.name} d={enc.dim}")
    budget = knowledge_budget("maria")  # what the demo's Maria reads (its tiny preset's config)
    # the default piece selection, and the paper's head-major segment of its top_k heads beside it
    retriever = Retriever(index, graph, enc, RetrieverConfig(), budget=budget)
    paper = Retriever(index, graph, enc, RetrieverConfig(selection="paper", top_k=top_k), budget=budget)
    print(f"knowledge cut between pieces to Maria's budget: {budget.max_tokens} tokens ({budget.tokenizer})")
    contexts = [list(c) for c in DEMO_CONTEXTS]
    results = []
    for context, result, head_major in zip(DEMO_CONTEXTS, retriever.retrieve_batch(contexts),
                                           paper.retrieve_batch(contexts)):
        print(f"\ncontext: {' / '.join(context)}")
        for h in result.heads:
            print(f"  {h.score:.3f}  {h.text}  [{h.family}]")
        print(f"  knowledge ({retriever.config.selection}): {result.knowledge}")
        print(f"  knowledge (paper, top {top_k} heads): {head_major.knowledge}")
        results.append(result.as_dict())
    return {"index": str(out), "results": results}
