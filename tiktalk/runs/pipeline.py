"""The pipeline's preparation steps as the commands run them: index build, annotate, dataset
import (any registered importer), KG convert, gold knowledge.

Each function is what its command does after parsing, defaults included, and holds the
output lock of what it writes (a second writer of the same path fails at once, naming the
holder). ``tiktalk index build`` / ``annotate`` call :func:`build_index` /
:func:`annotate_dialogues`; the experiment drivers call all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tiktalk.errors import UsageError
from tiktalk.types import KnowledgeBudget

Notice = Callable[[str], None] | None


def read_background_source(source: str | None, splits=None):
    """Contexts for the hub statistics (``None`` / ``"none"``: no hub statistics)."""
    from retrieval.hubness import read_background

    return None if source in (None, "none") else read_background(source, splits)


def build_index(kg_source: str | Path, out: str | Path, *, encoder: str | None = None, workers: int | None = None,
                factory: str = "Flat", kinds: str | None = None, params=None, reuse_from: str | None = None,
                overwrite: bool = False, batch_size: int = 256, progress: bool = True, use_gpu: bool = True,
                trust_pickle: bool = False, background: str | None = "sample", hub_k: int | None = None,
                views: str | None = None, pieces: bool = False, threads: int | None = None,
                on_notice: Notice = None, query_prompt: str | None = None, passage_prompt: str | None = None):
    """Encode the heads of the KG ``kg_source`` into the index directory ``out`` (``tiktalk
    index build``; ``background``: the contexts of the hub statistics, default the sample's;
    ``pieces``: also encode every head's pieces, :class:`retrieval.pieces.PieceConfig` defaults;
    ``query_prompt`` / ``passage_prompt``: a sentence-transformers encoder's prompt overrides)."""
    import kg
    from retrieval.encoders import open_encoder
    from retrieval.hubness import DEFAULT_HUB_K
    from retrieval.index import build_head_index
    from retrieval.pieces import PieceConfig
    from retrieval.search import SearchParams, configure_threads
    from tiktalk.io import output_lock

    configure_threads(threads)
    graph = kg.load_kg(kg_source, trust_pickle=trust_pickle)
    contexts = read_background_source(background)
    prompts = {k: v for k, v in (("query_prompt", query_prompt), ("passage_prompt", passage_prompt)) if v is not None}
    opened = open_encoder(encoder, workers, **prompts)
    try:
        with output_lock(out, on_notice=on_notice):
            return build_head_index(
                graph, opened, out, factory=factory, kinds=kinds, params=params or SearchParams(),
                reuse_from=reuse_from, overwrite=overwrite, batch_size=batch_size, progress=progress,
                use_gpu=use_gpu, kg_source=str(kg_source), on_notice=on_notice, background=contexts,
                hub_k=DEFAULT_HUB_K if hub_k is None else hub_k, views=views,
                pieces=PieceConfig() if pieces else None,
            )
    finally:
        getattr(opened, "close", lambda: None)()


def open_retriever(index: str | Path, *, kg_source: str | None = None, config=None,
                   budget: KnowledgeBudget | None = None, trust_pickle: bool = False, workers: int | None = 1,
                   threads: int | None = None, on_notice: Notice = None):
    """A :class:`retrieval.retriever.Retriever` over ``index`` (its KG: the one the index names,
    or ``kg_source``), cutting knowledge to ``budget``."""
    import kg
    from retrieval.retriever import Retriever, RetrieverConfig
    from retrieval.search import configure_threads

    configure_threads(threads)
    graph = kg.load_kg(kg_source, trust_pickle=trust_pickle) if kg_source else None
    return Retriever.load(index, graph=graph, config=config or RetrieverConfig(), budget=budget,
                          trust_pickle=trust_pickle, on_notice=on_notice, workers=workers)


def annotate_dialogues(retriever, data: str | Path, out: str | Path, *, split: str | None = None,
                       chunk_size: int = 256, allow_empty: bool = False, overwrite: bool = False,
                       progress: bool = True, on_notice: Notice = None) -> dict[str, Any]:
    """The knowledge cache ``out`` of every dialogue of ``data`` (``tiktalk annotate``; a JSONL of
    contexts, a dataset directory or 'sample'), retrieved by ``retriever``; closes its encoder."""
    from retrieval.annotate import annotate
    from retrieval.contexts import read_contexts
    from tiktalk.io import output_lock

    try:
        rows = read_contexts(data, split)
        if rows.height == 0 and not allow_empty:
            where = f"split {split!r} of {data}" if split else str(data)
            raise UsageError(f"{where}: no dialogues to annotate (pass --allow-empty to write a 0-row table)")
        with output_lock(out, on_notice=on_notice):
            return annotate(retriever, rows, out, chunk_size=chunk_size, progress=progress, overwrite=overwrite,
                            on_notice=on_notice)
    finally:
        getattr(retriever.encoder, "close", lambda: None)()


def annotate_with_index(index: str | Path, data: str | Path, out: str | Path, budget: KnowledgeBudget | None,
                        *, config=None, overwrite: bool = True, progress: bool = True,
                        on_notice: Notice = None) -> dict[str, Any]:
    """``tiktalk annotate --index INDEX --data DATA --out OUT`` with ``config`` (a
    :class:`retrieval.RetrieverConfig`; None: its defaults) and ``budget``."""
    from retrieval.retriever import RetrieverConfig

    retriever = open_retriever(index, config=config or RetrieverConfig(), budget=budget, workers=None,
                               on_notice=on_notice)
    return annotate_dialogues(retriever, data, out, overwrite=overwrite, progress=progress, on_notice=on_notice)


def import_dataset(importer: str, source: str | Path, out: str | Path, options=None, *, features=None,
                   table_format: str = "jsonl", overwrite: bool = False, on_warning: Notice = None) -> dict[str, Any]:
    """``tiktalk data import --from IMPORTER SOURCE --out OUT``: the registered importer's reader
    (:func:`tiktalk.importers.run_import`, ``options`` an :class:`~tiktalk.importers.ImportOptions`),
    then the dataset written with ``features`` (from :func:`tiktalk.dataset.load_features_dir`);
    its manifest. Each reference warning of the dataset goes to ``on_warning``."""
    from tiktalk.dataset import reference_warnings, write_dataset
    from tiktalk.importers import run_import

    result = run_import(importer, source, options)
    manifest = write_dataset(result.dataset, out, table_format=table_format, overwrite=overwrite,
                             extra_manifest={**result.manifest, "import": result.report},
                             extra_files=result.extra_files, features=features)
    for line in reference_warnings(result.dataset):
        (on_warning or (lambda _: None))(line)
    return manifest


def convert_kg(sources: list[str | Path], out: str | Path, *, trust_pickle: bool = False, overwrite: bool = False,
               on_notice: Notice = None) -> dict[str, Any]:
    """Release files, KB files or 'sample' into a canonical KG directory (``tiktalk kg convert``)."""
    import kg
    from tiktalk.io import output_lock

    resolved = [src for s in sources for src in kg.resolve_sources(str(s))]
    with output_lock(out, on_notice=on_notice):
        return kg.convert(resolved, out, trust_pickle=trust_pickle, overwrite=overwrite, on_notice=on_notice)


def gold_knowledge(data: str | Path, out: str | Path, budget: KnowledgeBudget | None,
                   *, overwrite: bool = False) -> dict[str, Any]:
    """The knowledge cache of the KB triples each response used (``tiktalk data gold-knowledge``)."""
    from retrieval.gold import write_gold_knowledge

    return write_gold_knowledge(data, out, budget, overwrite=overwrite)
