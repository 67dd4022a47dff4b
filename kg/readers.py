"""Readers for every real C3KG release format, each returning plain records.

Formats (SPEC section 1):

* ``ATOMIC_Chinese.tsv``: a pandas index column, then ``head``, ``relation``, ``tail``.
* ``head_shortSentence.csv`` / ``head_phrase.csv``: utf-8-sig, an unnamed index column,
  then ``head`` (English), ``head_replaced``, ``head_translated`` (Chinese).
* ATOMIC-2020 English: ``head<TAB>relation<TAB>tail`` or ``head @@ relation<TAB>t1| t2``.
* Flow edges (this project's text form of C3KG's dialogue flows): a header
  ``source<TAB>target<TAB>type<TAB>weight``.
* A knowledge base as JSON (KdConv's ``kb_<domain>.json``): an object entity -> its
  ``[entity, attribute, value]`` triples, or entity -> {attribute: value or [values]}.
  Not C3KG: a generic triple graph whose relations are the KB's own attribute names.
* ``C3KG.GRAPH``: see :mod:`kg.pickle_io` (opt-in only).

:data:`FORMATS` is the one table of these formats (reader, suffixes, how to recognise a
file); :func:`sniff_format` and :func:`release_files` (a directory) both read it.

Every problem raises one :class:`~kg.errors.KGFormatError` naming file, line and field.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kg.errors import KGFormatError
from kg.schema import MAX_WEIGHT, NodeKind
from tiktalk.errors import MissingInputError
from tiktalk.io import DuplicateKeyError, lone_surrogate, open_input, unique_keys
from tiktalk.registry import Registry

NONE_TAILS = frozenset({"", "none"})  # ATOMIC's "no inference" marker
FLOW_HEADER = ("source", "target", "type", "weight")


@dataclass(frozen=True)
class HeadRecord:
    """One row of a head CSV. ``kind`` is ``event-head`` or ``phrase-head``."""

    english: str
    replaced: str
    chinese: str
    kind: str
    line: int


@dataclass
class TripleTable:
    """Columnar (head, relation, tail) rows plus what was skipped while reading."""

    heads: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    tails: list[str] = field(default_factory=list)
    skipped_none_tails: int = 0

    def __len__(self) -> int:
        return len(self.heads)

    def append(self, head: str, relation: str, tail: str) -> None:
        self.heads.append(head)
        self.relations.append(relation)
        self.tails.append(tail)


@dataclass
class EdgeTable:
    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sources)

    def append(self, source: str, target: str, edge_type: str, weight: int) -> None:
        self.sources.append(source)
        self.targets.append(target)
        self.types.append(edge_type)
        self.weights.append(weight)


def read_text(path: str | Path) -> str:
    """Whole file as text, utf-8 with or without BOM; anything else is an error with its line."""
    path = Path(path)
    try:
        with open_input(path) as fh:
            data = fh.read()
    except MissingInputError as err:  # missing, or a FIFO / device / directory: never block on it
        raise KGFormatError(str(err).removeprefix(f"{path} ").removeprefix(f"{path}: "), path=path) from None
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        raise KGFormatError("file is empty (truncated?)", path=path, line=1)
    if b"\x00" in data:  # text files never hold NUL; it marks binary or corrupt data
        at = data.index(b"\x00")
        raise KGFormatError(
            f"NUL byte at byte {at} (binary or corrupt file)",
            path=path,
            line=data.count(b"\n", 0, at) + 1,
            value=data[max(0, at - 8) : at + 8],
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise KGFormatError(
            f"not valid UTF-8 at byte {err.start} (unknown encoding or truncated file); "
            "C3KG files are UTF-8",
            path=path,
            line=line,
            value=data[max(0, err.start - 8) : err.start + 8],
        ) from None
    if "\ufeff" in text:  # a second file's BOM (files concatenated): it would start a node's text
        at = text.index("\ufeff")
        raise KGFormatError("a byte-order mark (U+FEFF) inside the file (files concatenated?); only the first "
                            "byte may carry one", path=path, line=text.count("\n", 0, at) + 1,
                            value=text[max(0, at - 8) : at + 8])
    return text


def _rows(path: Path, text: str, delimiter: str, quoting: int) -> csv.reader:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)


def _header(path: Path, reader) -> list[str]:
    """The first row of ``reader``; an unreadable one (unclosed quote, huge field) names line 1."""
    try:
        return next(reader)
    except StopIteration:
        raise KGFormatError("no header", path=path, line=1) from None
    except csv.Error as err:
        raise KGFormatError(f"unreadable header: {err}", path=path, line=1) from None


def _header_index(path: Path, header: list[str], required: tuple[str, ...]) -> dict[str, int]:
    names = [h.strip() for h in header]
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:  # which of the two columns holds the values would be a guess
        raise KGFormatError(f"column {twice[0]!r} appears {names.count(twice[0])} times in the header",
                            path=path, line=1, value=names)
    where: dict[str, int] = {}
    for name in required:
        if name not in names:
            raise KGFormatError(
                f"missing column; header has {names}", path=path, line=1, field=name
            )
        where[name] = names.index(name)
    return where


def _require(path: Path, line: int, name: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise KGFormatError("empty value", path=path, line=line, field=name, value=value)
    return value


def _iter_checked(path: Path, reader, width: int):
    """Yield (line, row) for every non-blank data row, checking the number of fields."""
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                raise KGFormatError(
                    f"expected {width} fields, found {len(row)} (ragged or truncated row)",
                    path=path,
                    line=reader.line_num,
                    value=(delim_join(row)),
                )
            yield reader.line_num, row
    except csv.Error as err:
        raise KGFormatError(f"unreadable row: {err}", path=path, line=reader.line_num) from None


def delim_join(row: list[str]) -> str:
    return "|".join(row)


def read_head_csv(path: str | Path, kind: str) -> list[HeadRecord]:
    """Read ``head_shortSentence.csv`` (kind ``event-head``) or ``head_phrase.csv`` (``phrase-head``)."""
    path = Path(path)
    reader = _rows(path, read_text(path), ",", csv.QUOTE_MINIMAL)
    header = _header(path, reader)
    cols = _header_index(path, header, ("head", "head_replaced", "head_translated"))
    records = []
    for line, row in _iter_checked(path, reader, len(header)):
        records.append(
            HeadRecord(
                english=_require(path, line, "head", row[cols["head"]]),
                replaced=_require(path, line, "head_replaced", row[cols["head_replaced"]]),
                chinese=_require(path, line, "head_translated", row[cols["head_translated"]]),
                kind=kind,
                line=line,
            )
        )
    if not records:
        raise KGFormatError("header but no rows (truncated?)", path=path, line=2)
    return records


def read_atomic_chinese(path: str | Path) -> TripleTable:
    """Read ``ATOMIC_Chinese.tsv`` (with or without the pandas index column)."""
    path = Path(path)
    reader = _rows(path, read_text(path), "\t", csv.QUOTE_MINIMAL)
    header = _header(path, reader)
    cols = _header_index(path, header, ("head", "relation", "tail"))
    table = TripleTable()
    for line, row in _iter_checked(path, reader, len(header)):
        head = _require(path, line, "head", row[cols["head"]])
        relation = _require(path, line, "relation", row[cols["relation"]])
        tail = row[cols["tail"]].strip()
        if tail.lower() in NONE_TAILS:
            table.skipped_none_tails += 1
            continue
        table.append(head, relation, tail)
    if not len(table) and not table.skipped_none_tails:
        raise KGFormatError("header but no rows (truncated?)", path=path, line=2)
    return table


def read_atomic2020(path: str | Path) -> TripleTable:
    """Read ATOMIC-2020 English: plain ``head\\trelation\\ttail`` or ``head @@ relation\\tt1| t2``.

    The form is taken from the first row and every later row must follow it.
    """
    path = Path(path)
    table = TripleTable()
    form: str | None = None
    for line, raw in enumerate(read_text(path).splitlines(), start=1):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        this = "@@" if len(fields) == 2 and " @@ " in fields[0] else "plain"
        if form is None:
            form = this
            if form == "plain" and [f.strip() for f in fields] == ["head", "relation", "tail"]:
                continue  # a header line
        if this != form or (form == "plain" and len(fields) != 3):
            expected = "'head @@ relation<TAB>tails'" if form == "@@" else "3 tab-separated fields"
            raise KGFormatError(
                f"expected {expected}, found {len(fields)} field(s)", path=path, line=line, value=raw
            )
        if form == "@@":
            head, _, relation = fields[0].rpartition(" @@ ")
            tails = fields[1].split("|")
        else:
            head, relation, tails = fields[0], fields[1], [fields[2]]
        head = _require(path, line, "head", head)
        relation = _require(path, line, "relation", relation)
        for tail in tails:
            tail = tail.strip()
            if tail.lower() in NONE_TAILS:
                table.skipped_none_tails += 1
                continue
            table.append(head, relation, tail)
    if not len(table) and not table.skipped_none_tails:
        raise KGFormatError("no triples (truncated?)", path=path, line=1)
    return table


def read_flow_edges(path: str | Path) -> EdgeTable:
    """Read a flow-edge list: header ``source<TAB>target<TAB>type<TAB>weight``."""
    path = Path(path)
    reader = _rows(path, read_text(path), "\t", csv.QUOTE_MINIMAL)
    header = _header(path, reader)
    cols = _header_index(path, header, FLOW_HEADER)
    table = EdgeTable()
    for line, row in _iter_checked(path, reader, len(header)):
        raw_weight = row[cols["weight"]].strip()
        try:
            weight = int(raw_weight)
        except ValueError:
            raise KGFormatError(
                "not an integer", path=path, line=line, field="weight", value=raw_weight
            ) from None
        if weight < 0:
            raise KGFormatError("negative weight", path=path, line=line, field="weight", value=weight)
        if weight > MAX_WEIGHT:
            raise KGFormatError(
                f"weight above the int64 maximum {MAX_WEIGHT}", path=path, line=line, field="weight",
                value=raw_weight,
            )
        table.append(
            _require(path, line, "source", row[cols["source"]]),
            _require(path, line, "target", row[cols["target"]]),
            _require(path, line, "type", row[cols["type"]]),
            weight,
        )
    if not len(table):
        raise KGFormatError("header but no rows (truncated?)", path=path, line=2)
    return table


def read_kb_json(path: str | Path) -> TripleTable:
    """Read a KB as JSON: ``{entity: [[entity, attribute, value], ...]}`` (KdConv's
    ``kb_*.json``) or ``{entity: {attribute: value | [value, ...]}}``. Rows are (entity,
    attribute, value); repeated triples are kept (the converter merges them into weights).
    Empty values are skipped and counted in ``skipped_none_tails``."""
    path = Path(path)
    text = read_text(path)
    try:
        data = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as err:
        raise KGFormatError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None
    except DuplicateKeyError as err:  # the second entity would silently replace the first
        raise KGFormatError(str(err), path=path, value=err.key) from None
    except (ValueError, RecursionError) as err:
        raise KGFormatError(f"not valid JSON ({type(err).__name__})", path=path) from None
    bad = lone_surrogate(data)
    if bad is not None:
        raise KGFormatError("a string holds a lone surrogate (not encodable as UTF-8)", path=path, value=bad)
    if not isinstance(data, dict) or not data:
        raise KGFormatError(
            f"expected a non-empty object entity -> triples or attributes (a KB like KdConv's kb_*.json), "
            f"found {type(data).__name__}{' (a dialogue file?)' if isinstance(data, list) else ''}",
            path=path,
        )
    table = TripleTable()

    def value_of(where: str, value) -> str | None:
        if not isinstance(value, str):
            raise KGFormatError("expected a string", path=path, field=where, value=value)
        if not value.strip():
            table.skipped_none_tails += 1
            return None
        return value.strip()

    for entity, body in data.items():
        if not entity.strip():
            raise KGFormatError("empty entity name", path=path, field=repr(entity), value=entity)
        entity = entity.strip()
        if isinstance(body, list):
            for i, triple in enumerate(body):
                where = f"{entity}[{i}]"
                if not (isinstance(triple, list) and len(triple) == 3 and all(isinstance(x, str) for x in triple)):
                    raise KGFormatError("expected [entity, attribute, value] (3 strings)", path=path,
                                        field=where, value=triple)
                if triple[0].strip() != entity:
                    raise KGFormatError(f"triple of entity {triple[0]!r} filed under {entity!r}", path=path,
                                        field=where, value=triple)
                if not triple[1].strip():
                    raise KGFormatError("empty attribute name", path=path, field=where, value=triple)
                value = value_of(where, triple[2])
                if value is not None:
                    table.append(entity, triple[1].strip(), value)
        elif isinstance(body, dict):
            for attribute, values in body.items():
                where = f"{entity}.{attribute}"
                if not attribute.strip():
                    raise KGFormatError("empty attribute name", path=path, field=where, value=attribute)
                for j, value in enumerate(values if isinstance(values, list) else [values]):
                    value = value_of(f"{where}[{j}]" if isinstance(values, list) else where, value)
                    if value is not None:
                        table.append(entity, attribute.strip(), value)
        else:
            raise KGFormatError("expected a list of [entity, attribute, value] or an object attribute -> value",
                                path=path, field=entity, value=body)
    return table


# ----------------------------------------------------------------------------- the format table


@dataclass
class ReleaseParts:
    """Everything the release files of one conversion hold, gathered by what it is."""

    heads: list[HeadRecord] = field(default_factory=list)  # head CSVs
    atomic_zh: list[TripleTable] = field(default_factory=list)  # ATOMIC_Chinese.tsv: Chinese heads
    atomic_en: list[TripleTable] = field(default_factory=list)  # ATOMIC-2020: English heads
    edges: list[EdgeTable] = field(default_factory=list)  # flow edges, edges of a pickled graph
    kb: list[TripleTable] = field(default_factory=list)  # KB JSON: (entity, attribute, value)
    isolated: set[str] = field(default_factory=set)  # nodes of a pickled graph without edges


@dataclass(frozen=True)
class ReleaseFormat:
    """One release file format: how to read it into :class:`ReleaseParts`, how to recognise it.

    A file can only be of a format listing its (lower-case) suffix. Among those, the first
    whose ``name_hint`` accepts the lower-case file name wins; then the first whose
    ``header_hint`` accepts the tab-separated cells of the first line; then the one marked
    ``fallback``.
    """

    read: Callable[[Path, ReleaseParts, bool], None]  # read(path, parts, trust_pickle)
    suffixes: tuple[str, ...]
    name_hint: Callable[[str], bool] | None = None
    header_hint: Callable[[list[str]], bool] | None = None
    fallback: bool = False


def _read_event_heads(path: Path, parts: ReleaseParts, trust_pickle: bool) -> None:
    parts.heads += read_head_csv(path, NodeKind.EVENT_HEAD.value)


def _read_phrase_heads(path: Path, parts: ReleaseParts, trust_pickle: bool) -> None:
    parts.heads += read_head_csv(path, NodeKind.PHRASE_HEAD.value)


def _read_atomic_chinese(path: Path, parts: ReleaseParts, trust_pickle: bool) -> None:
    parts.atomic_zh.append(read_atomic_chinese(path))


def _read_atomic2020(path: Path, parts: ReleaseParts, trust_pickle: bool) -> None:
    parts.atomic_en.append(read_atomic2020(path))


def _read_flow_edges(path: Path, parts: ReleaseParts, trust_pickle: bool) -> None:
    parts.edges.append(read_flow_edges(path))


def _read_kb_json(path: Path, parts: ReleaseParts, trust_pickle: bool) -> None:
    parts.kb.append(read_kb_json(path))


def _read_gpickle(path: Path, parts: ReleaseParts, trust_pickle: bool) -> None:
    from kg.pickle_io import read_gpickle  # networkx is imported only when a pickle is read

    graph = read_gpickle(path, trust_pickle=trust_pickle)
    table = EdgeTable()
    for u, v, data in graph.edges(data=True):
        table.append(u, v, data["type"], int(data.get("weight", 1)))
    parts.edges.append(table)
    parts.isolated.update(n for n in graph.nodes if graph.degree(n) == 0)


# Every release format, in the order sniffing tries them. A new format: FORMATS.register(name,
# ReleaseFormat(...)); directories and sniff_format pick it up from here.
FORMATS: Registry[ReleaseFormat] = Registry("KG format", {
    "gpickle": ReleaseFormat(_read_gpickle, (".graph", ".gpickle", ".pkl", ".pickle"), name_hint=lambda n: True),
    "event-heads": ReleaseFormat(_read_event_heads, (".csv",), name_hint=lambda n: "shortsentence" in n),
    "phrase-heads": ReleaseFormat(_read_phrase_heads, (".csv",),
                                  name_hint=lambda n: "head_phrase" in n or n.startswith("phrase")),
    "atomic-chinese": ReleaseFormat(_read_atomic_chinese, (".tsv",), name_hint=lambda n: "atomic_chinese" in n,
                                    header_hint=lambda c: len(c) == 4 and c[1:] == ["head", "relation", "tail"]),
    "flow-edges": ReleaseFormat(_read_flow_edges, (".tsv", ".txt"),
                                # a flow header missing a column is still this format, and its reader refuses it by name
                                header_hint=lambda c: c[:4] == list(FLOW_HEADER) or {"source", "target"} <= set(c)),
    "atomic2020": ReleaseFormat(_read_atomic2020, (".tsv", ".txt"), fallback=True),
    "kb-json": ReleaseFormat(_read_kb_json, (".json",), name_hint=lambda n: n.startswith("kb"),
                             header_hint=lambda c: c[0].startswith("{")),
})

# What a release directory may hold beside release files: documentation, licences, the
# scripts that made them, hidden files. Skipped, and listed in the conversion report.
NOT_KG_STEMS = frozenset({"readme", "license", "licence", "notice", "copying", "changelog"})
NOT_KG_SUFFIXES = (".md", ".py")


def is_not_kg_file(name: str) -> bool:
    """README*, LICENSE*, NOTICE*, COPYING*, CHANGELOG*, *.md, *.py and hidden files."""
    lower = name.lower()
    return lower.startswith(".") or lower.split(".")[0] in NOT_KG_STEMS or lower.endswith(NOT_KG_SUFFIXES)


def _format_list() -> str:
    return "; ".join(f"{name} {'/'.join(fmt.suffixes)}" for name, fmt in FORMATS.items())


def sniff_format(path: str | Path) -> str:
    """Name the release format of a file from :data:`FORMATS`: by suffix, then name, then first line.

    The built-in names: ``gpickle``, ``event-heads``, ``phrase-heads``, ``atomic-chinese``,
    ``flow-edges``, ``atomic2020``, ``kb-json``.
    """
    path = Path(path)
    name = path.name.lower()
    candidates = [(n, fmt) for n, fmt in FORMATS.items() if path.suffix.lower() in fmt.suffixes]
    if not candidates:
        raise KGFormatError(
            f"cannot tell the C3KG format of this file: no format takes the suffix "
            f"{path.suffix or '(none)'!r} (formats: {_format_list()})",
            path=path,
        )
    for n, fmt in candidates:
        if fmt.name_hint is not None and fmt.name_hint(name):
            return n
    if any(fmt.header_hint is not None for _, fmt in candidates):
        try:
            with open_input(path) as fh:
                first = fh.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
        except MissingInputError as err:
            raise KGFormatError(str(err).removeprefix(f"{path} ").removeprefix(f"{path}: "), path=path) from None
        cells = [c.strip() for c in first.split("\t")]
        for n, fmt in candidates:
            if fmt.header_hint is not None and fmt.header_hint(cells):
                return n
    for n, fmt in candidates:
        if fmt.fallback:
            return n
    raise KGFormatError(
        f"cannot tell the C3KG format of this file: of the formats that take the suffix {path.suffix!r} "
        f"({', '.join(n for n, _ in candidates)}), none claims its name or first line (formats: {_format_list()})",
        path=path,
    )


def release_files(directory: str | Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """A directory of release files -> sorted (path, format) pairs, and the names it skipped.

    Every file must be of a format in :data:`FORMATS` or one of the known non-KG files
    (:func:`is_not_kg_file`, skipped); anything else is an error naming the file, so a
    release file with an unexpected name is never dropped silently. Subdirectories are
    not entered (listed as skipped, with a trailing ``/``).
    """
    directory = Path(directory)
    found: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for path in sorted(directory.iterdir()):
        if path.is_dir():
            skipped.append(path.name + "/")
        elif is_not_kg_file(path.name):
            skipped.append(path.name)
        else:
            found.append((path, sniff_format(path)))
    if not found:
        raise KGFormatError(f"directory holds no C3KG release files (skipped: {skipped or 'nothing'})", path=directory)
    return found, skipped
