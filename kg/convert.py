"""Release files -> canonical tables (nodes, edges) -> an atomically written directory.

The canonical form is a directory holding ``nodes.parquet``, ``edges.parquet`` and
``manifest.json``. Tables are sorted and written with fixed settings, so converting the
same sources twice gives byte-identical files.

``nodes``: ``id`` (the node string, as in C3KG.GRAPH), ``kind``, ``text_zh``, ``text_en``,
``text_replaced``. ``edges``: ``source``, ``target``, ``type``, ``weight``, ``family``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from kg import readers
from kg.errors import KGFormatError
from kg.schema import (
    ATOMIC_FAMILY,
    ATTRIBUTE_FAMILY,
    FLOW_FAMILIES,
    FORMAT_VERSION,
    MAX_WEIGHT,
    PHYSICAL_RELATIONS,
    NodeKind,
    family_of,
    is_known_type,
)
from tiktalk.errors import FormatError
from tiktalk.io import (
    atomic_directory,
    canonical_json,
    read_generation,
    read_json,
    recover_directory,
    sha256_file,
)

NODES_FILE, EDGES_FILE, MANIFEST_FILE = "nodes.parquet", "edges.parquet", "manifest.json"
NODE_SCHEMA = {
    "id": pl.String, "kind": pl.String, "text_zh": pl.String,
    "text_en": pl.String, "text_replaced": pl.String,
}
EDGE_SCHEMA = {
    "source": pl.String, "target": pl.String, "type": pl.String,
    "weight": pl.Int64, "family": pl.String,
}
_CJK = re.compile(r"[\u3400-\u9fff]")
_PERSON = re.compile(r"\bPerson[XYZ]\b")


@dataclass
class ConversionReport:
    """What the converter read, merged, skipped and could not classify."""

    sources: list[dict] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # README.md, LICENSE... inside directories
    skipped_none_tails: int = 0
    atomic2020_unmatched_triples: int = 0
    atomic2020_matched_heads: int = 0
    duplicate_edges_merged: int = 0
    merged_translations: int = 0
    kb_triples: int = 0  # rows of KB JSON files, before duplicates merge
    unknown_types: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "sources": self.sources,
            "skipped_files": self.skipped_files,
            "skipped_none_tails": self.skipped_none_tails,
            "atomic2020_unmatched_triples": self.atomic2020_unmatched_triples,
            "atomic2020_matched_heads": self.atomic2020_matched_heads,
            "duplicate_edges_merged": self.duplicate_edges_merged,
            "merged_translations": self.merged_translations,
            "kb_triples": self.kb_triples,
            "unknown_types": dict(sorted(self.unknown_types.items())),
        }


def expand_sources(sources) -> tuple[list[tuple[Path, str]], list[str]]:
    """Paths (files or directories of release files) -> sorted (path, format) pairs, and the
    names of the known non-KG files skipped inside directories (README.md, LICENSE, ...)."""
    out: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            files, skipped_here = readers.release_files(src)
            out.extend(files)
            skipped.extend(skipped_here)
        elif src.exists():
            out.append((src, readers.sniff_format(src)))
        else:
            raise KGFormatError("file not found", path=src)
    return out, sorted(skipped)


def build_tables(sources, *, trust_pickle: bool = False) -> tuple[pl.DataFrame, pl.DataFrame, ConversionReport]:
    """Read every source and join them into canonical (nodes, edges) tables.

    ATOMIC-2020 English triples attach to the Chinese heads of the head CSVs through the
    English head. KB triples (entity, attribute, value) become edges entity -> value typed by
    the attribute name, family ``attribute``. When head CSVs are given, English triples whose head is not among them
    are dropped and counted (``atomic2020_unmatched_triples``); without head CSVs they are
    kept with their English text.
    """
    report = ConversionReport()
    files, report.skipped_files = expand_sources(sources)
    parts = readers.ReleaseParts()
    for path, fmt in files:
        report.sources.append({"name": path.name, "format": fmt, "sha256": sha256_file(path)})
        readers.FORMATS.get(fmt).read(path, parts, trust_pickle)
    report.sources.sort(key=lambda s: (s["name"], s["sha256"]))

    # Head CSVs: English -> Chinese, Chinese -> (kind, English, replaced).
    en_to_zh: dict[str, str] = {}
    head_info: dict[str, tuple[str, str, str]] = {}
    for rec in sorted(parts.heads, key=lambda r: (r.chinese, r.kind != "event-head", r.english)):
        en_to_zh.setdefault(rec.english, rec.chinese)
        if rec.chinese in head_info:
            report.merged_translations += 1
            continue
        head_info[rec.chinese] = (rec.kind, rec.english, rec.replaced)

    # Edges as a Counter over (source, target, type): duplicates merge by adding weights.
    weights: Counter[tuple[str, str, str]] = Counter()
    seen: set[tuple[str, str, str]] = set()

    def add(source: str, target: str, edge_type: str, weight: int) -> None:
        key = (source, target, edge_type)
        if key in seen:
            report.duplicate_edges_merged += 1
        seen.add(key)
        weights[key] += weight

    for table in parts.atomic_zh:
        report.skipped_none_tails += table.skipped_none_tails
        for h, r, t in zip(table.heads, table.relations, table.tails):
            add(h, t, r, 1)
    matched: set[str] = set()
    for table in parts.atomic_en:
        report.skipped_none_tails += table.skipped_none_tails
        for h, r, t in zip(table.heads, table.relations, table.tails):
            zh = en_to_zh.get(h)
            if zh is None and head_info:
                report.atomic2020_unmatched_triples += 1
                continue
            if zh is not None:
                matched.add(h)
            add(zh or h, t, r, 1)
    report.atomic2020_matched_heads = len(matched)
    for table in parts.edges:
        for s, t, ty, w in zip(table.sources, table.targets, table.types, table.weights):
            add(s, t, ty, w)
    kb_keys: set[tuple[str, str, str]] = set()
    for table in parts.kb:
        report.skipped_none_tails += table.skipped_none_tails
        report.kb_triples += len(table)
        for h, r, t in zip(table.heads, table.relations, table.tails):
            add(h, t, r, 1)
            kb_keys.add((h, t, r))

    heavy = next(((key, w) for key, w in weights.items() if w > MAX_WEIGHT), None)
    if heavy is not None:  # each weight was checked; only a merged sum can overflow int64
        (s, t, ty), w = heavy
        raise KGFormatError(
            f"edge {s!r} -> {t!r} ({ty}): the weights merged from duplicate edges sum above the "
            f"int64 maximum {MAX_WEIGHT}",
            path=", ".join(src["name"] for src in report.sources), field="weight", value=w,
        )
    unknown = Counter(key[2] for key in weights if key not in kb_keys and not is_known_type(key[2]))
    report.unknown_types = dict(unknown)

    edges = pl.DataFrame(
        {
            "source": [k[0] for k in weights],
            "target": [k[1] for k in weights],
            "type": [k[2] for k in weights],
            "weight": list(weights.values()),
            "family": [ATTRIBUTE_FAMILY if k in kb_keys else family_of(k[2]) for k in weights],
        },
        schema=EDGE_SCHEMA,
    ).sort(["source", "type", "target"])

    nodes = _classify_nodes(edges, head_info, parts.isolated)
    if nodes.is_empty():  # e.g. every triple had a "none" tail
        raise KGFormatError("the sources hold no nodes (every row was skipped)",
                            path=", ".join(src["name"] for src in report.sources))
    return nodes, edges, report


def _classify_nodes(
    edges: pl.DataFrame, head_info: dict[str, tuple[str, str, str]], isolated: set[str]
) -> pl.DataFrame:
    """Give every node one kind, by precedence (documented in the README):

    1. listed in a head CSV -> its kind; 2. endpoint of an event-flow edge -> event-head;
    3. source of ATOMIC relations -> phrase-head if all are physical-entity relations and
    it does not mention PersonX/Y, else event-head; 4. endpoint of next_entity, or source of
    KB attributes -> entity; 5. source of an emotion-flow edge -> emotion; 6. otherwise -> tail.
    """
    src, tgt, typ, fam = (edges[c].to_list() for c in ("source", "target", "type", "family"))
    event_flow: set[str] = set()
    concept: set[str] = set()
    emotion_src: set[str] = set()
    relations_of: dict[str, set[str]] = {}
    all_nodes: set[str] = set(isolated) | set(head_info)
    for s, t, ty, f in zip(src, tgt, typ, fam):
        all_nodes.add(s)
        all_nodes.add(t)
        if f == "event":
            event_flow.update((s, t))
        elif f == "concept":
            concept.update((s, t))
        elif f == ATTRIBUTE_FAMILY:
            concept.add(s)
        elif f == "emotion":
            emotion_src.add(s)
        elif f == ATOMIC_FAMILY:
            relations_of.setdefault(s, set()).add(ty)
    phys = set(PHYSICAL_RELATIONS)
    ids = sorted(all_nodes)
    kinds, zh, en, rep = [], [], [], []
    for node in ids:
        if node in head_info:
            kind, english, replaced = head_info[node]
        else:
            english = replaced = None
            if node in event_flow:
                kind = NodeKind.EVENT_HEAD.value
            elif node in relations_of:
                is_phrase = relations_of[node] <= phys and not _PERSON.search(node)
                kind = (NodeKind.PHRASE_HEAD if is_phrase else NodeKind.EVENT_HEAD).value
            elif node in concept:
                kind = NodeKind.ENTITY.value
            elif node in emotion_src:
                kind = NodeKind.EMOTION.value
            else:
                kind = NodeKind.TAIL.value
            if not _CJK.search(node):
                english = node
                replaced = _replace_persons(node)
        kinds.append(kind)
        zh.append(node if _CJK.search(node) else None)
        en.append(english)
        rep.append(replaced)
    return pl.DataFrame(
        {"id": ids, "kind": kinds, "text_zh": zh, "text_en": en, "text_replaced": rep},
        schema=NODE_SCHEMA,
    )


def _replace_persons(text: str) -> str:
    """C3KG's head_replaced rule: PersonX -> someone, PersonY -> someone else, ___ -> something."""
    text = re.sub(r"\bPersonX\b", "someone", text)
    text = re.sub(r"\bPerson[YZ]\b", "someone else", text)
    return text.replace("___", "something")


def content_sha256(nodes: pl.DataFrame, edges: pl.DataFrame) -> str:
    """A hash of the graph's content, independent of the Parquet writer."""
    digest = hashlib.sha256()
    for name, table in (("nodes", nodes), ("edges", edges)):
        digest.update(name.encode())
        for row in table.iter_rows():
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()


def table_counts(nodes: pl.DataFrame, edges: pl.DataFrame) -> dict:
    by_kind = dict(nodes.group_by("kind").len().sort("kind").iter_rows())
    by_family = dict(edges.group_by("family").len().sort("family").iter_rows())
    return {"nodes": nodes.height, "edges": edges.height, "nodes_by_kind": by_kind, "edges_by_family": by_family}


def write_canonical(
    nodes: pl.DataFrame,
    edges: pl.DataFrame,
    out: str | Path,
    report: ConversionReport | None = None,
    *,
    overwrite: bool = False,
    on_notice: Callable[[str], None] | None = None,
) -> Path:
    """Write the canonical directory atomically (temporary sibling, then rename); ``on_notice``
    hears what :func:`tiktalk.io.atomic_directory` recovered or removed first."""
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite, on_notice=on_notice) as tmp:
        # Fixed settings and a single row group: same tables -> same bytes.
        for table, name in ((nodes, NODES_FILE), (edges, EDGES_FILE)):
            table.write_parquet(tmp / name, compression="zstd", compression_level=3, statistics=True,
                                row_group_size=max(1, table.height))
        manifest = {
            "format": "tiktalk-kg/c3kg",
            "format_version": FORMAT_VERSION,
            "counts": table_counts(nodes, edges),
            "content_sha256": content_sha256(nodes, edges),
            "tables": {name: sha256_file(tmp / name) for name in (NODES_FILE, EDGES_FILE)},
            "flow_families": {k: list(v) for k, v in FLOW_FAMILIES.items()},
            "report": report.as_dict() if report else {},
        }
        (tmp / MANIFEST_FILE).write_text(canonical_json(manifest), encoding="utf-8")
    return out


def convert(sources, out: str | Path, *, trust_pickle: bool = False, overwrite: bool = False,
            on_notice: Callable[[str], None] | None = None) -> dict:
    """Convert release files into the canonical directory ``out``; returns the manifest.
    Relation types outside the C3KG schema are kept (family ``unknown``) and ``on_notice``
    hears of them, besides the manifest's ``report.unknown_types``."""
    nodes, edges, report = build_tables(sources, trust_pickle=trust_pickle)
    if report.unknown_types and on_notice is not None:
        shown = ", ".join(f"{name!r} ({n})" for name, n in sorted(report.unknown_types.items())[:10])
        more = len(report.unknown_types) - 10
        on_notice(f"{sum(report.unknown_types.values())} edges have relation types outside the C3KG schema, "
                  f"kept in family 'unknown' (manifest.json report.unknown_types): {shown}"
                  + (f" and {more} more" if more > 0 else ""))
    write_canonical(nodes, edges, out, report, overwrite=overwrite, on_notice=on_notice)
    return json.loads((Path(out) / MANIFEST_FILE).read_text(encoding="utf-8"))


def read_canonical(path: str | Path) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Read a canonical directory, checking every table against the manifest's sha256.

    A directory left missing by an interrupted replacement is restored first."""
    path = Path(path)
    recover_directory(path)
    # a concurrent `kg convert --overwrite` may swap the directory mid-read: read it again
    return read_generation(path, lambda: _read_canonical_files(path))


def _read_canonical_files(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise KGFormatError(f"no {MANIFEST_FILE}: not a converted KG directory", path=path)
    try:
        manifest = read_json(manifest_path)
    except FormatError as err:
        raise KGFormatError(err.reason, path=manifest_path, line=err.line) from None
    if not isinstance(manifest, dict):
        raise KGFormatError(f"expected a JSON object, got {type(manifest).__name__}", path=manifest_path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise KGFormatError(
            f"format version {manifest.get('format_version')!r} is not {FORMAT_VERSION}",
            path=manifest_path, field="format_version", value=manifest.get("format_version"),
        )
    recorded = manifest.get("tables")
    if not isinstance(recorded, dict):
        raise KGFormatError("expected an object of table sha256s", path=manifest_path, field="tables",
                            value=recorded)
    tables = []
    for name, schema in ((NODES_FILE, NODE_SCHEMA), (EDGES_FILE, EDGE_SCHEMA)):
        file = path / name
        if not file.is_file():
            raise KGFormatError("missing table", path=file)
        expected = recorded.get(name)
        if not isinstance(expected, str):
            raise KGFormatError("no sha256 recorded for the table; refusing to read it unchecked",
                                path=manifest_path, field=f"tables.{name}", value=expected)
        data = file.read_bytes()  # hashed and parsed from the same bytes
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise KGFormatError(
                f"sha256 {actual[:12]}... differs from the manifest's {str(expected)[:12]}... "
                "(corrupt or edited)", path=file,
            )
        try:
            table = pl.read_parquet(io.BytesIO(data))
        except (pl.exceptions.PolarsError, OSError, ValueError) as err:
            raise KGFormatError(f"not a readable Parquet table ({str(err).splitlines()[0][:200]})",
                                path=file) from None
        if dict(table.schema) != schema:
            raise KGFormatError(f"schema {dict(table.schema)} is not {schema}", path=file)
        tables.append(table)
    check_tables(tables[0], tables[1], path)
    return tables[0], tables[1], manifest


def check_tables(nodes: pl.DataFrame, edges: pl.DataFrame, where: Path) -> None:
    """Structural checks a matching hash cannot give: unique node ids, every edge between
    known nodes, weights from 0 to the int64 maximum, no null ids or types."""
    nodes_file, edges_file = where / NODES_FILE, where / EDGES_FILE
    if nodes["id"].null_count() or nodes["kind"].null_count():
        raise KGFormatError("a node has no id or kind", path=nodes_file)
    duplicated = nodes.filter(pl.col("id").is_duplicated())
    if duplicated.height:
        raise KGFormatError("duplicate node id", path=nodes_file, field="id", value=duplicated["id"][0])
    for column in ("source", "target", "type", "weight"):
        if edges[column].null_count():
            raise KGFormatError(f"an edge has no {column}", path=edges_file, field=column)
    known = nodes["id"]
    for column in ("source", "target"):
        dangling = edges.filter(~pl.col(column).is_in(known.implode()))
        if dangling.height:
            raise KGFormatError(f"edge {column} is not a node of {NODES_FILE} ({dangling.height} dangling edges)",
                                path=edges_file, field=column, value=dangling[column][0])
    negative = edges.filter(pl.col("weight") < 0)
    if negative.height:
        raise KGFormatError(f"negative edge weight ({negative.height} edges)", path=edges_file, field="weight",
                            value=int(negative["weight"][0]))
