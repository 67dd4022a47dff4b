"""``make demo`` stage: build the sample index with the default encoder, retrieve for a few contexts."""

from __future__ import annotations

from pathlib import Path

DEMO_CONTEXTS: tuple[tuple[str, ...], ...] = (
    ("深夜来了个意式大饼，芝士拉丝拉老长", "看得我口水直流"),
    ("回家一看客厅全是棉花，二哈干的好事",),
    ("周末登顶了，一千多级台阶", "腿到现在还在抖"),
    ("十连又是全紫，非酋本酋",),
)


def run_demo(out_dir: str | Path, encoder: str | None = None, top_k: int = 3) -> dict:
    """Build ``<out_dir>/index`` from the sample KG, print the knowledge for DEMO_CONTEXTS.

    Returns ``{"index": path, "results": [retrieval dicts]}``.
    """
    import kg
    from retrieval.encoders import get_encoder
    from retrieval.index import build_head_index
    from retrieval.retriever import Retriever, RetrieverConfig
    from retrieval.search import configure_threads

    configure_threads()
    out = Path(out_dir) / "index"
    graph = kg.load_kg("sample")
    enc = get_encoder(encoder)
    index = build_head_index(graph, enc, out, overwrite=True, kg_source="sample", progress=True)
    print(f"built {out}: {len(index)} heads {index.manifest['counts']}, {enc.name} d={enc.dim}")
    retriever = Retriever(index, graph, enc, RetrieverConfig(top_k=top_k))
    results = []
    for context, result in zip(DEMO_CONTEXTS, retriever.retrieve_batch([list(c) for c in DEMO_CONTEXTS])):
        print(f"\ncontext: {' / '.join(context)}")
        for h in result.heads:
            print(f"  {h.score:.3f}  {h.text}  [{h.family}]")
        print(f"  knowledge: {result.knowledge}")
        results.append(result.as_dict())
    return {"index": str(out), "results": results}
