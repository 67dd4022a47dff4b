"""Knowledge selection cost (issue 20): what a piece selection adds to annotation, and how
long ``select train`` takes on KdConv's training split.

1. ``annotate``: the same KdConv contexts annotated with the paper's head-major selection
   (the reference) and with a learned selector, the default encoder, an index built with
   ``--pieces`` over the KB entities those contexts name. Ratio ``selection_overhead``:
   learned seconds / paper seconds (target <= 1.20).
2. ``select train``: a selector fit on all 2,292 training responses (gold labels, the val
   split for the step and threshold) over the whole KB; the hash encoder, so the figure is the
   selection machinery's (candidates, features, labels, fit); the default encoder's query
   encoding is the paper path's cost too, timed in (1). Ratio ``select_train_vs_5min``
   (target <= 1).

Needs ../shared/data/kdconv_travel (skips without it). Quick mode: 128 contexts, else 512.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.common import best_time, is_quick, pyplot, save_plot, shared_data, write_result

TIMES: dict[str, float] = {}
DATA: dict = {}
N_CONTEXTS = 128 if is_quick() else 512


@pytest.fixture(scope="module")
def kdconv(tmp_path_factory):
    folder = shared_data("kdconv_travel")
    if folder is None:
        pytest.skip("../shared/data/kdconv_travel is absent (set TIKTALK_SHARED_DATA)")
    from tiktalk.runs.pipeline import convert_kg, import_dataset

    tmp = tmp_path_factory.mktemp("kdconv")
    import_dataset("kdconv", folder, tmp / "data", overwrite=True)
    convert_kg([folder / "kb_travel.json"], tmp / "kg", overwrite=True)
    return folder, tmp


def _turns(data: Path, split: str):
    from tiktalk.runs.select import dataset_turns

    return dataset_turns(data, split)


def _budget():
    from tiktalk.runs.budget import knowledge_budget

    return knowledge_budget("maria")


def test_annotate_selection_overhead(benchmark, kdconv):
    import polars as pl

    from retrieval.annotate import annotate
    from retrieval.encoders import open_encoder
    from retrieval.index import build_head_index
    from retrieval.pieces import PieceConfig
    from retrieval.retriever import Retriever, RetrieverConfig
    from retrieval.select_train import train_selector
    from retrieval.selection import NameMatcher
    from tiktalk.runs.pipeline import convert_kg

    folder, tmp = kdconv
    train = _turns(tmp / "data", "train")
    chosen, val = train[:N_CONTEXTS], train[N_CONTEXTS : N_CONTEXTS + 128]
    kb = json.loads((folder / "kb_travel.json").read_text(encoding="utf-8"))
    matcher = NameMatcher(list(kb))
    named = {list(kb)[row] for t in chosen + val for row in matcher.find(t.context + [t.response])}
    (tmp / "kb_subset.json").write_text(json.dumps({k: kb[k] for k in sorted(named)}, ensure_ascii=False), "utf-8")
    convert_kg([tmp / "kb_subset.json"], tmp / "kg-subset", overwrite=True)
    import kg

    graph = kg.load_kg(tmp / "kg-subset")
    encoder = open_encoder(None, 1)
    index_dir = tmp / "index-subset"
    build_head_index(graph, encoder, index_dir, pieces=PieceConfig(), progress=False, use_gpu=False)
    budget = _budget()
    rows = pl.DataFrame({"dialogue_id": [t.dialogue_id for t in chosen], "context": [t.context for t in chosen],
                         "title": [None] * len(chosen)})
    from tiktalk.dataset import read_gold_attrs

    gold = read_gold_attrs(tmp / "data")
    learner = Retriever.load(index_dir, graph=graph, encoder=encoder,
                             config=RetrieverConfig(selection="dense"), budget=budget)
    train_selector(learner, chosen, val, tmp / "selector", gold=gold, progress=False)

    def run(config, name):
        retriever = Retriever.load(index_dir, graph=graph, encoder=encoder, config=config, budget=budget)
        return annotate(retriever, rows, tmp / f"{name}.parquet", overwrite=True, progress=False)

    paper_s, paper = best_time(lambda: run(RetrieverConfig(selection="paper"), "paper"), rounds=2)
    learned_s, learned = benchmark.pedantic(
        lambda: best_time(lambda: run(RetrieverConfig(selection="learned", selector=str(tmp / "selector")),
                                      "learned"), rounds=2), rounds=1, iterations=1)
    assert paper["rows"] == learned["rows"] == len(chosen)
    assert learned["selection"]["name"] == "learned" and learned["empty"] < len(chosen)
    TIMES.update({"annotate_paper": paper_s, "annotate_learned": learned_s})
    DATA.update({"contexts": len(chosen), "kb_entities": len(named), "encoder": encoder.name,
                 "learned_abstained": learned["abstained"], "learned_empty": learned["empty"]})


def test_select_train_on_kdconv(benchmark, kdconv):
    import kg
    from retrieval.encoders import HashEncoder
    from retrieval.index import build_head_index
    from retrieval.pieces import PieceConfig
    from retrieval.retriever import Retriever, RetrieverConfig
    from retrieval.select_train import train_selector
    from tiktalk.dataset import read_gold_attrs

    _, tmp = kdconv
    graph, encoder = kg.load_kg(tmp / "kg"), HashEncoder(dim=384)
    index_dir = tmp / "index-hash"
    build_head_index(graph, encoder, index_dir, pieces=PieceConfig(), progress=False, use_gpu=False)
    train, val = _turns(tmp / "data", "train"), _turns(tmp / "data", "val")
    gold = read_gold_attrs(tmp / "data")

    def fit():
        retriever = Retriever.load(index_dir, graph=graph, encoder=encoder, config=RetrieverConfig(selection="dense"),
                                   budget=_budget())
        return train_selector(retriever, train, val, tmp / "selector-full", gold=gold, overwrite=True,
                              progress=False)

    seconds, summary = benchmark.pedantic(lambda: best_time(fit), rounds=1, iterations=1)
    assert summary["train"]["contexts"] == len(train) == 2292
    TIMES["select_train"] = seconds
    DATA.update({"select_train_contexts": len(train), "select_train_seconds_by_step": summary["seconds"],
                 "select_train_val": summary["validation"]["at_threshold"]})


def teardown_module(module) -> None:
    if not TIMES:
        return
    ratios = {}
    if "annotate_learned" in TIMES:
        ratios["selection_overhead"] = TIMES["annotate_learned"] / TIMES["annotate_paper"]
    if "select_train" in TIMES:
        ratios["select_train_vs_5min"] = TIMES["select_train"] / 300.0
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    names = list(TIMES)
    ax.barh(names[::-1], [TIMES[k] for k in names[::-1]], color="tab:green")
    for y, k in enumerate(names[::-1]):
        ax.annotate(f"{TIMES[k]:.1f} s", (TIMES[k], y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xlabel("seconds")
    ax.set_title("knowledge selection cost (KdConv)")
    png = save_plot(fig, "selection_time.png")
    write_result("selection", ratios, {**DATA, "seconds": {k: round(v, 3) for k, v in TIMES.items()}}, [png])
