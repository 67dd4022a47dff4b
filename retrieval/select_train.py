"""``tiktalk select train``: fit a :mod:`retrieval.selector` on a dataset's (context, response) pairs.

The retriever's index, KG and encoder define the candidates exactly as annotation will
(:class:`retrieval.selection.CandidateBuilder`, the training contexts as hub background when
the index stores none); the training split's responses label them, the validation split
picks the best step and is reported in the selector's manifest. The abstention is learned
from the val split and, for the gate (``abstain_rule="context"``), also from the training
split's cross-fitted probabilities (each fold scored by a model trained on the others, folds
by conversation). Nothing here reads the test split.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.pieces import write_segment
from retrieval.selection import Candidates, SelectionConfig, below_threshold, choose, piece_features
from retrieval.selector import (
    HEAD_LABEL,
    OTHER_LABEL,
    TrainSettings,
    built_for,
    choose_threshold,
    decision_worth,
    fit_gate,
    gold_piece_labels,
    gram_vocabulary,
    hit_share,
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
    conversation: str | None = None  # the dialogue the turn is from (cross-fitting folds); None: its own


PSEUDO_CLOSEST_SHARE = 0.1  # pseudo-labels: the training contexts whose response is closest to a piece


def _labelled(retriever, turns: Sequence[Turn], gold: Mapping[str, Sequence[Mapping]] | None, progress: bool,
              desc: str, min_cosine: float | None = None,
              ) -> tuple[list[Candidates], list[np.ndarray], list[np.ndarray], float | None, list[Turn]]:
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
    return batch, [piece_features(c) for c in batch], targets, min_cosine, [t for t, _, _ in kept]


def segment_scores(batch: Sequence[Candidates], scores: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                   budget, abstains: Sequence[bool] | None) -> dict:
    """How the segments chosen from ``scores`` meet the labels: ``used_in_segment`` (contexts
    with a used candidate whose segment holds one), ``abstain_share`` and ``empty_share``
    (``abstains``: per context; None: never)."""
    hits, labelled, abstained, empty = 0, 0, 0, 0
    abstains = np.zeros(len(batch), dtype=bool) if abstains is None else abstains
    for c, s, t, a in zip(batch, scores, targets, abstains):
        pieces, abstain = choose(c, s, budget, bool(a))
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


def segment_hits(batch: Sequence[Candidates], scores: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                 budget) -> list[bool]:
    """Per context: does its segment (kept) hold a used piece? A segment does not depend on the
    abstention, only whether it is written."""
    return [any(p in {c.pieces[i] for i in np.flatnonzero(t)} for p in choose(c, s, budget)[0])
            for c, s, t in zip(batch, scores, targets)]


def conversation_folds(turns: Sequence[Turn], folds: int, seed: int) -> np.ndarray:
    """(n,) fold of each turn: whole conversations to one fold (a seeded permutation), so no
    fold's model has read another turn of a conversation it scores."""
    names = sorted({t.conversation or t.dialogue_id for t in turns})
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[j]: rank % folds for rank, j in enumerate(order)}
    return np.array([fold_of[t.conversation or t.dialogue_id] for t in turns], dtype=np.int64)


def learn_gate(tr, tr_features, tr_targets, tr_turns, vocab, grams, val_x, va, val_scores, va_targets, val_hits,
               budget, settings: TrainSettings, progress: bool):
    """The :class:`retrieval.selector.AbstainGate` (``abstain_rule="context"``): fitted on the
    training split's cross-fitted probabilities (``gate_folds`` models, each trained on the other
    folds, best step by val loss as the selector's) and the val split's. Returns (gate, record);
    gate None (the record says why) when a fold or a class is missing. The record's
    ``cross_validated`` scores each fold with a gate fitted without it."""
    from tqdm.auto import tqdm

    folds = conversation_folds(tr_turns, settings.gate_folds, settings.seed)
    if len(set(folds.tolist())) < settings.gate_folds:
        return None, {"why_not": f"{len(set(folds.tolist()))} conversations in the training split, fewer than "
                                 f"gate_folds={settings.gate_folds}"}
    oof: list[np.ndarray | None] = [None] * len(tr)
    for k in tqdm(range(settings.gate_folds), desc="select: cross-fit the gate", unit="fold", disable=not progress):
        inside, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        part = stack_examples([tr[i] for i in inside], [tr_features[i] for i in inside], vocab,
                              [tr_targets[i] for i in inside], grams)
        if not part.targets.any():
            return None, {"why_not": f"fold {k}'s training part has no used piece"}
        fold_model, _ = train_model(part, val_x, vocab, settings)
        scored = predict(fold_model, stack_examples([tr[i] for i in held], [tr_features[i] for i in held], vocab,
                                                    grams=grams))
        for i, s in zip(held, scored):
            oof[i] = s
    tr_hits = segment_hits(tr, oof, tr_targets, budget)
    tr_none = [not t.any() for t in tr_targets]
    va_none = [not t.any() for t in va_targets]
    credit, n_grams, c = settings.abstain_credit, settings.gate_grams, settings.gate_c

    def fit(rows):
        rows = list(rows)
        return fit_gate([tr[i] for i in rows] + list(va), [oof[i] for i in rows] + list(val_scores),
                        [tr_hits[i] for i in rows] + list(val_hits), [tr_none[i] for i in rows] + va_none,
                        credit, n_grams, c)

    gate, why_not = fit(range(len(tr)))
    if gate is None:
        return None, {"why_not": why_not}
    cv = {"kept_holding_used": [], "abstained_none_used": [], "decided_right": [], "abstain_share": []}
    for k in range(settings.gate_folds):
        held = np.flatnonzero(folds == k)
        fold_gate, _ = fit(np.flatnonzero(folds != k))
        if fold_gate is None:
            continue
        for key, value in decision_worth(fold_gate.abstains([tr[i] for i in held], [oof[i] for i in held]),
                                         [tr_hits[i] for i in held], [tr_none[i] for i in held]).items():
            cv[key].append(value)
    cross_validated = {key: round(float(np.mean(v)), 4) for key, v in cv.items() if v}
    if cross_validated:
        cross_validated["worth"] = round(cross_validated["kept_holding_used"]
                                         + credit * cross_validated["abstained_none_used"], 4)
    val_worth = decision_worth(gate.abstains(va, val_scores), val_hits, va_none)
    record = {"rule": "context", "decided_right": round(val_worth["decided_right"], 4),
              "abstain_share": round(val_worth["abstain_share"], 4), "kept_hit": hit_share(val_hits, va_none),
              "gate": {"folds": settings.gate_folds, "train_contexts": len(tr), "val_contexts": len(va),
                       "grams": len(gate.grams), "cross_validated": cross_validated,
                       "val_note": "val is also among the gate's training rows: its figures are in-sample"}}
    return gate, record


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
    tr, tr_features, tr_targets, min_cosine, tr_turns = _labelled(retriever, train, gold, progress,
                                                                  "select: label train")
    va, va_features, va_targets, _, _ = _labelled(retriever, val, gold, progress, "select: label val", min_cosine)
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
    val_hits = segment_hits(va, val_scores, va_targets, budget)
    threshold, gate, decided = None, None, {}
    fitted_at = time.perf_counter()
    if settings.abstain_rule == "context":
        gate, decided = learn_gate(tr, tr_features, tr_targets, tr_turns, vocab, grams, val_x, va, val_scores,
                                   va_targets, val_hits, budget, settings, progress)
    if gate is None:
        rule = settings.abstain_rule if settings.abstain_rule != "context" else "fitted"
        threshold, picked = choose_threshold(val_scores, va_targets, val_hits, settings.abstain_credit, rule)
        if decided:  # the gate could not be learned: why, beside the threshold used instead
            picked["rule"] = f"{picked['rule']} (fallback: {decided['why_not']})"
        decided = picked
    val_abstains = gate.abstains(va, val_scores) if gate is not None else below_threshold(val_scores, threshold)
    validation = {
        "split": "val", **decided,
        "at_threshold": segment_scores(va, val_scores, va_targets, budget, val_abstains),
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
        "seconds": {"label": round(labelled_at - start, 1), "fit": round(fitted_at - labelled_at, 1),
                    "abstention": round(time.perf_counter() - fitted_at, 1)},
    }
    config: SelectionConfig = retriever.scorer.config
    save_selector(out, model, vocab, grams, config, threshold, summary, gate=gate, overwrite=overwrite)
    summary["threshold"] = threshold
    summary["out"] = str(out)
    return summary
