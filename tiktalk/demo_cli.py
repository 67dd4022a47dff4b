"""``tiktalk demo``: the main job end to end on the shipped samples, offline.

Stages run in order, each printing what it did; every artefact lands under ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tiktalk.cli import add_json_flag, emit

DEMO_HEADS = ("有人买披萨", "有人带狗去公园", "火锅")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the shipped samples (offline)")
    p.add_argument("--out", default="demo_out", help="working directory (default: demo_out)")
    add_json_flag(p)
    p.set_defaults(func=_demo)


def _banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def stage_kg(out: Path) -> dict:
    import kg
    from kg.cli import _render_stats

    _banner("1. C3KG: convert the sample release files, stats, flows")
    manifest = kg.convert([kg.sample_dir()], out / "kg", overwrite=True)
    graph = kg.load_kg(out / "kg")
    print(f"converted sample -> {out / 'kg'} (content sha256 {manifest['content_sha256'][:12]})")
    print(_render_stats(graph.stats()))
    heads = [h for h in DEMO_HEADS if h in graph] or graph.heads()[:3]
    for head in heads:
        item = graph.flows(head, depth=1, fanout=2, top_k_tails=2)
        print(f"\n{head} [{item.kind}]")
        print("  " + kg.linearize([item], kg.LinearizeConfig(max_chars=120)).text)
    return {"kg": str(out / "kg"), "content_sha256": manifest["content_sha256"]}


STAGES = (stage_kg,)


def _demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    start = time.perf_counter()
    for stage in STAGES:
        summary[stage.__name__.removeprefix("stage_")] = stage(out)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    _banner(f"done in {summary['seconds']} s; artefacts under {out}/")
    if args.json:
        emit(args, summary)
    return 0
