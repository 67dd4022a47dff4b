"""kg: the C3KG commonsense conversation knowledge graph: readers, canonical form, flows.

Quick use::

    import kg
    graph = kg.load_kg("sample")            # the sample shipped with the package
    graph.flows("有人买披萨", depth=2)        # tails per relation, flow edges per family
    # the knowledge segment, cut at a piece boundary to 120 characters
    kg.linearize([graph.flows(h) for h in heads], budget=tiktalk.types.KnowledgeBudget(120)).text
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kg.convert import build_tables, convert, read_canonical, write_canonical
from kg.errors import KGFormatError
from kg.graph import C3KG, FlowEdge, HeadFlows, Tail
from kg.linearize import (
    DEFAULT_RELATIONS,
    HEAD_SEP,
    PIECE_SEP,
    KnowledgeText,
    LinearizeConfig,
    fit_knowledge,
    linearize,
)
from kg.pickle_io import UnsafePickleError, read_gpickle
from kg.schema import FLOW_FAMILIES, NodeKind, family_of
from tiktalk.io import recover_directory

SAMPLE_NAME = "sample"


def sample_dir() -> Path:
    """The sample C3KG release files shipped inside the package."""
    return Path(__file__).resolve().parent / "data" / "sample"


def resolve_sources(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """``sample`` -> the shipped sample's folder; other paths are kept as they are."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return [sample_dir() if str(p) == SAMPLE_NAME else Path(p) for p in paths]


def load_kg(path: str | Path | Sequence[str | Path] = SAMPLE_NAME, *, trust_pickle: bool = False) -> C3KG:
    """Load a KG: ``sample``, a converted directory (with manifest.json), or release files.

    Release files and directories of them (several may be given) are converted in memory
    (nothing is written).
    """
    if not isinstance(path, (str, Path)) and len(path) == 1:
        path = path[0]
    if isinstance(path, (str, Path)) and str(path) != SAMPLE_NAME:
        recover_directory(path)  # a converted directory left missing by an interrupted replacement
    if isinstance(path, (str, Path)) and str(path) != SAMPLE_NAME and (Path(path) / "manifest.json").is_file():
        nodes, edges, manifest = read_canonical(path)
        return C3KG(nodes, edges, manifest, path=Path(path))
    nodes, edges, report = build_tables(resolve_sources(path), trust_pickle=trust_pickle)
    return C3KG(nodes, edges, {"report": report.as_dict()}, path=None)


__all__ = [
    "C3KG",
    "DEFAULT_RELATIONS",
    "FLOW_FAMILIES",
    "HEAD_SEP",
    "PIECE_SEP",
    "FlowEdge",
    "HeadFlows",
    "KGFormatError",
    "KnowledgeText",
    "LinearizeConfig",
    "NodeKind",
    "Tail",
    "UnsafePickleError",
    "build_tables",
    "convert",
    "family_of",
    "fit_knowledge",
    "linearize",
    "load_kg",
    "read_canonical",
    "read_gpickle",
    "resolve_sources",
    "sample_dir",
    "write_canonical",
]
