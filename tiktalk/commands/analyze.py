"""``tiktalk analyze stats|topics|interests|all``: the paper's dataset analyses
(:mod:`tiktalk.runs.analysis`): Table 2, Table 5, Table 6, and all of them into one directory."""

from __future__ import annotations

import argparse

from tiktalk.commands import add_group, add_json_flag, emit, encoder_help, writing


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="sample", metavar="DIR", help="built dataset directory, or 'sample' (default)")


def _out(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--out", required=required, default=None, metavar="DIR",
                   help="directory to write the tables (Markdown + JSON), tables and plots into"
                        + ("" if required else " (default: print only)"))
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _topic_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topics", default=None, metavar="FILE",
                   help="topic list: one name a line, or name<TAB>text to encode (default: the paper's ten "
                        "Douyin categories, encoded by their Chinese names)")
    p.add_argument("--encoder", default=None, help=encoder_help("comparing titles with topic names"))
    p.add_argument("--min-score", type=float, default=None, metavar="S",
                   help="videos whose best cosine is below S go to Others (default: no threshold)")


def _interest_options(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--frames", required=required, default=None, metavar="DIR",
                   help="video frames as image files under DIR/<video_id>/, in time order by file name")
    p.add_argument("--clip", required=required, default=None, metavar="LOCAL_DIR",
                   help="a local Chinese-CLIP checkpoint (transformers' ChineseCLIPModel; never downloaded)")
    p.add_argument("--responses", default=None, metavar="JSONL",
                   help="the responses relevant to vision: {\"dialogue_id\"} lines, e.g. `label score "
                        "--majority-out` (default: every response with a video)")
    p.add_argument("--device", default="cpu", help="torch device for Chinese-CLIP (default cpu)")


def register(sub: argparse._SubParsersAction) -> None:
    group = add_group(sub, "analyze", "the paper's dataset analyses: Table 2, Table 5 topics, Table 6 interests")

    p = group.add_parser("stats", help="Table 2: videos, dialogues, turns, Avg-v, Avg-t, Avg-l per split")
    _data(p)
    _out(p)
    add_json_flag(p)
    p.set_defaults(func=_stats)

    p = group.add_parser("topics", help="Table 5: each video to its most similar topic name (Sentence-BERT-style)")
    _data(p)
    _topic_options(p)
    _out(p)
    add_json_flag(p)
    p.set_defaults(func=_topics)

    p = group.add_parser("interests", help="Table 6: which fifth of the video holds each response's most similar "
                                           "frame (Chinese-CLIP)")
    _data(p)
    _interest_options(p, required=True)
    p.add_argument("--split", default=None, help="score one split only (default: all)")
    _out(p)
    add_json_flag(p)
    p.set_defaults(func=_interests)

    p = group.add_parser("all", help="every table the inputs allow, as Markdown + JSON beside the paper's numbers")
    _data(p)
    _topic_options(p)
    _interest_options(p, required=False)
    p.add_argument("--context-sheets", nargs="+", default=(), metavar="SHEET",
                   help="filled context-source sheets (Figure 2(b)); key: SHEET1's <stem>.key.json")
    p.add_argument("--knowledge-sheets", nargs="+", default=(), metavar="SHEET",
                   help="filled knowledge-type sheets (appendix A.3); key: SHEET1's <stem>.key.json")
    _out(p, required=True)
    add_json_flag(p)
    p.set_defaults(func=_all)


def _analysis(args: argparse.Namespace, run, render, **options) -> int:
    """Run one analysis; with ``--out``, as the only writer of it (``writing``), else in memory."""
    if args.out is None:
        result = run(args.data, **options)
    else:
        with writing(args.out):
            result = run(args.data, **options, out=args.out, overwrite=args.overwrite)
    emit(args, result, render)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from tiktalk.runs.analysis import render_stats, run_stats

    return _analysis(args, run_stats, render_stats)


def _topics(args: argparse.Namespace) -> int:
    from tiktalk.runs.analysis import render_topics, run_topics

    return _analysis(args, run_topics, render_topics, topics_file=args.topics, encoder=args.encoder,
                     min_score=args.min_score)


def _interests(args: argparse.Namespace) -> int:
    from tiktalk.runs.analysis import render_interests, run_interests

    return _analysis(args, run_interests, render_interests, frames=args.frames, clip=args.clip,
                     responses=args.responses, split=args.split, device=args.device)


def _all(args: argparse.Namespace) -> int:
    from tiktalk.runs.analysis import run_analysis_all

    with writing(args.out):
        summary = run_analysis_all(
            args.data, args.out, encoder=args.encoder, topics_file=args.topics, min_score=args.min_score,
            frames=args.frames, clip=args.clip, responses=args.responses, device=args.device,
            context_sheets=args.context_sheets, knowledge_sheets=args.knowledge_sheets, overwrite=args.overwrite)
    emit(args, summary, lambda s: f"wrote {s['out']}/analysis.md: " + ", ".join(
        f"{name} {'ran' if table.get('ran', True) else 'not run'}" for name, table in s["tables"].items()))
    return 0
