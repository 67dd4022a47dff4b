"""Hubs: heads that are near everything and so win everything, measured and corrected.

A background of real chit-chat contexts (LCCC, or a dataset's own dialogues) stands in
for the queries a retriever will see. Two measures of hubness over it:

- ``hub_share``: the largest share of background contexts any one head wins at top-1;
- ``k_occurrence_skew``: the skewness of N_k(h), the number of contexts that have head h
  among their top k (Radovanovic et al. 2010); 0 for a symmetric spread, large and
  positive when a few heads are in everyone's top k.

The correction is CSLS-style (Lample et al. 2018, "Word translation without parallel
data"): a head's score is its cosine minus ``weight`` x its *penalty*, the mean similarity
of the head to its ``k`` nearest background contexts. CSLS proper, ``2 cos - r_query -
r_head``, ranks a query's heads as ``cos - r_head / 2`` (``r_query`` is the same for every
head), i.e. weight 0.5; the default weighs it a little more (below). Penalties are computed once at ``index build --background`` time
and stored in the index (:mod:`retrieval.index`); :func:`retrieval.search.search_penalized`
applies them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrieval.query import QueryConfig, build_queries
from retrieval.search import build_index, check_vectors, search
from tiktalk.errors import FormatError, MissingInputError, UsageError

# Chosen on the dev parts of both checks (README "Hub correction"), with the default encoder
# and passage views and LCCC's train contexts as background: among the settings whose LCCC
# held-out hub share stayed <= 2%, the best paraphrase-dev recall@5. Weight 0.7, k 100: .615,
# KdConv-dev .268, hub share 1.7% / 1.6% (sample KG / C3KG heads). Weight 0.5, k 50 (CSLS
# proper, the default before passage views) also gave .615 but let an emotion node win 2.4%
# of the contexts; k 200 at 0.7 gave .615 / .266 / 2.0%; weight 0.8 cost the paraphrase check.
DEFAULT_HUB_K = 100
DEFAULT_HUB_WEIGHT = 0.7


@dataclass(frozen=True)
class Background:
    """Background contexts (oldest turn first) and where they came from."""

    contexts: list[list[str]]
    source: str
    splits: tuple[str, ...] | None  # None: the whole source (it has no splits)

    def queries(self, config: QueryConfig | None = None) -> list[str]:
        """The distinct query texts of the contexts, in first-seen order (a repeated context
        would pull its neighbours' penalties twice)."""
        config = config or QueryConfig()
        seen: dict[str, None] = {}
        for context in self.contexts:
            for q in build_queries(context, None, config):
                if q.strip():
                    seen.setdefault(q, None)
        return list(seen)

    def describe(self) -> dict:
        return {"source": self.source, "splits": None if self.splits is None else list(self.splits),
                "contexts": len(self.contexts)}


def read_background(source: str | Path, splits: Sequence[str] | None = None) -> Background:
    """Contexts of ``source``: LCCC's JSON or a dataset directory or ``sample`` (every prefix
    of every conversation: each dialogue's context, and its context followed by its response,
    since that is the context the next reply sees), or a JSONL of ``{"context": [turns]}``
    (annotate's input works too; no splits). ``splits`` (train/val/test) keeps only those."""
    from tiktalk.dataset import SPLITS, load_dataset
    from tiktalk.importers.lccc import load_lccc

    if splits is not None:
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise UsageError(f"background splits {unknown} are not among {list(SPLITS)}")
    path = Path(source)
    if str(source) != "sample" and not path.exists():
        raise MissingInputError(f"background {source} does not exist (LCCC JSON, a dataset directory, "
                                "'sample', or a JSONL of contexts)")
    if path.is_file() and path.suffix == ".jsonl":
        if splits is not None:
            raise UsageError(f"background {path} is a JSONL of contexts without splits; drop the splits")
        return Background(_jsonl_contexts(path), str(source), None)
    dataset = load_lccc(path, expand_turns=True) if path.is_file() else load_dataset(source)
    dialogues = dataset.dialogues
    if splits is not None:
        dialogues = dialogues.filter(dialogues["split"].is_in(list(splits)))
    contexts = [c for ctx, response in zip(dialogues["context"].to_list(), dialogues["response"].to_list())
                for c in (ctx, [*ctx, response])]
    if not contexts:
        raise UsageError(f"background {source} has no contexts{'' if splits is None else f' in splits {list(splits)}'}")
    return Background(contexts, str(source), None if splits is None else tuple(splits))


def _jsonl_contexts(path: Path) -> list[list[str]]:
    """The ``context`` (a list of strings) of every line; other fields are ignored."""
    from tiktalk.dataset import (
        read_jsonl_rows,  # the one JSONL reader: bad JSON names file and line
    )

    contexts = []
    for line_no, row in read_jsonl_rows(path):
        context = row.get("context") if isinstance(row, dict) else None
        if not isinstance(context, list) or not all(isinstance(t, str) for t in context):
            raise FormatError(f"{path}:{line_no}: field 'context' must be a list of strings (value {context!r})")
        contexts.append(context)
    return contexts


def hub_penalty(heads: np.ndarray, background: np.ndarray, k: int = DEFAULT_HUB_K) -> np.ndarray:
    """Mean inner product of each head with its ``k`` nearest background vectors.

    heads (n, d), background (m, d), unit rows -> (n,) float32. Exact (FAISS Flat); with
    fewer than ``k`` background vectors, the mean over all of them.
    """
    heads, background = check_vectors(heads, what="heads"), check_vectors(background, what="background")
    if heads.shape[1] != background.shape[1]:
        raise UsageError(f"heads have dimension {heads.shape[1]}, the background {background.shape[1]}")
    if background.shape[0] == 0:
        raise UsageError("the background has no vectors")
    if k < 1:
        raise UsageError(f"k ({k}) must be at least 1")
    kk = min(k, background.shape[0])
    scores, _ = search(build_index(background, "Flat", use_gpu=False), heads, kk)
    return scores.astype(np.float64).mean(axis=1).astype(np.float32)


def _skewness(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return 0.0 if sd == 0 else float(np.mean((x - x.mean()) ** 3) / sd**3)


@dataclass(frozen=True)
class Hubness:
    """How hub-dominated the top-k lists of a set of queries are (see the module doc)."""

    queries: int
    heads: int
    k: int
    hub_share: float  # largest share of queries one head wins at top-1
    k_occurrence_skew: float  # skewness of N_k over all heads
    top_hubs: list[tuple[int, int]]  # (row, top-1 wins), most wins first, at most 5

    def as_dict(self, texts: Sequence[str] | None = None) -> dict:
        out = asdict(self)
        out["hub_share"], out["k_occurrence_skew"] = round(self.hub_share, 4), round(self.k_occurrence_skew, 3)
        out["top_hubs"] = [{"row": r, "wins": w, **({"text": texts[r]} if texts is not None else {})}
                           for r, w in self.top_hubs]
        return out


def hubness(ids: np.ndarray, n_heads: int) -> Hubness:
    """Hubness of ranked ids (queries, k) over ``n_heads`` heads: column 0 is each query's
    top-1, all k columns count toward N_k. ``-1`` (empty slots) is ignored."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise UsageError(f"ids must be (queries, k) with k >= 1, got shape {ids.shape}")
    if ids.shape[0] == 0:
        raise UsageError("hubness needs at least one query")
    top1 = ids[:, 0][ids[:, 0] >= 0]
    wins = np.bincount(top1, minlength=n_heads)
    occurrences = np.bincount(ids[ids >= 0].ravel(), minlength=n_heads)
    order = np.lexsort((np.arange(n_heads), -wins))[:5]
    return Hubness(queries=int(ids.shape[0]), heads=n_heads, k=int(ids.shape[1]),
                   hub_share=float(wins.max() / ids.shape[0]), k_occurrence_skew=_skewness(occurrences),
                   top_hubs=[(int(r), int(wins[r])) for r in order if wins[r] > 0])
