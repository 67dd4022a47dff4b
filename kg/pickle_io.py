"""Reading the released ``C3KG.GRAPH`` (a networkx 2.6 ``write_gpickle`` file), safely.

Unpickling runs code, so it is opt-in (``trust_pickle=True`` / ``--trust-pickle``), and even
then an allow-list unpickler admits only the classes a networkx ``DiGraph`` of strings
needs. Anything else raises :class:`UnsafePickleError` naming the class.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from kg.errors import KGFormatError
from kg.schema import MAX_WEIGHT
from tiktalk.errors import MissingInputError
from tiktalk.io import open_input

if TYPE_CHECKING:
    import networkx as nx

# (module, name) pairs a DiGraph pickle may reference. networkx >= 3 caches its views
# (adj, succ, pred, nodes, edges) in the instance dict, so those view classes appear too;
# protocols 0/1 reconstruct objects through copyreg with `object` as the base.
_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("networkx.classes.digraph", "DiGraph"),
        ("networkx.classes.coreviews", "AdjacencyView"),
        ("networkx.classes.coreviews", "AtlasView"),
        ("networkx.classes.reportviews", "NodeView"),
        ("networkx.classes.reportviews", "OutEdgeView"),
        ("networkx.classes.reportviews", "InEdgeView"),
        ("networkx.classes.reportviews", "OutDegreeView"),
        ("networkx.classes.reportviews", "InDegreeView"),
        ("networkx.classes.reportviews", "DiDegreeView"),
        ("copyreg", "_reconstructor"),
        ("copy_reg", "_reconstructor"),
        ("builtins", "object"),
        ("__builtin__", "object"),
    }
)


class UnsafePickleError(KGFormatError):
    """A pickle referenced a class outside the DiGraph allow-list."""


class _DiGraphUnpickler(pickle.Unpickler):
    def __init__(self, fh, path: Path) -> None:
        super().__init__(fh)
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                f"refusing to unpickle class {module}.{name}: only a networkx DiGraph of "
                "strings is accepted",
                path=self._path,
                value=f"{module}.{name}",
            )
        return super().find_class(module, name)


def read_gpickle(path: str | Path, *, trust_pickle: bool = False) -> nx.DiGraph:
    """Load ``C3KG.GRAPH``. Requires ``trust_pickle=True``; validates what it got."""
    import networkx as nx  # imported here: only reading a pickle needs it
    path = Path(path)
    if not trust_pickle:
        raise KGFormatError(
            "this is a pickle, which can run code when loaded; pass trust_pickle=True "
            "(CLI: --trust-pickle) if you trust its source",
            path=path,
        )
    try:
        with open_input(path) as fh:
            graph = _DiGraphUnpickler(fh, path).load()
    except MissingInputError as err:  # missing, or a FIFO / device / directory
        raise KGFormatError(str(err).removeprefix(f"{path} ").removeprefix(f"{path}: "), path=path) from None
    except UnsafePickleError:
        raise
    except Exception as err:  # noqa: BLE001 (hostile bytes can make the unpickler raise anything)
        raise KGFormatError(
            f"unreadable pickle (truncated?): {type(err).__name__}: {err}", path=path
        ) from None
    if type(graph) is not nx.DiGraph:
        raise UnsafePickleError(
            f"expected a networkx DiGraph, got {type(graph).__name__}", path=path
        )
    graph = _fresh_copy(graph, path)
    for u, v, data in graph.edges(data=True):
        edge_type, weight = data.get("type"), data.get("weight", 1)
        if not isinstance(edge_type, str) or not edge_type:
            raise KGFormatError(
                f"edge {u!r} -> {v!r} has no string 'type'", path=path, field="type", value=edge_type
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (0 <= weight <= MAX_WEIGHT)  # (False for NaN)
            or (isinstance(weight, float) and not weight.is_integer())
        ):
            raise KGFormatError(
                f"edge {u!r} -> {v!r} has a bad 'weight' (a count from 0 to {MAX_WEIGHT})",
                path=path, field="weight", value=weight,
            )
    return graph


def _fresh_copy(loaded: nx.DiGraph, path: Path) -> nx.DiGraph:
    """A new DiGraph from the loaded one's node and successor tables only.

    The pickle sets the instance dict directly, so it can also plant odd values under the
    names networkx caches its views at (``edges``, ``nodes``, ``adj``...) or break its tables;
    nothing of it is used but the two tables, checked here.
    """
    state = vars(loaded)
    nodes, succ = state.get("_node"), state.get("_succ", state.get("_adj"))
    if not isinstance(nodes, dict) or not isinstance(succ, dict):
        raise KGFormatError("not a networkx DiGraph: its node or adjacency table is missing", path=path)
    odd = next((n for n in (*nodes, *succ) if not isinstance(n, str)), None)
    if odd is not None:
        raise KGFormatError("node is not a string", path=path, field="node", value=odd)
    import networkx as nx  # a runtime name here too (the module-level import is for typing only)

    fresh = nx.DiGraph()
    fresh.add_nodes_from(nodes)
    for u, neighbours in succ.items():
        if not isinstance(neighbours, dict):
            raise KGFormatError(f"the adjacency of node {u!r} is not a dict", path=path,
                                value=type(neighbours).__name__)
        for v, data in neighbours.items():
            if not isinstance(v, str):
                raise KGFormatError("node is not a string", path=path, field="node", value=v)
            if not isinstance(data, dict):
                raise KGFormatError(f"the attributes of edge {u!r} -> {v!r} are not a dict", path=path,
                                    value=type(data).__name__)
            fresh.add_edge(u, v, **{k: data[k] for k in ("type", "weight") if k in data})
    return fresh
