"""``tiktalk index build|info|eval``, ``tiktalk retrieve`` and ``tiktalk annotate``."""

from __future__ import annotations

import argparse

from retrieval.query import DEFAULT_VARIANT, QUERY_VARIANTS
from tiktalk.commands import (
    RegistryHelp,
    add_budget_options,
    add_group,
    add_json_flag,
    add_progress_flag,
    emit,
    encoder_help,
    print_notice,
    show_progress,
    views_help,
)
from tiktalk.options import COUNT, FINITE, POSITIVE_INT


def _add_retriever_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory from `tiktalk index build`")
    p.add_argument("--kg", default=None, help="KG to expand heads with (default: the one the index names)")
    p.add_argument("--top-k", type=POSITIVE_INT.parse("--top-k"), default=None, help="heads kept (per family with --per-family)")
    p.add_argument("--per-family", action="store_true", help="top k of each flow family instead of overall")
    p.add_argument("--min-score", type=FINITE.parse("--min-score"), default=None, help="drop heads scoring below this cosine")
    p.add_argument("--last-turns", type=COUNT.parse("--last-turns"), default=None, help="context turns used for the query (0 = all)")
    p.add_argument("--threads", type=POSITIVE_INT.parse("--threads"), default=None, help="FAISS/torch threads (default: usable cores)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow the KG (--kg, or the one the index names) to be a C3KG.GRAPH pickle")
    p.add_argument("--no-hub-correction", action="store_true",
                   help="rank by plain cosine even when the index has hub statistics")
    add_selection_options(p)


def add_selection_options(p: argparse.ArgumentParser) -> None:
    def selections() -> str:
        from retrieval.selection import DEFAULT_SELECTION, SELECTIONS

        return (f"how the segment is chosen: {', '.join(SELECTIONS.names())}; 'paper': top-k heads written "
                "head-major (the paper's row); 'dense': pieces scored by the encoder; 'learned': pieces scored "
                f"by --selector (default: 'learned' with --selector, else {DEFAULT_SELECTION!r})")

    def heads(which: str) -> str:
        from retrieval.selection import DEFAULT_CANDIDATE_HEADS, DEFAULT_NAMED_HEADS

        return {"dense": f"dense heads whose pieces are candidates (default {DEFAULT_CANDIDATE_HEADS}; "
                         "a selector keeps its own)",
                "named": f"heads the context names, most recent first, added to the candidates "
                         f"(default {DEFAULT_NAMED_HEADS}; a selector keeps its own)"}[which]

    p.add_argument("--selection", default=None, help=RegistryHelp(selections))
    p.add_argument("--selector", default=None, metavar="DIR", help="a selector from `tiktalk select train`")
    p.add_argument("--no-abstain", action="store_true",
                   help="write a segment for every context even where the selector's threshold would abstain")
    p.add_argument("--candidate-heads", type=COUNT.parse("--candidate-heads"), default=None, help=RegistryHelp(lambda: heads("dense")))
    p.add_argument("--named-heads", type=COUNT.parse("--named-heads"), default=None, help=RegistryHelp(lambda: heads("named")))


def _add_workers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=POSITIVE_INT.parse("--workers"), default=None,
                   help="encoder worker processes, one encoder thread each (default: every usable core; 1: in process)")


def _add_views_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--views", default=None, metavar="SPEC", help=views_help(what))


def _add_background_option(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--background", default=default, metavar="SOURCE",
                   help="chit-chat contexts for the hub statistics: LCCC's JSON, a dataset directory, 'sample' "
                        f"(the shipped dataset's contexts), a JSONL of contexts, or 'none' (default: {default})")
    p.add_argument("--hub-k", type=POSITIVE_INT.parse("--hub-k"), default=None, help=RegistryHelp(_hub_k_help))


def _hub_k_help() -> str:
    from retrieval.hubness import DEFAULT_HUB_K  # the default's one owner

    return f"background contexts nearest each head that its hub penalty averages (default {DEFAULT_HUB_K})"


def _add_prompt_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--query-prompt", default=None, metavar="TEXT",
                   help="text put before each query, overriding a sentence-transformers encoder's own configured "
                        "query prompt ('' for none; default: the model's; recorded in the index)")
    p.add_argument("--passage-prompt", default=None, metavar="TEXT",
                   help="text put before each passage (head), overriding the model's own document/passage prompt")


def _prompt_options(args: argparse.Namespace) -> dict:
    return {k: v for k in ("query_prompt", "passage_prompt") if (v := getattr(args, k, None)) is not None}


def register(sub: argparse._SubParsersAction) -> None:
    index_sub = add_group(sub, "index", "build and inspect FAISS indexes of C3KG heads")

    p = index_sub.add_parser("build", help="encode the KG's heads and write an index directory")
    p.add_argument("--kg", default="sample", help="converted KG directory, release files, or 'sample'")
    p.add_argument("--trust-pickle", action="store_true", help="allow --kg to be a C3KG.GRAPH pickle")
    p.add_argument("--out", required=True, help="index directory (written atomically)")
    p.add_argument("--encoder", default=None, help=encoder_help("to encode the heads with"))
    _add_prompt_options(p)
    p.add_argument("--factory", default="Flat", help="FAISS factory: Flat, HNSW32, IVF4096,Flat, IVF4096,PQ48, ...")
    p.add_argument("--kinds", default=None, help="comma-separated subset of event,phrase,entity,emotion "
                   "(default: every kind the KG has; 'event' = C3KG's own matcher)")
    p.add_argument("--nprobe", type=POSITIVE_INT.parse("--nprobe"), default=None, help="IVF lists probed per query")
    p.add_argument("--ef-search", type=POSITIVE_INT.parse("--ef-search"), default=None, help="HNSW efSearch")
    p.add_argument("--reuse-from", default=None, help="index whose stored embeddings to reuse (default: --out)")
    p.add_argument("--batch-size", type=POSITIVE_INT.parse("--batch-size"), default=256)
    p.add_argument("--threads", type=POSITIVE_INT.parse("--threads"), default=None)
    p.add_argument("--no-gpu", action="store_true", help="stay on the CPU even when FAISS sees a GPU")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_views_option(p, "each head is encoded from")
    p.add_argument("--pieces", action="store_true",
                   help="also encode every head's knowledge pieces, so `annotate --selection dense|learned` and "
                        "`select train` encode none per context (costs one encoding per distinct piece)")
    _add_workers_option(p)
    _add_background_option(p, default="sample")
    add_progress_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_build)

    p = index_sub.add_parser("info", help="print an index's manifest")
    p.add_argument("index", metavar="INDEX")
    add_json_flag(p)
    p.set_defaults(func=_info)

    p = index_sub.add_parser("eval", help="retrieval quality: recall@1/5/10, MRR, nDCG@10, MAP, hub share and per-family recall "
                             "on the paraphrase check, KdConv and your own JSONL; JSON and a plot")
    p.add_argument("--index", default=None, metavar="DIR",
                   help="an index directory: its encoder is evaluated and --cases is scored among its heads "
                        "(with its stored hub statistics)")
    p.add_argument("--kg", default="sample", help="KG the check's 'sample' rows are scored among (default sample)")
    p.add_argument("--c3kg-heads", default=None, metavar="DIR",
                   help="the real C3KG head files (head_shortSentence.csv, head_phrase.csv) the 'c3kg' rows are "
                        "scored among; without it those rows are skipped, and reported as skipped")
    p.add_argument("--kdconv", default=None, metavar="DIR",
                   help="KdConv's travel directory (kb_travel.json, test.json): its KB triples as passages")
    p.add_argument("--kdconv-split", default="test", choices=["dev", "test"], help="KdConv dialogues queried")
    p.add_argument("--selector", default=None, metavar="DIR",
                   help="with --index over the KdConv KB and --kdconv: also the learned selection's piece-level "
                        "recall (the dense selection's is always reported)")
    p.add_argument("--kdconv-pool", default="kb", choices=["kb", "gold"],
                   help="passages: every KB triple (default), or only the split's gold triples (easier)")
    p.add_argument("--cases", default=None, metavar="JSONL",
                   help='your own cases, {"context": [turns], "gold": head text or id} a line, scored among the '
                        "heads of --index (or of --kg, indexed in memory)")
    p.add_argument("--data", dest="data_deprecated", default=None, metavar="JSONL",
                   help="deprecated alias of --cases (elsewhere --data names a dataset)")
    p.add_argument("--encoder", default=None, help=encoder_help("to evaluate, without --index"))
    _add_prompt_options(p)
    _add_views_option(p, "the KG's nodes are encoded from, without --index (with it: the index's)")
    _add_background_option(p, default="sample")
    p.add_argument("--no-hub-correction", action="store_true", help="rank by plain cosine")
    p.add_argument("--plot", default=None, metavar="PNG", help="write a bar plot of the results here")
    p.add_argument("--run-file", default=None, metavar="FILE",
                   help="write every ranked list scored as a TREC run (query ids <part>:<variant>:<n>)")
    p.add_argument("--qrels-file", default=None, metavar="FILE",
                   help="write the gold of every query scored as TREC qrels (read both with ir-measures or trec_eval)")
    _add_workers_option(p)
    p.add_argument("--kinds", default=None, help="node kinds indexed, comma-separated subset of "
                   "event,phrase,entity,emotion (default all; rows whose gold is of another kind are left out)")
    p.add_argument("--variants", default=None,
                   help="query constructions, comma-separated, or 'all' (default: the retriever's default query); "
                        "known: " + ", ".join(QUERY_VARIANTS))
    p.add_argument("--check", default=None, metavar="JSONL", help="paraphrase-check file (default: the shipped one)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="embedding cache directory, keyed by encoder fingerprint and texts (default: embeddings/ "
                        "under $TIKTALK_CACHE, else $XDG_CACHE_HOME/tiktalk, else ~/.cache/tiktalk)")
    p.add_argument("--no-cache", action="store_true", help="encode everything afresh and cache nothing")
    p.add_argument("--threads", type=POSITIVE_INT.parse("--threads"), default=None)
    add_progress_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("retrieve", help="retrieve C3KG heads and knowledge for one dialogue context")
    _add_retriever_options(p)
    p.add_argument("--title", default=None, help="video title, put in front of the query")
    add_budget_options(p, default_model=None)
    p.add_argument("turns", metavar="TURN", nargs="+", help="context turns, oldest first")
    add_json_flag(p)
    p.set_defaults(func=_retrieve)

    p = sub.add_parser("annotate", help="precompute knowledge for every dialogue (the training cache)")
    _add_retriever_options(p)
    p.add_argument("--data", required=True, help="JSONL of {dialogue_id, context}, a dataset directory, or 'sample'")
    p.add_argument("--split", default=None, help="only this split of a dataset directory")
    p.add_argument("--use-title", action="store_true", help="put each dialogue's video title in front of its query")
    p.add_argument("--out", required=True, help="output Parquet (written atomically; resumable)")
    p.add_argument("--chunk-size", type=POSITIVE_INT.parse("--chunk-size"), default=256, help="dialogues per resumable chunk")
    _add_workers_option(p)
    add_budget_options(p, default_model="maria")
    p.add_argument("--allow-empty", action="store_true", help="write a 0-row table when --data has no "
                   "dialogues (default: an error)")
    p.add_argument("--overwrite", action="store_true")
    add_progress_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_annotate)


def _retriever(args: argparse.Namespace):
    from dataclasses import replace

    from retrieval.retriever import RetrieverConfig
    from tiktalk.errors import UsageError
    from tiktalk.runs.budget import knowledge_budget
    from tiktalk.runs.pipeline import open_retriever

    config = RetrieverConfig()
    if args.top_k is not None:
        config.top_k = args.top_k
    config.per_family = args.per_family
    config.min_score = args.min_score
    config.hub_correction = not args.no_hub_correction
    from retrieval.selection import DEFAULT_SELECTION

    config.selection = args.selection or ("learned" if args.selector else DEFAULT_SELECTION)
    if config.selection != "paper" and (args.top_k is not None or args.per_family or args.min_score is not None):
        raise UsageError(f"--top-k / --per-family / --min-score choose heads for --selection paper; selection "
                         f"{config.selection!r} scores pieces of --candidate-heads and --named-heads heads")
    config.selector = args.selector
    config.abstain = not args.no_abstain
    if args.candidate_heads is not None or args.named_heads is not None:
        if args.selector:
            raise UsageError("--candidate-heads / --named-heads: a selector keeps the candidates it was trained on")
        config.piece_selection = replace(config.piece_selection, **{k: v for k, v in (("candidate_heads", args.candidate_heads),
                                                                    ("named_heads", args.named_heads)) if v is not None})
    if args.last_turns is not None:
        config.query = replace(config.query, last_turns=args.last_turns or None)
    if getattr(args, "title", None) or getattr(args, "use_title", False):
        config.query = replace(config.query, use_title=True)
    config.__post_init__()
    budget = knowledge_budget(args.model, args.model_path, args.max_tokens)
    return open_retriever(args.index, kg_source=args.kg, config=config, budget=budget, trust_pickle=args.trust_pickle,
                          workers=getattr(args, "workers", 1), threads=args.threads, on_notice=print_notice)


def _background(source: str | None, splits=None):
    from tiktalk.runs.pipeline import read_background_source

    return read_background_source(source, splits)


def _hub_k(args: argparse.Namespace) -> int:
    from retrieval.hubness import DEFAULT_HUB_K

    return DEFAULT_HUB_K if args.hub_k is None else args.hub_k


def _build(args: argparse.Namespace) -> int:
    from retrieval.search import SearchParams
    from tiktalk.io import refuse_overlap
    from tiktalk.runs.pipeline import build_index

    background = args.background if args.background not in (None, "none") else None
    refuse_overlap(args.out, [("--kg", args.kg), ("--background", background)], may_write_inside=("--kg",))

    params = SearchParams()
    if args.nprobe is not None or args.ef_search is not None:
        params = SearchParams(nprobe=args.nprobe or params.nprobe, ef_search=args.ef_search or params.ef_search)
    index = build_index(args.kg, args.out, encoder=args.encoder, workers=args.workers, factory=args.factory,
                        kinds=args.kinds, params=params, reuse_from=args.reuse_from, overwrite=args.overwrite,
                        batch_size=args.batch_size, progress=show_progress(args), use_gpu=not args.no_gpu,
                        trust_pickle=args.trust_pickle, background=args.background, hub_k=args.hub_k,
                        views=args.views, pieces=args.pieces, threads=args.threads, on_notice=print_notice,
                        **_prompt_options(args))
    m = index.manifest
    emit(args, {"out": str(index.path), **m},
         lambda r: f"wrote {r['out']}: {sum(r['counts'].values())} heads "
         f"({', '.join(f'{k} {v}' for k, v in r['counts'].items())}), {r['encoder']['name']} "
         f"d={r['encoder']['dim']}, {r['factory']}, views {_views_name(r.get('views'))}"
         f"{', reused stored embeddings' if r['reused_embeddings'] else ''}"
         f"{_hub_line(r.get('hub_correction'))}"
         + (f"\n{r['pieces']['count']} piece passages encoded" if r.get("pieces") else ""))
    return 0


def _views_name(entry: dict | None) -> str:
    from retrieval.views import PassageViews

    return PassageViews.from_manifest(entry).name


def _hub_line(entry: dict | None) -> str:
    if entry is None:
        return ", no hub statistics"
    h = entry["hubness_in_sample"]
    return (f"\nhub statistics from {entry['queries']} background queries of {entry['source']} (k {entry['k']}): "
            f"top-1 hub share {h['plain']['hub_share']:.3f} -> {h['corrected']['hub_share']:.3f} corrected, "
            f"k-occurrence skew {h['plain']['k_occurrence_skew']:.2f} -> {h['corrected']['k_occurrence_skew']:.2f}")


def _info(args: argparse.Namespace) -> int:
    from retrieval.index import HeadIndex

    index = HeadIndex.load(args.index, verify=True, use_gpu=False)
    m = dict(index.manifest)
    m.pop("use_gpu", None)
    emit(args, m, lambda r: f"{args.index}: {sum(r['counts'].values())} heads {r['counts']}, "
         f"{r['encoder']['name']} d={r['encoder']['dim']} ({r['encoder']['fingerprint'][:12]}), "
         f"views {_views_name(r.get('views'))}, {r['factory']} {r['search_params']}, KG {r['kg']['content_sha256'][:12]}")
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
    from tiktalk.io import refuse_overlap
    from tiktalk.runs.pipeline import annotate_dialogues

    refuse_overlap(args.out, [("--data", args.data), ("--index", args.index), ("--kg", args.kg),
                              ("--selector", args.selector)], may_write_inside=("--data", "--index", "--kg", "--selector"))

    result = annotate_dialogues(_retriever(args), args.data, args.out, split=args.split, chunk_size=args.chunk_size,
                                allow_empty=args.allow_empty, overwrite=args.overwrite, progress=show_progress(args),
                                on_notice=print_notice)
    emit(args, result, lambda r: f"wrote {r['out']}: {r['rows']} dialogues in {r['chunks']} chunks "
         f"({r['chunks_reused']} reused from an interrupted run), knowledge cut to {r['budget'] or 'no budget'}, "
         f"selection {r['selection']['name']}"
         + (f" ({r['abstained']} abstained, {r['empty']} empty)" if 'abstained' in r else ""))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import kg
    from retrieval.encoders import open_encoder, open_manifest_encoder
    from retrieval.evaluate import (
        PARAPHRASE_FILE,
        TrecCollector,
        default_embedding_cache,
        kdconv_recall,
        paraphrase_recall,
        plot_eval,
        user_recall,
    )
    from retrieval.index import HeadIndex, build_head_index
    from retrieval.search import configure_threads
    from retrieval.views import PassageViews
    from tiktalk.errors import UsageError

    configure_threads(args.threads)
    if args.data_deprecated is not None:
        if args.cases is not None:
            raise UsageError("--data is the deprecated name of --cases: give --cases alone")
        print_notice("`index eval --data` is deprecated: use --cases (elsewhere --data names a dataset)")
        args.cases = args.data_deprecated
    if args.no_cache and args.cache is not None:
        raise UsageError("--cache and --no-cache contradict each other: give one")
    cache = None if args.no_cache else (args.cache or default_embedding_cache())
    progress = show_progress(args)
    names = args.variants.split(",") if args.variants else [DEFAULT_VARIANT]
    if names == ["all"]:
        names = list(QUERY_VARIANTS)
    unknown = [n for n in names if n not in QUERY_VARIANTS]
    if unknown:
        raise UsageError(f"query variants {unknown} are unknown; known: {list(QUERY_VARIANTS)}")
    variants = {n: QUERY_VARIANTS[n] for n in names}
    index = HeadIndex.load(args.index, use_gpu=False) if args.index else None
    if index is not None and args.encoder is not None:
        raise UsageError("--encoder and --index both name an encoder: the index's is evaluated; drop --encoder")
    if index is not None and args.views is not None:
        raise UsageError("--views and --index both name passage views: the index's are evaluated; drop --views")
    views = PassageViews.from_manifest(index.manifest.get("views")) if index is not None else PassageViews.parse(args.views)
    if index is not None and _prompt_options(args):
        raise UsageError("--query-prompt/--passage-prompt and --index: the index's prompts are evaluated; drop them")
    encoder = (open_manifest_encoder(index.manifest["encoder"], args.workers) if index is not None
               else open_encoder(args.encoder, args.workers, **_prompt_options(args)))
    trec = TrecCollector() if args.run_file or args.qrels_file else None
    try:
        hub = None
        if not args.no_hub_correction and args.background not in (None, "none"):
            hub = _hub_setup(args.background, _hub_k(args))
        graphs = {"sample": kg.load_kg(args.kg), "c3kg": kg.load_kg(args.c3kg_heads) if args.c3kg_heads else None}
        result = {"encoder": {"name": encoder.name, "fingerprint": encoder.fingerprint},
                  "cache": None if cache is None else str(cache),
                  "hub_correction": None if hub is None else hub.describe(),
                  "paraphrase": paraphrase_recall(encoder, graphs, args.kinds, variants, args.check or PARAPHRASE_FILE,
                                                  cache_dir=cache, hub=hub, views=views, trec=trec, progress=progress)}
        if args.kdconv:
            result["kdconv"] = kdconv_recall(encoder, args.kdconv, variants, cache_dir=cache, hub=hub,
                                             split=args.kdconv_split, pool=args.kdconv_pool, trec=trec,
                                             progress=progress)
            if index is not None and "entity" in set(index.heads["kind"].to_list()):
                from tiktalk.runs.select import kdconv_piece_report

                result["kdconv_pieces"] = kdconv_piece_report(args.index, args.kdconv, split=args.kdconv_split,
                                                              selector=args.selector, workers=args.workers,
                                                              progress=progress)
        if args.selector and "kdconv_pieces" not in result:
            raise UsageError("--selector needs --kdconv and an --index over the KdConv KB")
        if args.cases:
            if index is None:
                index = build_head_index(graphs["sample"], encoder, None, kinds=args.kinds, progress=progress,
                                         background=None if hub is None else hub.fit, hub_k=_hub_k(args),
                                         views=views)
            result["data"] = user_recall(index, encoder, args.cases, variants,
                                         hub_weight=None if hub is None else hub.weight, trec=trec, progress=progress)
    finally:
        getattr(encoder, "close", lambda: None)()
    if trec is not None:
        trec.write(args.run_file, args.qrels_file)
        result["trec"] = {"run_file": args.run_file, "qrels_file": args.qrels_file, "queries": len(trec.qrels)}
    if args.plot:
        plot_eval(result, args.plot)
        result["plot"] = args.plot
    emit(args, result, _render_eval)
    return 0


def _hub_setup(source: str, k: int):
    """Penalties from the source's train split and hubness on its val + test splits, when it
    has them; a source without splits (a JSONL) is measured in sample."""
    from retrieval.evaluate import HubSetup
    from tiktalk.errors import UsageError

    if source.endswith(".jsonl"):
        return HubSetup(_background(source), k)
    try:
        return HubSetup(_background(source, ["train"]), k, _background(source, ["val", "test"]))
    except UsageError:  # a split is empty: all of it, in sample
        return HubSetup(_background(source), k)


def _metrics_line(name: str, m: dict) -> str:
    recalls = " / ".join(f"{v:.3f}" for k, v in m.items() if k.startswith("recall@"))
    ranked = "".join(f", {label} {m[key]:.3f}" for key, label in (("ndcg@10", "nDCG@10"), ("map", "MAP")) if key in m)
    return f"{name} {recalls}, MRR {m['mrr']:.3f}{ranked} ({m['queries']})"


def _render_table(table: dict, indent: str) -> list[str]:
    lines = []
    for variant, groups in table.items():
        for group, m in groups.items():
            if group != "families":
                lines.append(indent + _metrics_line(f"{variant:<15} {group:<5}", m)
                             + (f", hub share {m['hub_share']:.3f}" if "hub_share" in m else ""))
        for family, parts in groups.get("families", {}).items():
            lines.append(indent + "  " + _metrics_line(f"{family:<13} all  ", parts["all"]))
    return lines


def _hub_render(report: dict | None, indent: str) -> list[str]:
    if not report:
        return []
    where = "in sample" if report["in_sample"] else "held out"
    p, c = report["plain"], report["corrected"]
    line = (f"{indent}background hubness ({p['queries']} contexts, {where}): top-1 hub share "
            f"{p['hub_share']:.3f} -> {c['hub_share']:.3f} corrected, k-occurrence skew "
            f"{p['k_occurrence_skew']:.2f} -> {c['k_occurrence_skew']:.2f}")
    return [line]


def _render_eval(result: dict) -> str:
    hub = result["hub_correction"]
    lines = [f"encoder {result['encoder']['name']}, "
             + ("no hub correction" if hub is None else f"hub-corrected (background {hub['fit']['source']}, "
                f"k {hub['k']})")]
    para = result["paraphrase"]
    lines.append(f"paraphrase check {para['file']} (kinds {','.join(para['kinds'])}): "
                 "recall@1 / @5 / @10, MRR, nDCG@10, MAP (queries)")
    for source, part in para["sources"].items():
        if "skipped" in part:
            lines.append(f"  {source}: skipped, {part['rows']} rows ({part['skipped']})")
            continue
        left = ", ".join(f"{k} {n}" for k, n in part["left_out"].items())
        lines.append(f"  {source}: {part['rows']} rows among {part['passages']} nodes"
                     + (f" (left out, kind not indexed: {left})" if left else ""))
        lines += _render_table(part["table"], "    ") + _hub_render(part.get("background_hubness"), "    ")
    if "kdconv" in result:
        kd = result["kdconv"]
        lines.append(f"KdConv {kd['data']} ({kd['split']}): {kd['queries']} queries among {kd['passages']} "
                     f"triples ({kd['pool']})")
        lines += _render_table(kd["table"], "    ") + _hub_render(kd.get("background_hubness"), "    ")
    if "kdconv_pieces" in result:
        kp = result["kdconv_pieces"]
        lines.append(f"KdConv pieces ({kp['split']}): {kp['scored']} utterances with gold attrs; a used piece among "
                     f"the candidates for {kp['candidates']:.3f}")
        for name, m in kp["strategies"].items():
            lines.append(f"    {name}: recall@1 {m['recall@1']:.3f}, @5 {m['recall@5']:.3f}, @10 {m['recall@10']:.3f}, "
                         f"MRR {m['mrr']:.3f}; in the segment {m['in_segment']:.3f}, abstained {m['abstain_share']:.3f}")
    if "data" in result:
        data = result["data"]
        lines.append(f"{data['file']}: {data['rows']} rows among {data['passages']} heads"
                     f"{' (hub-corrected)' if data['hub_corrected'] else ''}")
        lines += _render_table(data["table"], "    ")
    if "plot" in result:
        lines.append(f"plot: {result['plot']}")
    if "trec" in result:
        t = result["trec"]
        lines.append(f"TREC ({t['queries']} queries): " + ", ".join(
            f"{what} {t[key]}" for key, what in (("run_file", "run"), ("qrels_file", "qrels")) if t[key]))
    return "\n".join(lines)
