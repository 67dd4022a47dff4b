"""Piece-level recall on KdConv: is a piece the response used ranked high, and in the segment?

``tiktalk index eval --index INDEX --kdconv DIR`` (an index over the KdConv KB, e.g. from
``kg convert kb_travel.json``) scores every knowledge-grounded utterance of a KdConv split:
its candidates (:class:`retrieval.selection.CandidateBuilder`), the pieces its gold attrs name
(:func:`retrieval.selector.gold_piece_labels`), and per strategy (``dense``; ``learned`` with a
selector) recall@k of a used piece, MRR, and the share whose segment under the budget holds
one. ``candidates`` is the ceiling: a used piece among the candidates at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrieval.selection import choose
from retrieval.selector import gold_piece_labels

KS = (1, 5, 10)


def kdconv_turns(data_dir: str | Path, split: str = "test",
                 max_dialogues: int | None = None) -> list[tuple[list[str], str, list[dict]]]:
    """(context, response, attrs) of every utterance of a raw KdConv split with gold attrs."""
    dialogues = json.loads((Path(data_dir) / f"{split}.json").read_text(encoding="utf-8"))
    out = []
    for dialogue in dialogues[:max_dialogues]:
        turns = [m["message"] for m in dialogue["messages"]]
        for j, message in enumerate(dialogue["messages"]):
            if j > 0 and message.get("attrs"):
                out.append((turns[:j], turns[j], message["attrs"]))
    return out


def rank_metrics(scores: Sequence[np.ndarray], targets: Sequence[np.ndarray], ks: Sequence[int] = KS) -> dict:
    """recall@k (a target among the k best) and MRR over contexts with a target among the candidates."""
    ranks = []
    for s, t in zip(scores, targets):
        if t.any():
            order = np.argsort(-s, kind="stable")
            ranks.append(int(np.flatnonzero(t[order])[0]) + 1)
    r = np.asarray(ranks)
    n = max(len(r), 1)
    return {**{f"recall@{k}": round(float((r <= k).sum()) / n, 4) for k in ks},
            "mrr": round(float((1.0 / r).sum()) / n, 4) if len(r) else 0.0, "ranked": len(r)}


def kdconv_piece_recall(retriever, data_dir: str | Path, *, split: str = "test", scorers: dict | None = None,
                        max_dialogues: int | None = None, ks: Sequence[int] = KS, progress: bool = False) -> dict:
    """Piece-level recall of ``retriever``'s candidates under each of ``scorers`` (name -> a
    scorer with ``score`` and ``abstains``; default: the retriever's own); ``progress``:
    bars (with ETA) over the background's encoding and the contexts' candidates."""
    from tqdm.auto import tqdm

    cases = kdconv_turns(data_dir, split, max_dialogues)
    contexts = [c for c, _, _ in cases]
    retriever.prepare_background(contexts, progress=progress)
    batch, targets = [], []
    bar = tqdm(total=len(contexts), desc="KdConv pieces: candidates", unit="context", disable=not progress)
    for start, built in retriever.candidate_chunks(contexts):
        bar.update(len(built))
        for (_, response, attrs), c in zip(cases[start : start + len(built)], built):
            if c is not None:
                batch.append(c)
                targets.append(gold_piece_labels(c, attrs, response))
    bar.close()
    out = {"data": str(data_dir), "split": split, "utterances": len(cases), "scored": len(batch),
           "candidates": round(float(np.mean([t.any() for t in targets])) if targets else 0.0, 4),
           "strategies": {}}
    for name, scorer in (scorers or {retriever.scorer.name: retriever.scorer}).items():
        scores = scorer.score(batch)
        in_segment = abstained = 0
        for c, s, t, a in zip(batch, scores, targets, scorer.abstains(batch, scores)):
            pieces, abstain = choose(c, s, retriever.budget, bool(a))
            abstained += abstain
            used = {c.pieces[i] for i in np.flatnonzero(t)}
            in_segment += any(p in used for p in pieces)
        n = max(len(batch), 1)
        out["strategies"][name] = {**rank_metrics(scores, targets, ks), "in_segment": round(in_segment / n, 4),
                                   "abstain_share": round(abstained / n, 4)}
    return out
