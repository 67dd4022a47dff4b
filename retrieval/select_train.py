"""``tiktalk select train``: fit a :mod:`retrieval.selector` on a dataset's (context, response) pairs.

The retriever's index, KG and encoder define the candidates exactly as annotation will
(:class:`retrieval.selection.CandidateBuilder`, the training contexts as hub background when
the index stores none); the training split's responses label them, the validation split
picks the best step and the abstain threshold and is reported in the selector's manifest.
Nothing here reads the test split.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.pieces import write_segment
from retrieval.selection import Candidates, SelectionConfig, choose, piece_features
from retrieval.selector import (
    HEAD_LABEL,
    OTHER_LABEL,
    TrainSettings,
    built_for,
    choose_threshold,
    gold_piece_labels,
    gram_vocabulary,
    label_key,
    predict,
    pseudo_piece_labels,
    save_selector,
    stack_examples,
    train_model,
)
from tiktalk.errors import OutputExistsError, UsageError


@dataclass(frozen=True)
class Turn:
    """One (context, response) pair of a dataset split."""

    dialogue_id: str
    context: list[str]
    response: str


PSEUDO_CLOSEST_SHARE = 0.1  # pseudo-labels: the training contexts whose response is closest to a piece


def _labelled(retriever, turns: Sequence[Turn], gold: Mapping[str, Sequence[Mapping]] | None, progress: bool,
              desc: str, min_cosine: float | None = None,
              ) -> tuple[list[Candidates], list[np.ndarray], list[np.ndarray], float | None]:
    """Candidates, features and labels of ``turns``. Without gold, the response's cosine to each
    candidate also labels (its closest piece, at ``min_cosine`` or above; None: the cosine that
    the :data:`PSEUDO_CLOSEST_SHARE` closest of these contexts reach, returned)."""
    from tqdm.auto import tqdm

    kept: list[tuple[Turn, Candidates, np.ndarray | None]] = []
    with tqdm(total=len(turns), desc=desc, unit="context", disable=not progress) as bar:
        for start, built in retriever.candidate_chunks([t.context for t in turns]):
            part = turns[start : start + len(built)]
            responses = None
            if gold is None:  # the posterior's other half: how close the response is to each piece
                responses = retriever.encoder.encode([t.response or " " for t in part], kind="query")
            for j, (turn, c) in enumerate(zip(part, built)):
                if c is not None and c.pieces:
                    kept.append((turn, c, None if responses is None else c.vectors @ responses[j]))
            bar.update(len(built))
    if gold is None and min_cosine is None and kept:
        min_cosine = float(np.quantile([float(r.max()) for _, _, r in kept], 1 - PSEUDO_CLOSEST_SHARE))
    batch = [c for _, c, _ in kept]
    targets = [gold_piece_labels(c, gold.get(t.dialogue_id, []), t.response) if gold is not None
               else pseudo_piece_labels(c, t.response, r, min_cosine) for t, c, r in kept]
    return batch, [piece_features(c) for c in batch], targets, min_cosine


def segment_scores(batch: Sequence[Candidates], scores: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                   budget, threshold: float | None) -> dict:
    """How the segments chosen from ``scores`` meet the labels: ``used_in_segment`` (contexts
    with a used candidate whose segment holds one), ``abstain_share`` and ``empty_share``."""
    hits, labelled, abstained, empty = 0, 0, 0, 0
    for c, s, t in zip(batch, scores, targets):
        pieces, abstain = choose(c, s, budget, threshold)
        abstained += abstain
        empty += not write_segment(pieces)
        if t.any():
            labelled += 1
            used = {c.pieces[i] for i in np.flatnonzero(t)}
            hits += any(p in used for p in pieces)
    n = max(len(batch), 1)
    return {"contexts": len(batch), "with_used_piece": labelled,
            "used_in_segment": round(hits / max(labelled, 1), 4),
            "abstain_share": round(abstained / n, 4), "empty_share": round(empty / n, 4)}


def train_selector(retriever, train: Sequence[Turn], val: Sequence[Turn], out: str | Path, *,
                   gold: Mapping[str, Sequence[Mapping]] | None = None, settings: TrainSettings | None = None,
                   data_sha256: str | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Label, fit, choose the threshold, save to ``out``; returns the summary (also in the manifest).

    ``retriever``: a :class:`retrieval.Retriever` with a piece selection (its
    ``pieces`` settings are the selector's candidates); ``gold``: dialogue_id -> used
    (name, attrname, attrvalue) triples, or None for pseudo-labels from the responses.
    """
    settings = settings or TrainSettings()
    if Path(out).exists() and not overwrite:  # before minutes of labelling and fitting
        raise OutputExistsError(f"{out} already exists (pass overwrite=True / --overwrite)")
    if retriever.candidates is None:
        raise UsageError("train_selector needs a retriever with a piece selection (selection 'dense')")
    if not train:
        raise UsageError("the training split has no (context, response) pairs")
    if not val:
        raise UsageError("the validation split has no (context, response) pairs (it chooses the threshold)")
    start = time.perf_counter()
    retriever.prepare_background([t.context for t in train], progress=progress)
    tr, tr_features, tr_targets, min_cosine = _labelled(retriever, train, gold, progress, "select: label train")
    va, va_features, va_targets, _ = _labelled(retriever, val, gold, progress, "select: label val", min_cosine)
    if not tr:
        raise UsageError("no training context has candidates (every context is blank?)")
    counts = Counter(label_key(p) for c in tr for p in c.pieces)
    names = [name for name, _ in counts.most_common(settings.max_labels) if name != HEAD_LABEL]
    vocab = {name: i for i, name in enumerate([HEAD_LABEL, *names, OTHER_LABEL])}
    grams = gram_vocabulary(tr, settings.max_grams)
    train_x = stack_examples(tr, tr_features, vocab, tr_targets, grams)
    val_x = stack_examples(va, va_features, vocab, va_targets, grams)
    labelled_at = time.perf_counter()
    model, record = train_model(train_x, val_x, vocab, settings)
    val_scores = predict(model, val_x)
    budget = retriever.budget
    # a segment does not depend on the threshold (only whether it is written): hit = it holds a used piece
    hits = [any(p in {c.pieces[i] for i in np.flatnonzero(t)} for p in choose(c, s, budget, None)[0])
            for c, s, t in zip(va, val_scores, va_targets)]
    threshold, decided = choose_threshold(val_scores, va_targets, hits, settings.abstain_credit, settings.abstain_rule)
    validation = {
        "split": "val", **decided,
        "at_threshold": segment_scores(va, val_scores, va_targets, budget, threshold),
        "no_abstain": segment_scores(va, val_scores, va_targets, budget, None),
        "dense": segment_scores(va, retriever.scorer.score(va), va_targets, budget, None),
    }
    summary = {
        "built_for": built_for(retriever),
        "data_sha256": data_sha256,
        "labels_from": "gold" if gold is not None else (
            "pseudo: pieces whose content the response adds, and the piece closest to the response where "
            f"the cosine reaches {min_cosine:.4f} (the closest {PSEUDO_CLOSEST_SHARE:.0%} of training contexts)"),
        "train": {"contexts": len(tr), "pieces": len(train_x.targets),
                  "contexts_with_label": round(float(np.mean([t.any() for t in tr_targets])), 4),
                  "positive_share": round(float(train_x.targets.mean()), 5)},
        "hub_background": retriever.selection_settings["hub_background"],
        "budget": None if budget is None else budget.as_dict(),
        "training": {**vars(settings), **record},
        "validation": validation,
        "seconds": {"label": round(labelled_at - start, 1), "fit": round(time.perf_counter() - labelled_at, 1)},
    }
    config: SelectionConfig = retriever.scorer.config
    save_selector(out, model, vocab, grams, config, threshold, summary, overwrite=overwrite)
    summary["threshold"] = threshold
    summary["out"] = str(out)
    return summary
