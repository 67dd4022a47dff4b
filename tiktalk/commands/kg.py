"""``tiktalk kg convert|stats|flows``."""

from __future__ import annotations

import argparse

from tiktalk.commands import add_group, add_json_flag, emit, kg_formats_help, print_notice
from tiktalk.options import POSITIVE_INT


def register(sub: argparse._SubParsersAction) -> None:
    kg_sub = add_group(sub, "kg", "convert, inspect and query the C3KG graph")

    p = kg_sub.add_parser(
        "convert",
        help=kg_formats_help(),
    )
    p.add_argument("sources", nargs="+", metavar="SRC")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--trust-pickle", action="store_true", help="allow reading C3KG.GRAPH (a pickle)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_json_flag(p)
    p.set_defaults(func=_convert)

    p = kg_sub.add_parser("stats", help="counts of heads, tails, triples and flow edges")
    p.add_argument("kg", metavar="DIR", nargs="+", help="converted KG directory, release files, or 'sample'")
    p.add_argument("--trust-pickle", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=_stats)

    p = kg_sub.add_parser("flows", help="tails per relation and flow edges per family of a head")
    p.add_argument("kg", metavar="DIR", help="converted KG directory, release files, or 'sample'")
    p.add_argument("head", metavar="HEAD", nargs="+", help="head text(s), e.g. 有人买披萨")
    p.add_argument("--depth", type=POSITIVE_INT.parse("--depth"), default=1, help="flow depth (default 1)")
    p.add_argument("--fanout", type=POSITIVE_INT.parse("--fanout"), default=None, help="best edges kept per node and family")
    p.add_argument("--top-k-tails", type=POSITIVE_INT.parse("--top-k-tails"), default=None, help="tails kept per relation")
    p.add_argument("--families", default=None, help="comma-separated: event,concept,emotion")
    p.add_argument("--max-tokens", type=POSITIVE_INT.parse("--max-tokens"), default=None,
                   help="knowledge-segment budget in characters, cut between pieces (default: uncut)")
    p.add_argument("--trust-pickle", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=_flows)


def _convert(args: argparse.Namespace) -> int:
    from tiktalk.io import refuse_overlap
    from tiktalk.runs.pipeline import convert_kg

    refuse_overlap(args.out, [("SRC", source) for source in args.sources])

    manifest = convert_kg(args.sources, args.out, trust_pickle=args.trust_pickle, overwrite=args.overwrite,
                          on_notice=print_notice)
    skipped = manifest["report"]["skipped_files"]
    emit(args, manifest, lambda m: f"wrote {args.out}: {m['counts']['nodes']} nodes, "
         f"{m['counts']['edges']} edges (content sha256 {m['content_sha256'][:12]})"
         + (f"\nskipped (not KG files): {', '.join(skipped)}" if skipped else ""))
    return 0


def _stats(args: argparse.Namespace) -> int:
    import kg
    from tiktalk.runs.reports import render_kg_stats

    emit(args, kg.load_kg(args.kg, trust_pickle=args.trust_pickle).stats(), render_kg_stats)
    return 0


def _flows(args: argparse.Namespace) -> int:
    import kg
    from tiktalk.types import KnowledgeBudget

    graph = kg.load_kg(args.kg, trust_pickle=args.trust_pickle)
    families = args.families.split(",") if args.families else None
    items = [
        graph.flows(h, families=families, depth=args.depth, fanout=args.fanout, top_k_tails=args.top_k_tails)
        for h in args.head
    ]
    budget = None if args.max_tokens is None else KnowledgeBudget(args.max_tokens)
    knowledge = kg.linearize(items, budget=budget)
    result = {"heads": [i.as_dict() for i in items], "knowledge": knowledge.text}

    def render(r: dict) -> str:
        lines = []
        for item in r["heads"]:
            lines.append(f"{item['head']}  [{item['kind']}]")
            for rel, tails in [*item["relations"].items(), *item["attributes"].items()]:
                lines.append(f"  {rel:<12} " + "、".join(f"{t}({w})" for t, w in tails))
            for fam, edges in item["flows"].items():
                for e in edges:
                    lines.append(f"  {fam:<8}{'  ' * e['depth']}{e['source']} -{e['type']}({e['weight']})-> {e['target']}")
        lines.append(f"knowledge: {r['knowledge']}")
        return "\n".join(lines)

    emit(args, result, render)
    return 0
