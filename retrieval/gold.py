"""Gold knowledge: a knowledge cache from the KB triples each response really used.

KdConv names, for every knowledge-grounded utterance, the triples (``name``, ``attrname``,
``attrvalue``) its speaker used; ``tiktalk data import --from kdconv`` keeps them in the
dataset's ``gold_attrs.jsonl``. Here they become a knowledge cache in the schema and through
the writer of :mod:`retrieval.cache`, linearised exactly as retrieved KB knowledge is
(:func:`kg.linearize`: ``entity，attribute：value`` pieces, entities in the order the
response used them, cut to a model's budget). A response that used no triple gets an empty
segment (its row is kept, so every dialogue has a row). ``heads`` / ``head_ids`` are the
entity names, ``families`` the flow family an entity starts (``concept``, as in an index);
``query`` and ``scores`` are null: nothing was searched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

import kg
from kg.schema import FLOW_START_KINDS, NodeKind
from retrieval.cache import KNOWLEDGE_CACHE_SCHEMA, write_knowledge_cache
from tiktalk.errors import FormatError, OutputExistsError
from tiktalk.types import KnowledgeBudget

GOLD_FIELDS = ("name", "attrname", "attrvalue")
ENTITY_FAMILY = FLOW_START_KINDS["entity"][1]


def gold_items(attrs: Sequence[Mapping], where: str = "gold attrs") -> list[kg.HeadFlows]:
    """One response's attrs -> one :class:`kg.HeadFlows` per entity (first use first), its
    attributes in first-use order, repeated values once. ``where`` names the row in errors."""
    items: dict[str, kg.HeadFlows] = {}
    for i, attr in enumerate(attrs):
        for name in GOLD_FIELDS:
            value = attr.get(name) if isinstance(attr, Mapping) else None
            if not isinstance(value, str) or not value.strip():
                raise FormatError(f"{where}: attrs[{i}] field {name!r} must be a non-empty string (value {value!r})")
        entity, attribute, value = (attr[name].strip() for name in GOLD_FIELDS)
        item = items.setdefault(entity, kg.HeadFlows(head=entity, kind=NodeKind.ENTITY.value))
        values = item.attributes.setdefault(attribute, [])
        if all(t.text != value for t in values):
            values.append(kg.Tail(value, 1))
    return list(items.values())


def gold_knowledge_frame(gold: Mapping[str, Sequence[Mapping]], budget: KnowledgeBudget | None,
                         config: kg.LinearizeConfig | None = None) -> pl.DataFrame:
    """dialogue_id -> attrs (``read_gold_attrs``) -> a frame in the knowledge cache schema."""
    rows: dict[str, list] = {name: [] for name in KNOWLEDGE_CACHE_SCHEMA}
    for dialogue_id, attrs in gold.items():
        items = gold_items(attrs, where=f"dialogue {dialogue_id!r}")
        rows["dialogue_id"].append(dialogue_id)
        rows["query"].append(None)
        rows["heads"].append([item.head for item in items])
        rows["head_ids"].append([item.head for item in items])
        rows["families"].append([ENTITY_FAMILY] * len(items))
        rows["scores"].append(None)
        rows["knowledge"].append(kg.linearize(items, config, budget).text)
    return pl.DataFrame(rows, schema=KNOWLEDGE_CACHE_SCHEMA)


def write_gold_knowledge(dataset: str | Path, out: str | Path, budget: KnowledgeBudget | None, *,
                         overwrite: bool = False) -> dict:
    """The gold knowledge cache of an imported KdConv dataset (its ``gold_attrs.jsonl``) at ``out``.

    Returns counts: rows, rows with knowledge, and rows whose gold knowledge the budget cut
    (whole trailing pieces dropped; a long ``Information`` value is the usual victim).
    """
    from tiktalk.dataset import read_gold_attrs, resolve_path
    from tiktalk.io import sha256_file

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists (pass overwrite=True / --overwrite)")
    gold = read_gold_attrs(dataset)
    frame = gold_knowledge_frame(gold, budget)
    uncut = gold_knowledge_frame(gold, None)["knowledge"]
    root = resolve_path(dataset)
    write_knowledge_cache(frame, out, {
        "budget": None if budget is None else budget.as_dict(),
        "source": "gold attrs", "dataset": {"path": str(dataset), "manifest_sha256": sha256_file(root / "manifest.json")},
    })
    return {"out": str(out), "rows": frame.height, "with_knowledge": int((frame["knowledge"] != "").sum()),
            "cut_by_budget": int((frame["knowledge"] != uncut).sum()),
            "budget": None if budget is None else budget.as_dict()}


def gold_value_use(segments: Mapping[str, str], gold: Mapping[str, Sequence[Mapping]], ids: Sequence[str],
                   budget: KnowledgeBudget | None = None) -> dict:
    """How much of what the responses used is in their knowledge segments (issue 20's measure).

    Over the dialogues ``ids`` (those with gold attrs count; others are skipped):

    - ``gold_value_in_segment``: share whose segment holds a value they used, whole (as
      linearised: separators become spaces);
    - ``..._fits``: the same over the responses with a used value that fits ``budget`` on its
      own (``entity，attribute：value``), the ones a segment can hold whole;
    - ``gold_part_in_segment``: share whose segment holds a used value or a part of one (a
      piece of 4+ characters inside a used value: a sentence of a long description);
    - ``empty_share``: share of ``ids`` whose segment is empty.
    """
    from kg.linearize import SEPARATORS, clean_piece, split_pieces

    whole = fits = fits_n = part = n = empty = 0
    for i in ids:
        segment = segments.get(i) or ""
        empty += not segment
        attrs = gold.get(i) or []
        if not attrs:
            continue
        n += 1
        values = [clean_piece(a["attrvalue"].strip()) for a in attrs]
        hit = any(v and v in segment for v in values)
        whole += hit
        if budget is not None:
            fitting = [v for a, v in zip(attrs, values)
                       if budget.count_tokens(kg.linearize(gold_items([a])).text) <= budget.max_tokens]
            if fitting:
                fits_n += 1
                fits += any(v in segment for v in fitting)
        # pieces after a head's first (a head's own name is no part of a value it is named in)
        pieces = [p[1:].strip() for p in split_pieces(segment) if p.startswith(SEPARATORS[0])]
        part += hit or any(len(p) >= 4 and any(p in v for v in values) for p in pieces)
    out = {"dialogues": len(ids), "with_gold": n, "gold_value_in_segment": round(whole / max(n, 1), 4),
           "gold_part_in_segment": round(part / max(n, 1), 4), "empty_share": round(empty / max(len(ids), 1), 4)}
    if budget is not None:
        out.update({"with_fitting_value": fits_n, "gold_value_in_segment_fits": round(fits / max(fits_n, 1), 4)})
    return out
