"""Retrieval quality: the KdConv knowledge-grounding benchmark and the paraphrase check.

- KdConv travel (thu-coai/KdConv, ``../shared/data/kdconv_travel``): every KB triple is a
  passage ``entity，attribute：value``; each utterance that carries gold ``attrs`` is a
  query built from the turns before it; recall@k = share of those utterances with a gold
  triple in the top k. Real data nobody here wrote: measured, never tuned to.
- Paraphrase check (``retrieval/data/paraphrase_check.jsonl``, ours, see its README):
  colloquial comment-style contexts that each paraphrase one KG node (``kind`` event,
  phrase or emotion) of the sample KG or of the real C3KG head files (``source``), split
  into ``dev`` and ``test``. Each row is scored among the nodes of its own source, encoded
  from their passage views as ``index build`` encodes them (:mod:`retrieval.views`).

- Your own JSONL of ``{"context": [turns], "gold": head text or id}`` (:func:`user_recall`),
  scored among the heads of an index.

Both take a list of :class:`QueryConfig` so query construction is measured beside the
encoder. With a :class:`HubSetup` each passage set gets hub penalties from background
contexts (:mod:`retrieval.hubness`) and is ranked as the retriever ranks with the
correction on; the hubness of a held-out background (top-1 hub share, k-occurrence skew)
is reported plain and corrected. Per family: recall of the cases whose gold is of that flow
family. ``hub_share``: the largest share of a benchmark's own queries one passage wins. A context's hits are merged by the retriever's own :func:`merge_hits` (per-turn
queries, heads sharing a text). Metrics, computed by ``ir-measures`` (trec_eval's definitions)
over each case's merged top ``max(ks)`` and its gold set: recall@k (``Success@k``: a gold in the
top k), MRR (``RR@10``: the reciprocal rank of the first gold, 0 beyond), nDCG@10 and MAP
(``AP@10``: over the top 10 retrieved, every gold counted). :class:`TrecCollector` keeps the
same runs and qrels for TREC files (``index eval --run-file --qrels-file``). Embeddings may be cached on disk
(``cache_dir``; ``index eval`` caches by default, :func:`default_embedding_cache`), keyed by encoder
fingerprint, kind and texts, because encoding the 11k KdConv passages is the slow part; ``progress``
shows a bar with ETA over every encoding. The command is ``tiktalk index eval``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrieval.encoders import Encoder, EnsembleEncoder, Kind, ParallelEncoder, encode_batches
from retrieval.hubness import DEFAULT_HUB_K, DEFAULT_HUB_WEIGHT, Background, hub_penalty, hubness
from retrieval.index import KINDS, head_table, parse_kinds
from retrieval.query import DEFAULT_VARIANT, QUERY_VARIANTS, QueryConfig, build_queries
from retrieval.retriever import merge_hits
from retrieval.search import build_index, search, search_penalized
from retrieval.views import PassageViews
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
    family: str | None = None  # the gold's flow family, for per-family recall


@dataclass(frozen=True)
class HubSetup:
    """The hub correction as evaluated: penalties from ``fit`` contexts (k nearest), hubness
    measured on ``held_out`` contexts (None: on ``fit``, in sample)."""

    fit: Background
    k: int = DEFAULT_HUB_K
    held_out: Background | None = None
    weight: float = DEFAULT_HUB_WEIGHT

    def describe(self) -> dict:
        return {"fit": self.fit.describe(), "k": self.k, "weight": self.weight,
                "held_out": None if self.held_out is None else self.held_out.describe()}


def _hub_parts(encoder: Encoder, passages: np.ndarray, hub: HubSetup | None, cache_dir: Path | None,
               config: QueryConfig, texts: Sequence[str] | None = None, *,
               progress: bool = False) -> tuple[np.ndarray | None, dict | None]:
    """Penalties of ``passages`` (n, d) and the held-out background's hubness, plain and
    corrected (``texts`` name the top hubs)."""
    if hub is None:
        return None, None
    penalty = hub.weight * hub_penalty(passages, encode_cached(encoder, hub.fit.queries(config), "query", cache_dir,
                                                                     progress=progress), hub.k)
    measured = hub.held_out or hub.fit
    queries = encode_cached(encoder, measured.queries(config), "query", cache_dir, progress=progress)
    index = build_index(passages, "Flat", use_gpu=False)
    k = min(10, len(passages))
    report = {**hub.describe(), "in_sample": hub.held_out is None,
              "plain": hubness(search(index, queries, k)[1], len(passages)).as_dict(texts),
              "corrected": hubness(search_penalized(index, queries, k, penalty)[1], len(passages)).as_dict(texts)}
    return penalty, report


def default_embedding_cache() -> Path:
    """Where ``index eval`` caches embeddings unless told otherwise: ``embeddings`` under the
    per-user cache directory (:func:`tiktalk.io.user_cache_dir`: ``$TIKTALK_CACHE``, else
    ``$XDG_CACHE_HOME/tiktalk``, else ``~/.cache/tiktalk``)."""
    from tiktalk.io import user_cache_dir

    return user_cache_dir() / "embeddings"


def encode_cached(encoder: Encoder, texts: Sequence[str], kind: Kind, cache_dir: Path | None = None,
                  batch_size: int = 256, *, progress: bool = False) -> np.ndarray:
    """encoder.encode with an on-disk cache per (fingerprint, kind, texts); (n, dim) float32.

    An ensemble is cached member by member (in this process), so trying other weights or
    member sets re-encodes nothing. ``progress``: a bar (with ETA) over what is encoded; a
    cache hit encodes nothing and shows none."""
    texts = list(texts)
    if cache_dir is None:
        return encode_batches(encoder, texts, kind, batch_size=batch_size, progress=progress)
    ensemble = encoder.local if isinstance(encoder, ParallelEncoder) else encoder
    if isinstance(ensemble, EnsembleEncoder):
        return ensemble.combine([encode_cached(m, texts, kind, cache_dir, batch_size, progress=progress)
                                 for m in ensemble.members])
    digest = hashlib.sha256(json.dumps([encoder.fingerprint, kind, texts], ensure_ascii=False).encode()).hexdigest()
    path = Path(cache_dir) / f"{encoder.name.replace('/', '_').replace(':', '_')}-{kind}-{digest[:16]}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), encoder.dim) and cached.dtype == np.float32:
                return cached
        except (OSError, ValueError):  # a damaged cache file: encode again and replace it
            pass
    out = encode_batches(encoder, texts, kind, batch_size=batch_size, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    from tiktalk.io import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, out, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return out


class TrecCollector:
    """The ranked lists and gold sets an evaluation scored, as TREC run and qrels files.

    Query ids are ``<part>:<variant>:<n>`` (part: ``kdconv``, ``paraphrase-sample``, ``data``...),
    so one part's lines can be read back alone; document ids are passage rows (with
    ``merge_texts``, the first row of each text). Scores fall with the rank, so any TREC tool
    reads the same order."""

    def __init__(self) -> None:
        self.run: dict[str, dict[str, float]] = {}
        self.qrels: dict[str, dict[str, int]] = {}

    def add(self, qids: Sequence[str], run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> None:
        for qid in qids:
            self.run[qid] = run.get(qid, {})
            self.qrels[qid] = qrels[qid]

    def write(self, run_file: str | Path | None, qrels_file: str | Path | None, tag: str = "tiktalk") -> None:
        """``qid Q0 doc rank score tag`` / ``qid 0 doc relevance`` lines, each file atomically."""
        from tiktalk.io import atomic_write_text

        if run_file is not None:
            lines = [f"{qid} Q0 {doc} {rank} {score:g} {tag}"
                     for qid, docs in self.run.items()
                     for rank, (doc, score) in enumerate(sorted(docs.items(), key=lambda d: -d[1]), start=1)]
            atomic_write_text(run_file, "".join(line + "\n" for line in lines))
        if qrels_file is not None:
            lines = [f"{qid} 0 {doc} {rel}" for qid, docs in self.qrels.items() for doc, rel in docs.items()]
            atomic_write_text(qrels_file, "".join(line + "\n" for line in lines))


def _trec_lists(hits: list[list[int]], cases: Sequence[QualityCase], keys: list[str] | None, prefix: str
                ) -> tuple[list[str], dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    """(query ids, run, qrels) of ranked ``hits`` against the cases' gold rows (``keys``: rows
    sharing a text are one document, named by its first row)."""
    first_row: dict[str, int] = {}
    if keys is not None:
        for i, key in enumerate(keys):
            first_row.setdefault(key, i)
    doc = (lambda i: str(first_row[keys[i]])) if keys is not None else str
    qids = [f"{prefix}{n}" for n in range(len(cases))]
    run = {q: {doc(i): float(len(rows) - r) for r, i in enumerate(rows)} for q, rows in zip(qids, hits) if rows}
    qrels = {q: {doc(g): 1 for g in c.gold} for q, c in zip(qids, cases)}
    return qids, run, qrels


def _ir_measures(ks: Sequence[int]) -> dict[str, object]:
    """Our metric names -> ir-measures measures."""
    from ir_measures import AP, RR, Success, nDCG

    depth = max(ks)
    return {**{f"recall@{k}": Success @ k for k in ks}, "mrr": RR @ depth, "ndcg@10": nDCG @ 10, "map": AP @ depth}


def measured(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], qids: Sequence[str],
             ks: Sequence[int] = KS) -> dict[str, dict[str, float]]:
    """qid -> metric -> value (:func:`_ir_measures`' names) by ``ir-measures``; a query with
    nothing retrieved scores 0 on every metric."""
    import ir_measures

    names = _ir_measures(ks)
    name_of = {str(m): n for n, m in names.items()}
    per_query = {q: dict.fromkeys(names, 0.0) for q in qids}
    for metric in ir_measures.iter_calc(list(names.values()), qrels, run):
        if metric.query_id in per_query:
            per_query[metric.query_id][name_of[str(metric.measure)]] = float(metric.value)
    return per_query


def mean_metrics(per_query: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over ``per_query`` (4 decimals) and the query count."""
    n = max(1, len(per_query))
    names = list(per_query[0]) if per_query else []
    out = {name: round(sum(q[name] for q in per_query) / n, 4) for name in names}
    out["queries"] = len(per_query)
    return out


def metrics(ranks: Sequence[int | None], ks: Sequence[int] = KS) -> dict[str, float]:
    """Gold ranks (1-based, None = not in the top ``max(ks)``) -> recall@k, MRR, query count."""
    n = max(1, len(ranks))
    out = {f"recall@{k}": round(sum(r is not None and r <= k for r in ranks) / n, 4) for k in ks}
    out["mrr"] = round(sum(1.0 / r for r in ranks if r is not None) / n, 4)
    out["queries"] = len(ranks)
    return out


def ranked_hits(encoder: Encoder, passages: Sequence[str], cases: Sequence[QualityCase], config: QueryConfig,
                kmax: int = max(KS), cache_dir: Path | None = None, index=None, merge_texts: bool = False,
                penalty: np.ndarray | None = None, *, progress: bool = False) -> list[list[int]]:
    """Each case's top ``kmax`` passage rows after the retriever's merge of hits.

    ``merge_texts``: passages sharing a text count once, as the retriever merges heads;
    ``penalty`` (n,): ranked by score - penalty, as the retriever ranks with the hub correction.
    """
    if index is None:
        index = build_index(encode_cached(encoder, passages, "passage", cache_dir, progress=progress), "Flat")
    queries = [build_queries(c.context, c.title, config) for c in cases]
    flat = sorted({q for qs in queries for q in qs})
    row_of = {q: i for i, q in enumerate(flat)}
    vectors = encode_cached(encoder, flat, "query", cache_dir, progress=progress)
    fetch = min(len(passages), 2 * kmax)  # extra, so merging texts still leaves kmax distinct hits
    scores, ids = search(index, vectors, fetch) if penalty is None else search_penalized(index, vectors, fetch, penalty)
    keys = list(passages) if merge_texts else None
    out = []
    for qs in queries:
        rows = [row_of[q] for q in qs]
        out.append([i for i, _ in merge_hits(scores[rows], ids[rows], keys)[:kmax]])
    return out


def gold_ranks(encoder: Encoder, passages: Sequence[str], cases: Sequence[QualityCase], config: QueryConfig,
               ks: Sequence[int] = KS, cache_dir: Path | None = None, index=None,
               merge_texts: bool = False, penalty: np.ndarray | None = None) -> list[int | None]:
    """Rank of each case's first gold among the merged hits (None beyond ``max(ks)``)."""
    hits = ranked_hits(encoder, passages, cases, config, max(ks), cache_dir, index, merge_texts, penalty)
    return _ranks(hits, cases, list(passages) if merge_texts else None)


def _ranks(hits: list[list[int]], cases: Sequence[QualityCase], keys: list[str] | None) -> list[int | None]:
    ranks: list[int | None] = []
    for case, rows in zip(cases, hits):
        gold = {keys[g] for g in case.gold} if keys else case.gold
        ranks.append(next((r for r, i in enumerate(rows, start=1) if (keys[i] if keys else i) in gold), None))
    return ranks


def top1_share(hits: list[list[int]]) -> float:
    """The largest share of cases whose top-1 is one and the same passage."""
    top1 = [rows[0] for rows in hits if rows]
    return round(max(np.unique(top1, return_counts=True)[1]) / len(hits), 4) if top1 else 0.0


def recall_table(encoder: Encoder, passages: Sequence[str], cases: Sequence[QualityCase],
                 variants: dict[str, QueryConfig] | None = None, ks: Sequence[int] = KS,
                 cache_dir: Path | None = None, merge_texts: bool = False,
                 penalty: np.ndarray | None = None, passage_vectors: np.ndarray | None = None,
                 trec: TrecCollector | None = None, part: str = "eval", progress: bool = False) -> dict[str, dict]:
    """variant -> group -> metrics (groups: each case's ``group``, and ``all``, which also
    holds ``hub_share``), and ``families`` -> family -> group -> metrics when cases have one.
    ``passage_vectors``: the passages already encoded (else encoded here); ``trec``: also
    collect the run and qrels, query ids ``<part>:<variant>:<n>``."""
    variants = variants or QUERY_VARIANTS
    if passage_vectors is None:
        passage_vectors = encode_cached(encoder, passages, "passage", cache_dir, progress=progress)
    index = build_index(passage_vectors, "Flat")
    groups = sorted({c.group for c in cases})
    families = sorted({c.family for c in cases if c.family is not None})
    keys = list(passages) if merge_texts else None
    table: dict[str, dict] = {}
    for name, config in variants.items():
        hits = ranked_hits(encoder, passages, cases, config, max(ks), cache_dir, index, merge_texts, penalty,
                           progress=progress)
        qids, run, qrels = _trec_lists(hits, cases, keys, f"{part}:{name}:")
        if trec is not None:
            trec.add(qids, run, qrels)
        by_qid = measured(run, qrels, qids, ks)
        per_query = [by_qid[q] for q in qids]
        table[name] = {g: mean_metrics([m for m, c in zip(per_query, cases) if c.group == g]) for g in groups}
        if groups != ["all"]:
            table[name]["all"] = mean_metrics(per_query)
        table[name]["all"]["hub_share"] = top1_share(hits)
        if families:
            table[name]["families"] = {
                f: {g: mean_metrics([m for m, c in zip(per_query, cases) if c.family == f and g in (c.group, "all")])
                    for g in [*groups, "all"] if any(c.family == f and g in (c.group, "all") for c in cases)}
                for f in families}
    return table


# -- KdConv
def kdconv_triple_text(entity: str, attribute: str, value: str) -> str:
    return f"{entity}，{attribute}：{value}"


KDCONV_SPLITS = ("dev", "test")
KDCONV_POOLS = ("kb", "gold")


def load_kdconv(data_dir: str | Path, max_dialogues: int | None = None, split: str = "test",
                pool: str = "kb") -> tuple[list[str], list[QualityCase]]:
    """(passages, cases) of KdConv travel's ``split`` (dev.json or test.json); the dialogue's
    topic entity is the title. ``pool``: the passages are every KB triple (``kb``, 10,968), or
    only the triples some utterance of the split has as gold (``gold``: a much easier pool,
    the one the numbers in issue 13 were measured on)."""
    if split not in KDCONV_SPLITS or pool not in KDCONV_POOLS:
        raise FormatError(f"KdConv split {split!r} / pool {pool!r}: expected one of {KDCONV_SPLITS} / {KDCONV_POOLS}")
    data_dir = Path(data_dir)
    kb = json.loads((data_dir / "kb_travel.json").read_text(encoding="utf-8"))
    triples = sorted({tuple(t) for rows in kb.values() for t in rows})
    dialogues = json.loads((data_dir / f"{split}.json").read_text(encoding="utf-8"))
    if pool == "gold":
        kept = {(a["name"], a["attrname"], a["attrvalue"]) for d in dialogues for m in d["messages"]
                for a in (m.get("attrs") or [])}
        triples = [t for t in triples if t in kept]
    row_of = {t: i for i, t in enumerate(triples)}
    passages = [kdconv_triple_text(*t) for t in triples]
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
                  cache_dir: Path | None = None, max_dialogues: int | None = None,
                  hub: HubSetup | None = None, split: str = "test", pool: str = "kb",
                  trec: TrecCollector | None = None, progress: bool = False) -> dict:
    """KdConv travel (:func:`load_kdconv`): recall@k, MRR, nDCG@10, MAP and hub share per query
    variant (default: the retriever's query); with ``hub``, ranked with the hub correction and
    the background's hubness reported; ``trec``: query ids ``kdconv:<variant>:<n>``."""
    passages, cases = load_kdconv(data_dir, max_dialogues, split, pool)
    variants = variants or {DEFAULT_VARIANT: QUERY_VARIANTS[DEFAULT_VARIANT]}
    vectors = encode_cached(encoder, passages, "passage", cache_dir, progress=progress)
    penalty, hub_report = _hub_parts(encoder, vectors, hub, cache_dir, QueryConfig(), passages, progress=progress)
    out = {"data": str(data_dir), "split": split, "pool": pool, "passages": len(passages), "queries": len(cases),
           "table": recall_table(encoder, passages, cases, variants, cache_dir=cache_dir, penalty=penalty,
                                 passage_vectors=vectors, trec=trec, part="kdconv", progress=progress)}
    if hub_report is not None:
        out["background_hubness"] = hub_report
    return out


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
                      ks: Sequence[int] = KS, cache_dir: Path | None = None, hub: HubSetup | None = None,
                      views: str | PassageViews | None = None, trec: TrecCollector | None = None,
                      progress: bool = False) -> dict:
    """Recall@k, MRR, nDCG@10 and MAP of the paraphrase check, per source and split
    (``trec``: query ids ``paraphrase-<source>:<variant>:<n>``).

    ``graphs``: source -> KG whose nodes that source's rows are scored among (``sample``:
    the sample KG; ``c3kg``: a KG of the real head files, ``kg.load_kg(dir)``); a source
    given None is skipped and says so. ``kinds`` (short names of ``retrieval.index.KINDS``,
    None = all) are the node kinds indexed; rows whose gold is of another kind are left
    out, and counted. A gold that is not a node of its source and kind is an error. With
    ``hub``, each source's nodes are ranked with the hub correction. ``views``: the passage
    views nodes are encoded from, as ``index build`` encodes them (None: the default).
    """
    kinds = parse_kinds(kinds) or list(KINDS)
    views = PassageViews.parse(views)
    variants = variants or {DEFAULT_VARIANT: QUERY_VARIANTS[DEFAULT_VARIANT]}
    rows = load_paraphrase_check(path)
    unknown = sorted(set(graphs) - set(PARAPHRASE_SOURCES))
    if unknown:
        raise FormatError(f"sources {unknown} are not paraphrase-check sources {list(PARAPHRASE_SOURCES)}")
    report: dict = {"file": str(path), "kinds": kinds, "views": views.as_dict(), "variants": variants_as_dict(variants),
                    "sources": {}}
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
            cases.append(QualityCase(r["context"], r.get("title"), gold, r["split"], KINDS[r["kind"]][1]))
        vectors = views.encode(graph, heads, lambda t: encode_cached(encoder, t, "passage", cache_dir, progress=progress))
        penalty, hub_report = _hub_parts(encoder, vectors, hub, cache_dir, QueryConfig(), texts, progress=progress)
        report["sources"][source] = {
            "passages": len(texts), "rows": len(scored), "left_out": {k: n for k, n in left_out.items() if n},
            "table": recall_table(encoder, texts, cases, variants, ks, cache_dir, merge_texts=True, penalty=penalty,
                                  passage_vectors=vectors, trec=trec, part=f"paraphrase-{source}",
                                  progress=progress),
        }
        if hub_report is not None:
            report["sources"][source]["background_hubness"] = hub_report
    return report


def user_recall(index, encoder: Encoder, path: str | Path, variants: dict[str, QueryConfig] | None = None,
                ks: Sequence[int] = KS, hub_weight: float | None = DEFAULT_HUB_WEIGHT,
                trec: TrecCollector | None = None, progress: bool = False) -> dict:
    """Recall of a JSONL of ``{"context": [turns], "gold": str, "title": str (optional)}``
    among the heads of ``index`` (a :class:`retrieval.index.HeadIndex`); ``gold`` is a head's
    text or id. Ranked as the retriever ranks (``hub_weight`` x its stored hub penalty when
    the index has one; None: plain). A bad row or an unknown gold names file, line and value."""
    from tiktalk.dataset import read_jsonl_rows

    texts, ids, families = (index.heads[c].to_list() for c in ("text", "id", "family"))
    rows_of: dict[str, set[int]] = {}
    for i, (text, head_id) in enumerate(zip(texts, ids)):
        rows_of.setdefault(text, set()).add(i)
        rows_of.setdefault(head_id, set()).add(i)
    cases = []
    for line_no, row in read_jsonl_rows(path):
        if not isinstance(row, dict):
            raise FormatError(f"{path}:{line_no}: expected an object, got {type(row).__name__}")
        context, gold, title = row.get("context"), row.get("gold"), row.get("title")
        if isinstance(context, str):
            context = [context]
        if not isinstance(context, list) or not context or not all(isinstance(t, str) for t in context):
            raise FormatError(f"{path}:{line_no}: field 'context' must be a non-empty list of strings "
                              f"(value {context!r})")
        if not isinstance(gold, str) or gold not in rows_of:
            raise FormatError(f"{path}:{line_no}: field 'gold' {gold!r} is no head text or id of the index "
                              f"({index.path or 'in memory'}, {len(texts)} heads)")
        if title is not None and not isinstance(title, str):
            raise FormatError(f"{path}:{line_no}: field 'title' must be a string or absent (value {title!r})")
        gold_rows = rows_of[gold]
        cases.append(QualityCase(context, title, gold_rows, "all", families[min(gold_rows)]))
    if not cases:
        raise FormatError(f"{path}: no rows")
    penalty = None if hub_weight is None or index.hub_penalty is None else hub_weight * index.hub_penalty
    return {"file": str(path), "passages": len(texts), "rows": len(cases),
            "hub_corrected": penalty is not None,
            "table": recall_table(encoder, texts, cases, variants or {DEFAULT_VARIANT: QUERY_VARIANTS[DEFAULT_VARIANT]},
                                  ks, merge_texts=True, penalty=penalty,
                                  passage_vectors=np.ascontiguousarray(index.embeddings), trec=trec, part="data",
                                  progress=progress)}


def variants_as_dict(variants: dict[str, QueryConfig] | None = None) -> dict[str, dict]:
    return {k: asdict(v) for k, v in (variants or QUERY_VARIANTS).items()}


HIGHER_IS_BETTER = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "map")
LOWER_IS_BETTER = ("hub_share",)


def eval_plot_bars(result: dict, variant: str = DEFAULT_VARIANT) -> list[tuple[str, dict]]:
    """(label, metrics) per benchmark part of an ``index eval`` result, in plot order; each
    label names the part and its query count (``kdconv\nn=1234``)."""
    bars: list[tuple[str, dict]] = []
    for source, part in result.get("paraphrase", {}).get("sources", {}).items():
        table = part.get("table", {}).get(variant)
        for group in ("dev", "test"):
            if table and group in table:
                bars.append((f"paraphrase\n{source} {group}", {**table[group], "hub_share": table["all"]["hub_share"]}))
    for name in ("kdconv", "data"):
        table = result.get(name, {}).get("table", {}).get(variant)
        if table:
            bars.append((name, table["all"]))
    return [(f"{label}\nn={m.get('queries', 0)}", m) for label, m in bars]


def plot_eval(result: dict, path: str | Path, variant: str = DEFAULT_VARIANT) -> None:
    """One bar group per benchmark part (paraphrase sources by split, KdConv, your JSONL), its
    query count under it: recall@1/5/10, MRR, nDCG@10 and MAP (higher is better) in one panel,
    the hub share of its queries (lower is better) in a separate one (PNG, Agg backend).

    ``result``: what ``tiktalk index eval --json`` prints."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = eval_plot_bars(result, variant)
    if not bars:
        return
    fig, (high, low) = plt.subplots(1, 2, figsize=(max(7, 1.9 * len(bars) + 2), 4.2),
                                    gridspec_kw={"width_ratios": [4, 1.2]})
    for ax, shown, title in ((high, HIGHER_IS_BETTER, "higher is better"), (low, LOWER_IS_BETTER, "lower is better")):
        shown = [m for m in shown if any(m in b[1] for b in bars)]
        width = 0.8 / max(1, len(shown))
        for j, m in enumerate(shown):
            drawn = ax.bar([i + j * width for i in range(len(bars))], [b[1].get(m, 0) for b in bars], width,
                           label=m)
            if len(shown) == 1:
                ax.bar_label(drawn, fmt="%.2f", fontsize=7)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(bars))])
        ax.set_xticklabels([b[0] for b in bars], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=9)
        if len(shown) > 1:
            ax.legend(fontsize=7, ncol=3)
    corrected = "hub-corrected" if result.get("hub_correction") else "plain"
    fig.suptitle(f"{result.get('encoder', {}).get('name', '?')}, query {variant}, {corrected}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
