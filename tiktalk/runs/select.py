"""Training a knowledge selector on a dataset (``tiktalk select train``; retrieval.select_train)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiktalk.errors import UsageError

LABEL_SOURCES = ("auto", "gold", "pseudo")


def dataset_turns(data: str | Path, split: str) -> list:
    """The (dialogue_id, context, response, video_id) turns of one split of a dataset directory."""
    import polars as pl

    from retrieval.select_train import Turn
    from tiktalk.dataset import load_dataset

    rows = load_dataset(data).dialogues.filter(pl.col("split") == split)
    turns = [Turn(i, list(c), r, v) for i, c, r, v in
             rows.select("dialogue_id", "context", "response", "video_id").iter_rows()]
    if not turns:
        raise UsageError(f"{data}: split {split!r} has no dialogues")
    return turns


def train_dataset_selector(data: str | Path, index: str | Path, out: str | Path, *, labels: str = "auto",
                           train_split: str = "train", val_split: str = "val", selection=None, settings=None,
                           model: str | None = "maria", max_tokens: int | None = None, workers: int | None = 1,
                           overwrite: bool = False, progress: bool = True, on_notice=None) -> dict[str, Any]:
    """Fit a selector on ``data``'s ``train_split`` (labels: the dataset's gold attrs, or
    pseudo-labels from the responses; ``auto``: gold when present), choose its step and
    threshold on ``val_split``, and save it to ``out``. ``selection``: the candidates
    (:class:`retrieval.selection.SelectionConfig`); the budget: ``model``'s knowledge budget."""
    from retrieval.retriever import RetrieverConfig
    from retrieval.select_train import train_selector
    from retrieval.selection import SelectionConfig
    from tiktalk.dataset import GOLD_ATTRS_FILE, read_gold_attrs, resolve_path
    from tiktalk.io import output_lock, sha256_file
    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import open_retriever

    if labels not in LABEL_SOURCES:
        raise UsageError(f"labels {labels!r} is not one of {list(LABEL_SOURCES)}")
    root = resolve_path(data)
    train, val = dataset_turns(data, train_split), dataset_turns(data, val_split)
    has_gold = (root / GOLD_ATTRS_FILE).is_file()
    if labels == "gold" and not has_gold:
        raise UsageError(f"{data}: gold labels need {GOLD_ATTRS_FILE} (from `tiktalk data import --from kdconv`)")
    gold = read_gold_attrs(root) if labels == "gold" or (labels == "auto" and has_gold) else None
    config = RetrieverConfig(selection="dense", piece_selection=selection or SelectionConfig())
    retriever = open_retriever(index, config=config, budget=knowledge_budget(model, None, max_tokens),
                               workers=workers, on_notice=on_notice)
    try:
        with output_lock(out, on_notice=on_notice):
            return train_selector(retriever, train, val, out, gold=gold, settings=settings,
                                  data_sha256=sha256_file(root / "manifest.json"), overwrite=overwrite,
                                  progress=progress)
    finally:
        getattr(retriever.encoder, "close", lambda: None)()


def kdconv_piece_report(index: str | Path, kdconv: str | Path, *, split: str = "test", selector: str | None = None,
                        model: str | None = "maria", workers: int | None = 1, progress: bool = False) -> dict[str, Any]:
    """Piece-level recall on a raw KdConv split (:func:`retrieval.piece_eval.kdconv_piece_recall`)
    of the ``dense`` selection over ``index`` (built over the KdConv KB) and, with
    ``selector``, the learned one, cut to ``model``'s knowledge budget."""
    from retrieval.piece_eval import kdconv_piece_recall
    from retrieval.retriever import RetrieverConfig
    from retrieval.selector import LearnedScorer
    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import open_retriever

    retriever = open_retriever(index, config=RetrieverConfig(selection="dense"), budget=knowledge_budget(model),
                               workers=workers)
    try:
        if "entity" not in set(retriever.index.heads["kind"].to_list()):
            raise UsageError(f"{index}: piece-level KdConv recall needs an index over the KdConv KB "
                             "(`tiktalk kg convert kb_travel.json`, then `index build --kg`); it has no entities")
        scorers = {"dense": retriever.scorer}
        if selector is not None:
            scorers["learned"] = LearnedScorer.load(selector, retriever)
        return kdconv_piece_recall(retriever, kdconv, split=split, scorers=scorers, progress=progress)
    finally:
        getattr(retriever.encoder, "close", lambda: None)()
