"""Retrieval quality: the KdConv knowledge-grounding benchmark and the paraphrase check.

- KdConv travel (thu-coai/KdConv, ``../shared/data/kdconv_travel``): every KB triple is a
  passage ``entity，attribute：value``; each utterance that carries gold ``attrs`` is a
  query built from the turns before it; recall@k = share of those utterances with a gold
  triple in the top k. Real data nobody here wrote: measured, never tuned to.
- Paraphrase check (``retrieval/data/paraphrase_check.jsonl``, ours, see its README):
  colloquial comment-style contexts that each paraphrase one KG node (``kind`` event,
  phrase or emotion) of the sample KG or of the real C3KG head files (``source``), split
  into ``dev`` and ``test``. Each row is scored among the nodes of its own source.

Both take a list of :class:`QueryConfig` so query construction is measured beside the
encoder. A context's hits are merged by the retriever's own :func:`merge_hits` (per-turn
queries, heads sharing a text). Metrics: recall@k and MRR (mean reciprocal rank of the
first gold within the top ``max(ks)``, 0 beyond). Embeddings may be cached on disk
(``cache_dir``), keyed by encoder fingerprint and text, because encoding the 11k KdConv
passages is the slow part. The command is ``tiktalk index eval``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrieval.encoders import Encoder, Kind
from retrieval.index import KINDS, head_table, parse_kinds
from retrieval.query import DEFAULT_VARIANT, QUERY_VARIANTS, QueryConfig, build_queries
from retrieval.retriever import merge_hits
from retrieval.search import build_index, search
from tiktalk.errors import FormatError

PARAPHRASE_FILE = Path(__file__).resolve().parent / "data" / "paraphrase_check.jsonl"
KS = (1, 5, 10)

PARAPHRASE_FIELDS = {"id": str, "context": list, "gold": str, "kind": str, "source": str, "split": str}
PARAPHRASE_KINDS = ("event", "phrase", "emotion")  # kinds of retrieval.index.KINDS a gold may have
PARAPHRASE_SOURCES = ("sample", "c3kg")
PARAPHRASE_SPLITS = ("dev", "test")


@dataclass
class QualityCase:
    """One query: context turns, optional title, the gold passage rows, and a group label
    (the paraphrase check's split)."""

    context: list[str]
    title: str | None
    gold: set[int]
    group: str = "all"


def encode_cached(encoder: Encoder, texts: Sequence[str], kind: Kind, cache_dir: Path | None = None,
                  batch_size: int = 256) -> np.ndarray:
    """encoder.encode with an on-disk cache per (fingerprint, kind, texts); (n, dim) float32."""
    texts = list(texts)
    if cache_dir is None:
        return encoder.encode(texts, kind=kind)
    digest = hashlib.sha256(json.dumps([encoder.fingerprint, kind, texts], ensure_ascii=False).encode()).hexdigest()
    path = Path(cache_dir) / f"{encoder.name.replace('/', '_').replace(':', '_')}-{kind}-{digest[:16]}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    from tqdm.auto import tqdm

    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for start in tqdm(range(0, len(texts), batch_size), desc=f"encode {kind} ({encoder.name})", leave=False):
        out[start : start + batch_size] = encoder.encode(texts[start : start + batch_size], kind=kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    from tiktalk.io import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, out, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return out


def metrics(ranks: Sequence[int | None], ks: Sequence[int] = KS) -> dict[str, float]:
    """Gold ranks (1-based, None = not in the top ``max(ks)``) -> recall@k, MRR, query count."""
    n = max(1, len(ranks))
    out = {f"recall@{k}": round(sum(r is not None and r <= k for r in ranks) / n, 4) for k in ks}
    out["mrr"] = round(sum(1.0 / r for r in ranks if r is not None) / n, 4)
    out["queries"] = len(ranks)
    return out


def gold_ranks(encoder: Encoder, passages: Sequence[str], cases: Sequence[QualityCase], config: QueryConfig,
               ks: Sequence[int] = KS, cache_dir: Path | None = None, index=None,
               merge_texts: bool = False) -> list[int | None]:
    """Rank of each case's first gold among the merged hits (None beyond ``max(ks)``).

    ``merge_texts``: passages sharing a text count once, as the retriever merges heads.
    """
    index = index if index is not None else build_index(encode_cached(encoder, passages, "passage", cache_dir), "Flat")
    kmax = max(ks)
    queries = [build_queries(c.context, c.title, config) for c in cases]
    flat = sorted({q for qs in queries for q in qs})
    row_of = {q: i for i, q in enumerate(flat)}
    # fetch extra so merging texts still leaves kmax distinct hits
    scores, ids = search(index, encode_cached(encoder, flat, "query", cache_dir), min(len(passages), 2 * kmax))
    keys = list(passages) if merge_texts else None
    ranks: list[int | None] = []
    for case, qs in zip(cases, queries):
        rows = [row_of[q] for q in qs]
        hits = merge_hits(scores[rows], ids[rows], keys)[:kmax]
        gold_keys = {keys[g] for g in case.gold} if keys else case.gold
        ranks.append(next((r for r, (i, _) in enumerate(hits, start=1)
                           if (keys[i] if keys else i) in gold_keys), None))
    return ranks


def recall_table(encoder: Encoder, passages: Sequence[str], cases: Sequence[QualityCase],
                 variants: dict[str, QueryConfig] | None = None, ks: Sequence[int] = KS,
                 cache_dir: Path | None = None, merge_texts: bool = False) -> dict[str, dict[str, dict[str, float]]]:
    """variant -> group -> metrics (groups: each case's ``group``, and ``all``)."""
    variants = variants or QUERY_VARIANTS
    index = build_index(encode_cached(encoder, passages, "passage", cache_dir), "Flat")
    groups = sorted({c.group for c in cases})
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, config in variants.items():
        ranks = gold_ranks(encoder, passages, cases, config, ks, cache_dir, index, merge_texts)
        table[name] = {g: metrics([r for r, c in zip(ranks, cases) if c.group == g], ks) for g in groups}
        if groups != ["all"]:
            table[name]["all"] = metrics(ranks, ks)
    return table


# -- KdConv
def kdconv_triple_text(entity: str, attribute: str, value: str) -> str:
    return f"{entity}，{attribute}：{value}"


def load_kdconv(data_dir: str | Path, max_dialogues: int | None = None) -> tuple[list[str], list[QualityCase]]:
    """(passages, cases) of the KdConv travel test set; the dialogue's topic entity is the title."""
    data_dir = Path(data_dir)
    kb = json.loads((data_dir / "kb_travel.json").read_text(encoding="utf-8"))
    triples = sorted({tuple(t) for rows in kb.values() for t in rows})
    row_of = {t: i for i, t in enumerate(triples)}
    passages = [kdconv_triple_text(*t) for t in triples]
    dialogues = json.loads((data_dir / "test.json").read_text(encoding="utf-8"))
    cases: list[QualityCase] = []
    for n, dialogue in enumerate(dialogues):
        if max_dialogues is not None and n >= max_dialogues:
            break
        turns = [m["message"] for m in dialogue["messages"]]
        for j, message in enumerate(dialogue["messages"]):
            attrs = message.get("attrs") or []
            gold = {row_of[t] for a in attrs if (t := (a["name"], a["attrname"], a["attrvalue"])) in row_of}
            if gold and j > 0:
                cases.append(QualityCase(context=turns[:j], title=dialogue.get("name"), gold=gold))
    return passages, cases


def kdconv_recall(encoder: Encoder, data_dir: str | Path, variants: dict[str, QueryConfig] | None = None,
                  cache_dir: Path | None = None, max_dialogues: int | None = None) -> dict:
    passages, cases = load_kdconv(data_dir, max_dialogues)
    return {"passages": len(passages), "table": recall_table(encoder, passages, cases, variants, cache_dir=cache_dir)}


# -- paraphrase check
def load_paraphrase_check(path: str | Path = PARAPHRASE_FILE) -> list[dict]:
    """The rows of the paraphrase check; a missing or ill-typed field names file, line and value."""
    from tiktalk.dataset import read_jsonl_rows  # the one JSONL reader

    allowed = {"kind": PARAPHRASE_KINDS, "source": PARAPHRASE_SOURCES, "split": PARAPHRASE_SPLITS}
    rows = []
    for line_no, row in read_jsonl_rows(path):
        if not isinstance(row, dict):
            raise FormatError(f"{path}:{line_no}: expected an object, got {type(row).__name__}")
        for key, kind in PARAPHRASE_FIELDS.items():
            if not isinstance(row.get(key), kind):
                raise FormatError(f"{path}:{line_no}: field {key!r} must be a {kind.__name__} (value {row.get(key)!r})")
        for key, values in allowed.items():
            if row[key] not in values:
                raise FormatError(f"{path}:{line_no}: field {key!r} is {row[key]!r}, not one of {list(values)}")
        rows.append(row)
    return rows


def paraphrase_recall(encoder: Encoder, graphs: dict[str, object | None], kinds: Sequence[str] | None = None,
                      variants: dict[str, QueryConfig] | None = None, path: str | Path = PARAPHRASE_FILE,
                      ks: Sequence[int] = KS, cache_dir: Path | None = None) -> dict:
    """Recall@k and MRR of the paraphrase check, per source and split.

    ``graphs``: source -> KG whose nodes that source's rows are scored among (``sample``:
    the sample KG; ``c3kg``: a KG of the real head files, ``kg.load_kg(dir)``); a source
    given None is skipped and says so. ``kinds`` (short names of ``retrieval.index.KINDS``,
    None = all) are the node kinds indexed; rows whose gold is of another kind are left
    out, and counted. A gold that is not a node of its source and kind is an error.
    """
    kinds = parse_kinds(kinds) or list(KINDS)
    variants = variants or {DEFAULT_VARIANT: QUERY_VARIANTS[DEFAULT_VARIANT]}
    rows = load_paraphrase_check(path)
    unknown = sorted(set(graphs) - set(PARAPHRASE_SOURCES))
    if unknown:
        raise FormatError(f"sources {unknown} are not paraphrase-check sources {list(PARAPHRASE_SOURCES)}")
    report: dict = {"file": str(path), "kinds": kinds, "variants": variants_as_dict(variants), "sources": {}}
    for source in PARAPHRASE_SOURCES:
        of_source = [r for r in rows if r["source"] == source]
        graph = graphs.get(source)
        if graph is None:
            report["sources"][source] = {"skipped": f"no KG given for source {source!r}", "rows": len(of_source)}
            continue
        scored = [r for r in of_source if r["kind"] in kinds]
        left_out = {k: sum(r["kind"] == k for r in of_source) for k in PARAPHRASE_KINDS if k not in kinds}
        heads = head_table(graph, kinds)
        texts, row_kinds = heads["text"].to_list(), heads["kind"].to_list()
        rows_of: dict[tuple[str, str], set[int]] = {}
        for i, (text, kind) in enumerate(zip(texts, row_kinds)):
            rows_of.setdefault((text, kind), set()).add(i)
        cases = []
        for r in scored:
            gold = rows_of.get((r["gold"], KINDS[r["kind"]][0]))
            if not gold:
                raise FormatError(f"{path}: row {r['id']}: gold {r['gold']!r} is not a {r['kind']} node of "
                                  f"the {source} KG")
            cases.append(QualityCase(r["context"], r.get("title"), gold, r["split"]))
        report["sources"][source] = {
            "passages": len(texts), "rows": len(scored), "left_out": {k: n for k, n in left_out.items() if n},
            "table": recall_table(encoder, texts, cases, variants, ks, cache_dir, merge_texts=True),
        }
    return report


def variants_as_dict(variants: dict[str, QueryConfig] | None = None) -> dict[str, dict]:
    return {k: asdict(v) for k, v in (variants or QUERY_VARIANTS).items()}


def plot_tables(results: dict, path: str | Path, metric: str = "recall@5") -> None:
    """One bar group per benchmark x encoder, one bar per query variant (PNG, Agg backend).

    ``results``: benchmark -> encoder -> {"table": :func:`recall_table` output}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(bench, enc, r["table"]) for bench, per_enc in results.items() for enc, r in per_enc.items()]
    if not groups:
        return
    variants = list(groups[0][2])
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4))
    width = 0.8 / len(variants)
    for j, v in enumerate(variants):
        heights = [g[2].get(v, {}).get("all", {}).get(metric, 0) for g in groups]  # every case, all groups
        ax.bar([i + j * width for i in range(len(groups))], heights, width, label=v)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels([f"{b}\n{e}" for b, e, _ in groups], fontsize=8)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

