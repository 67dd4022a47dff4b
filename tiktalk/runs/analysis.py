"""The paper's dataset analyses as runs: Table 2, Table 5, Table 6, Figure 2(b) / A.3 labels.

Each ``run_*`` function reads a dataset, checks every input before it writes anything, and
(given ``out``) writes its files into one directory atomically; what it returns is what the
``tiktalk analyze`` / ``tiktalk label`` commands print under ``--json``. Every table carries
the paper's numbers, ``comparable_to_paper`` and, when not, ``why_not`` (what differs from
the paper's setting), plus ``caveats``: what the paper leaves unpublished, so that no run can
match it exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tiktalk.analysis import paper_numbers
from tiktalk.errors import UsageError

Files = dict[str, bytes | str]


def write_outputs(out: str | Path, files: Mapping[str, bytes | str], overwrite: bool = False) -> Path:
    """``files`` (name -> bytes or text) as the directory ``out``, replaced atomically."""
    from tiktalk.io import atomic_directory

    with atomic_directory(out, overwrite=overwrite) as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(out)


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n"


def _release_mismatches(dataset) -> list[str]:
    from tiktalk.paper import release_mismatches

    return release_mismatches(dataset.stats())


def _not_release(mismatches: list[str]) -> list[str]:
    if not mismatches:
        return []
    shown = "; ".join(mismatches[:3]) + (f"; ... ({len(mismatches)} differences)" if len(mismatches) > 3 else "")
    return [f"not the TikTalk release ({shown})"]


# ----------------------------------------------------------------------------- Table 2


def stats_table(dataset, data: str | Path) -> dict[str, Any]:
    """Table 2 of a loaded dataset, beside the paper's."""
    from tiktalk.analysis.stats import COLUMNS, data_division

    why_not = _not_release(_release_mismatches(dataset))
    return {"table": "Table 2", "data": str(data), "columns": list(COLUMNS), "splits": data_division(dataset),
            "paper": paper_numbers.TABLE2, "comparable_to_paper": not why_not, "why_not": why_not, "caveats": []}


def run_stats(data: str | Path, out: str | Path | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Table 2 (data division) of ``data``; with ``out``, table2.md and table2.json there."""
    from tiktalk.dataset import load_dataset

    result = stats_table(load_dataset(data), data)
    if out is not None:
        write_outputs(out, {"table2.md": render_stats(result) + "\n", "table2.json": _json(result)}, overwrite)
    return result


def render_stats(result: Mapping[str, Any]) -> str:
    from tiktalk.analysis.stats import render_data_division

    return render_data_division(result["splits"], result["paper"]) + _comparability(result)


def _comparability(result: Mapping[str, Any]) -> str:
    lines = [""]
    if result.get("comparable_to_paper"):
        lines.append("comparable to the paper: yes")
    else:
        lines.append("comparable to the paper: no -- " + "; ".join(result.get("why_not") or []))
    for caveat in result.get("caveats") or []:
        lines.append(f"caveat: {caveat}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- Table 5


def topics_table(dataset, data: str | Path, *, topics: Sequence | None = None, topics_file: str | Path | None = None,
                 encoder: str | None = None, min_score: float | None = None) -> tuple[dict[str, Any], Files]:
    """Table 5 of a loaded dataset, and its files (topics.parquet, topics.png)."""
    from retrieval.encoders import get_encoder
    from tiktalk.analysis.plots import bar_plot_png
    from tiktalk.analysis.topics import (
        DOUYIN_TOPICS,
        OTHERS,
        agreement,
        assign_topics,
        assignments_parquet,
        check_topics,
        read_topics,
    )

    if topics is None:
        topics = read_topics(topics_file) if topics_file is not None else DOUYIN_TOPICS
    topics = check_topics(topics, str(topics_file) if topics_file is not None else "topic list")
    default_topics = tuple(topics) == DOUYIN_TOPICS
    enc = get_encoder(encoder)
    videos = list(zip(dataset.videos["video_id"].to_list(), dataset.videos["title"].to_list()))
    assignment = assign_topics(videos, topics, lambda texts: enc.encode(texts, kind="query"), min_score)
    counts = assignment.counts()
    labels = dict(zip(dataset.videos["video_id"].to_list(), dataset.videos["topic"].to_list()))
    why_not = _not_release(_release_mismatches(dataset))
    if not default_topics:
        why_not.append("a topic list other than the paper's ten Douyin categories")
    caveats = [(f"the paper names neither its Sentence-BERT model (here {enc.name}) nor its {OTHERS} threshold "
               f"(here {'none' if min_score is None else min_score})")]
    notes = []
    if not videos:
        notes.append("the dataset has no videos (a text-only corpus): nothing to assign")
    no_text = sum(not t for t in assignment.texts)
    if no_text:
        notes.append(f"{no_text} video(s) without a title or description went to {OTHERS}")
    result = {"table": "Table 5", "data": str(data), "videos": len(videos), "counts": counts,
              "topics": [{"name": t.name, "text": t.text} for t in topics], "encoder": enc.name,
              "min_score": min_score, "no_text": no_text, "agreement": agreement(assignment, labels),
              "paper": paper_numbers.TABLE5 if default_topics else None,
              "comparable_to_paper": not why_not, "why_not": why_not, "caveats": caveats, "notes": notes}
    paper = [paper_numbers.TABLE5[name] / sum(paper_numbers.TABLE5.values()) for name in counts] \
        if default_topics else None
    total = max(1, len(videos))
    files = {"topics.parquet": assignments_parquet(assignment),
             "topics.png": bar_plot_png(list(counts), [n / total for n in counts.values()], title="Videos per topic",
                                        ylabel="share of videos", paper=paper)}
    return result, files


def run_topics(data: str | Path, *, topics_file: str | Path | None = None, encoder: str | None = None,
               min_score: float | None = None, out: str | Path | None = None,
               overwrite: bool = False) -> dict[str, Any]:
    """Table 5 of ``data``; with ``out``: topics.parquet (one row per video), topics.png, table5.md/json."""
    from tiktalk.dataset import load_dataset

    if topics_file is not None:  # a bad topic file fails before the dataset and encoder load
        from tiktalk.analysis.topics import read_topics

        read_topics(topics_file)
    result, files = topics_table(load_dataset(data), data, topics_file=topics_file, encoder=encoder,
                                 min_score=min_score)
    if out is not None:
        write_outputs(out, {**files, "table5.md": render_topics(result) + "\n", "table5.json": _json(result)},
                      overwrite)
    return result


def render_topics(result: Mapping[str, Any]) -> str:
    from tiktalk.analysis.topics import render_topics as render

    text = f"{result['videos']} videos, encoder {result['encoder']}\n\n" + render(result, result["paper"])
    for note in result.get("notes") or []:
        text += f"\nnote: {note}"
    return text + _comparability(result)


# ----------------------------------------------------------------------------- Table 6


def interest_items(dataset, responses: str | Path | None = None, split: str | None = None) -> list:
    """What Table 6 scores: the dialogues listed in ``responses`` (JSONL; see
    :func:`tiktalk.analysis.interests.read_responses`), else every dialogue with a video."""
    from tiktalk.analysis.interests import InterestItem, read_responses

    frame = dataset.dialogues if split is None else dataset.split(split).dialogues
    by_id = {r["dialogue_id"]: r for r in frame.select("dialogue_id", "video_id", "response").iter_rows(named=True)}
    if responses is None:
        return [InterestItem(d, r["video_id"], r["response"]) for d, r in by_id.items() if r["video_id"] is not None]
    items = []
    for row in read_responses(responses):
        found = by_id.get(row["dialogue_id"])
        if found is None:
            where = "" if split is None else f" split {split!r} of"
            raise UsageError(f"--responses {responses}: dialogue {row['dialogue_id']!r} is not in{where} the dataset")
        if found["video_id"] is None:
            raise UsageError(f"--responses {responses}: dialogue {row['dialogue_id']!r} has no video")
        items.append(InterestItem(row["dialogue_id"], found["video_id"], row.get("response") or found["response"]))
    return items


def interests_table(dataset, data: str | Path, *, frames: str | Path, clip: str | Path,
                    responses: str | Path | None = None, split: str | None = None,
                    device: str = "cpu") -> tuple[dict[str, Any], Files]:
    """Table 6 of a loaded dataset and its files (interests.parquet, interests.png)."""
    import io

    import polars as pl

    from tiktalk.analysis.interests import (
        BUCKETS,
        ChineseClipScorer,
        check_clip_dir,
        check_frames,
        score_interests,
    )
    from tiktalk.analysis.plots import bar_plot_png

    check_clip_dir(clip)
    items = interest_items(dataset, responses, split)
    if not items:
        raise UsageError("no responses to score (the dataset has no dialogue with a video"
                         + ("" if responses is None else f", or {responses} lists none relevant to vision") + ")")
    found = check_frames(frames, [item.video_id for item in items])
    scored = score_interests(items, found, ChineseClipScorer(clip, device=device))
    why_not = _not_release(_release_mismatches(dataset))
    if responses is None:
        why_not.append("every response scored, not only those annotated as relevant to vision (--responses)")
    result = {"table": "Table 6", "data": str(data), "frames": str(frames), "clip": str(clip),
              "responses": scored["responses"], "counts": scored["counts"], "shares": scored["shares"],
              "videos": len(found), "paper": paper_numbers.TABLE6, "comparable_to_paper": not why_not,
              "why_not": why_not,
              "caveats": [("the paper names neither its Chinese-CLIP size nor how it sampled frames "
                          "(here: the given frames, evenly spaced)")]}
    buf = io.BytesIO()
    pl.DataFrame(scored["rows"], schema={"dialogue_id": pl.String, "video_id": pl.String, "frame": pl.Int64,
                                         "frame_file": pl.String, "n_frames": pl.Int64, "position": pl.Float64,
                                         "bucket": pl.String, "score": pl.Float64}).write_parquet(buf)
    paper_total = sum(paper_numbers.TABLE6.values())
    files = {"interests.parquet": buf.getvalue(),
             "interests.png": bar_plot_png(list(BUCKETS), [scored["shares"][b] for b in BUCKETS],
                                           title="Most similar frame, by time segment", ylabel="share of responses",
                                           paper=[paper_numbers.TABLE6[b] / paper_total for b in BUCKETS])}
    return result, files


def run_interests(data: str | Path, *, frames: str | Path, clip: str | Path, responses: str | Path | None = None,
                  split: str | None = None, device: str = "cpu", out: str | Path | None = None,
                  overwrite: bool = False) -> dict[str, Any]:
    """Table 6 of ``data``; with ``out``: interests.parquet (each response's argmax frame),
    interests.png, table6.md/json."""
    from tiktalk.analysis.interests import check_clip_dir
    from tiktalk.dataset import load_dataset

    check_clip_dir(clip)  # before the dataset loads: the cheapest check first
    result, files = interests_table(load_dataset(data), data, frames=frames, clip=clip, responses=responses,
                                    split=split, device=device)
    if out is not None:
        write_outputs(out, {**files, "table6.md": render_interests(result) + "\n", "table6.json": _json(result)},
                      overwrite)
    return result


def render_interests(result: Mapping[str, Any]) -> str:
    from tiktalk.analysis.interests import render_interests as render

    return (f"{result['responses']} responses over {result['videos']} videos\n\n"
            + render(result, result["paper"]) + _comparability(result))


# ----------------------------------------------------------------------------- labels


def _label_pool(data: str | Path, split: str | None, items: str | Path | None, require: str | None) -> list[dict]:
    from tiktalk.analysis.labels import read_dialogue_list
    from tiktalk.dataset import load_dataset

    dataset = load_dataset(data)
    frame = dataset.dialogues if split is None else dataset.split(split).dialogues
    titles = dict(zip(dataset.videos["video_id"].to_list(), dataset.videos["title"].to_list()))
    rows = {r["dialogue_id"]: {**r, "title": titles.get(r["video_id"])} for r in
            frame.select("dialogue_id", "video_id", "context", "response").iter_rows(named=True)}
    if items is None:
        return list(rows.values())
    wanted = read_dialogue_list(items, option="--items", require_source=require)
    unknown = [w["dialogue_id"] for w in wanted if w["dialogue_id"] not in rows]
    if unknown:
        raise UsageError(f"--items {items}: dialogue {unknown[0]!r} is not in {data}")
    return [rows[w["dialogue_id"]] for w in wanted]


def run_label_export(task: str, data: Sequence[str | Path], out: str | Path, *, n: int = 300, seed: int = 0,
                     split: str | None = None, items: str | Path | None = None,
                     overwrite: bool = False) -> dict[str, Any]:
    """A blind annotation sheet of ``n`` responses per corpus of ``data`` (+ its key beside it).

    ``items`` (JSONL of dialogue ids, one corpus only) limits the draw; for knowledge-type,
    lines with ``sources`` count only when they include knowledge (``label score --majority-out``).
    """
    from tiktalk.analysis.labels import build_label_sheet, get_task, write_label_sheet

    label_task = get_task(task)
    if items is not None and len(data) != 1:
        raise UsageError(f"--items lists dialogues of one corpus, got {len(data)} --data")
    names = [Path(str(d)).name or str(d) for d in data]
    if len(set(names)) != len(names):
        raise UsageError(f"two --data share a name ({names}): the key could not tell them apart")
    require = "knowledge" if task == "knowledge-type" else None
    pools = {name: _label_pool(d, split, items, require) for name, d in zip(names, data)}
    sheet = build_label_sheet(label_task, pools, n=n, seed=seed)
    key_path = write_label_sheet(out, sheet, overwrite=overwrite, provenance={
        "data": {name: str(d) for name, d in zip(names, data)}, "split": split,
        "items_file": None if items is None else str(items)})
    return {"task": task, "sheet": str(out), "key": str(key_path), "rows": len(sheet.rows), "sampled": sheet.sampled,
            "requested": n, "seed": seed, "notes": sheet.notes}


def label_table(task: str, sheets: Sequence[str | Path], key: str | Path | None) -> dict[str, Any]:
    from tiktalk.analysis.labels import get_task, score_label_sheets

    result = score_label_sheets(get_task(task), sheets, key)
    if task == "context-source":
        result.update(table="Figure 2(b)", paper=paper_numbers.FIGURE2B_TIKTALK,
                      caveats=["the paper's text share is given only as 'close to 80%'"])
        why_not = [] if result["scored"] >= paper_numbers.FIGURE2B_SAMPLE["responses"] else [
            (f"{result['scored']} responses labelled, the paper {paper_numbers.FIGURE2B_SAMPLE['responses']:,} "
            f"(of {paper_numbers.FIGURE2B_SAMPLE['videos']} TikTalk videos)")]
    else:
        result.update(table="Appendix A.3", paper=paper_numbers.KNOWLEDGE_TYPES, caveats=[])
        why_not = [] if result["scored"] >= 100 else [f"{result['scored']} responses labelled, the paper 100"]
    if key is None:
        why_not.append("no key: the corpus of each item is unknown")
    result.update(comparable_to_paper=not why_not, why_not=why_not)
    return result


def run_label_score(task: str, sheets: Sequence[str | Path], key: str | Path | None = None,
                    majority_out: str | Path | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Shares and Fleiss' kappa of filled sheets; ``key`` defaults to the first sheet's
    ``<stem>.key.json`` when it exists. ``majority_out``: JSONL of each item's majority labels
    (``--responses`` of ``analyze interests``, ``--items`` of a knowledge-type export)."""
    from tiktalk.human_eval import key_path_for
    from tiktalk.io import atomic_write_text

    if key is None:
        default = key_path_for(sheets[0])
        key = default if default.exists() else None
    result = label_table(task, sheets, key)
    if majority_out is not None:
        if Path(majority_out).exists() and not overwrite:
            from tiktalk.errors import OutputExistsError

            raise OutputExistsError(f"{majority_out} exists (pass --overwrite to replace it)")
        atomic_write_text(majority_out, "".join(json.dumps(row, ensure_ascii=False) + "\n"
                                                for row in result["majority"]))
    return result


def render_labels(result: Mapping[str, Any]) -> str:
    from tiktalk.analysis.labels import render_label_scores

    return render_label_scores(result, result["paper"]) + _comparability(result)


# ----------------------------------------------------------------------------- all


def run_analysis_all(data: str | Path, out: str | Path, *, encoder: str | None = None,
                     topics_file: str | Path | None = None, min_score: float | None = None,
                     frames: str | Path | None = None, clip: str | Path | None = None,
                     responses: str | Path | None = None, device: str = "cpu",
                     context_sheets: Sequence[str | Path] = (), context_key: str | Path | None = None,
                     knowledge_sheets: Sequence[str | Path] = (), knowledge_key: str | Path | None = None,
                     overwrite: bool = False) -> dict[str, Any]:
    """Every analysis the inputs allow, into ``out``: one Markdown + JSON per table (beside the
    paper's numbers), their Parquet and plots, and analysis.md / analysis.json with them all.
    A table without its inputs (Table 6 needs frames and a Chinese-CLIP; the label tables
    filled sheets) is listed as not run, with the reason."""
    from tiktalk.dataset import load_dataset
    from tiktalk.human_eval import key_path_for

    if (frames is None) != (clip is None):
        raise UsageError("Table 6 needs both --frames and --clip (or neither)")
    if topics_file is not None:
        from tiktalk.analysis.topics import read_topics

        read_topics(topics_file)
    if clip is not None:
        from tiktalk.analysis.interests import check_clip_dir

        check_clip_dir(clip)
    dataset = load_dataset(data)
    tables: dict[str, dict[str, Any]] = {}
    files: Files = {}
    markdown: list[str] = [f"# Dataset analyses of {data}", ""]

    def add(name: str, title: str, result: dict[str, Any], text: str, extra: Files | None = None) -> None:
        tables[name] = result
        files[f"{name}.md"] = f"# {title}\n\n{text}\n"
        files[f"{name}.json"] = _json(result)
        files.update(extra or {})
        markdown.extend([f"## {title}", "", text, ""])

    def skip(name: str, title: str, why: str) -> None:
        tables[name] = {"ran": False, "why": why}
        markdown.extend([f"## {title}", "", f"not run: {why}", ""])

    stats = stats_table(dataset, data)
    add("table2", "Table 2: data division", stats, render_stats(stats))
    topics, topic_files = topics_table(dataset, data, topics_file=topics_file, encoder=encoder, min_score=min_score)
    add("table5", "Table 5: videos per topic", topics, render_topics(topics), topic_files)
    if frames is not None:
        interests, interest_files = interests_table(dataset, data, frames=frames, clip=clip, responses=responses,
                                                    device=device)
        add("table6", "Table 6: human interests in the visual modality", interests, render_interests(interests),
            interest_files)
    else:
        skip("table6", "Table 6: human interests in the visual modality",
             "needs video frames (--frames) and a local Chinese-CLIP (--clip)")
    for name, title, task, sheets, key in (
            ("figure2b", "Figure 2(b): context sources", "context-source", context_sheets, context_key),
            ("knowledge_types", "Appendix A.3: knowledge types", "knowledge-type", knowledge_sheets, knowledge_key)):
        if sheets:
            if key is None:
                default = key_path_for(sheets[0])
                key = default if default.exists() else None
            result = label_table(task, sheets, key)
            add(name, title, result, render_labels(result))
        else:
            skip(name, title, f"needs filled {task} sheets (`tiktalk label export --task {task}`, then annotators)")
    summary = {"data": str(data), "out": str(out), "tables": tables}
    files["analysis.md"] = "\n".join(markdown)
    files["analysis.json"] = _json(summary)
    write_outputs(out, files, overwrite)
    return summary
