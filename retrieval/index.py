"""The head index directory: which KG heads are searchable, their vectors, and the FAISS index.

Layout of an index directory (written atomically, no pickles)::

    index.faiss      FAISS's own writer (faiss.write_index)
    heads.parquet    row i of the index: id, text, kind, family (rows grouped by family)
    embeddings.npy   float32 (n, dim) passage vectors, so another factory can reuse them:
                     the weighted sum of the head's passage views (:mod:`retrieval.views`;
                     unit rows when the only view is the text)
    manifest.json    encoder (name, fingerprint, dim; an ensemble's members and weights),
                     passage views and weights, factory, search parameters, KG hash, kinds,
                     family row ranges, file sha256s, library versions, build times
    hub_penalty.npy  (with ``--background``) float32 (n,): each head's mean similarity to its
                     k nearest background contexts, for the hub correction; the manifest's
                     ``hub_correction`` says from what (:mod:`retrieval.hubness`)
    piece_passages.parquet, piece_embeddings.npy
                     (with ``--pieces``) every distinct piece passage of every head and its
                     unit vector (:mod:`retrieval.pieces`), so a piece selection encodes
                     nothing per context; the manifest's ``pieces`` holds the piece settings

Which heads: the start nodes of the dialogue flows of every family. Event heads feed the
event flow, phrase heads and entities the concept flow, emotion nodes the emotion flows.
``kinds=("event",)`` reproduces C3KG's own matcher (short-sentence heads only).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import faiss
import numpy as np
import polars as pl

from kg.schema import FLOW_FAMILIES, FLOW_START_KINDS
from retrieval.encoders import Encoder, encode_batches, encoder_manifest
from retrieval.hubness import DEFAULT_HUB_K, DEFAULT_HUB_WEIGHT, Background, hub_penalty, hubness
from retrieval.query import QueryConfig
from retrieval.search import (
    SearchParams,
    apply_params,
    build_index,
    check_vectors,
    make_index,
    on_gpu,
    search,
    search_penalized,
    to_gpu,
    use_huge_pages,
)
from retrieval.views import PassageViews
from tiktalk.errors import (
    FormatError,
    MissingInputError,
    OutputExistsError,
    TiktalkError,
    UsageError,
)
from tiktalk.io import (
    atomic_directory,
    read_generation,
    read_json,
    recover_directory,
    sha256_file,
    write_json,
)
from tiktalk.versions import library_versions

FORMAT_VERSION = 1
PIECE_PASSAGES_FILE, PIECE_EMB_FILE = "piece_passages.parquet", "piece_embeddings.npy"
INDEX_FILE, HEADS_FILE, EMB_FILE, MANIFEST_FILE = "index.faiss", "heads.parquet", "embeddings.npy", "manifest.json"
HUB_FILE = "hub_penalty.npy"
_SHA256 = re.compile("[0-9a-f]{64}")

# short name -> (KG node kind, flow family it starts), as kg defines them. Order = row order.
KINDS: dict[str, tuple[str, str]] = {short: (kind.value, family) for short, (kind, family) in FLOW_START_KINDS.items()}
FAMILIES: tuple[str, ...] = tuple(FLOW_FAMILIES)


class IndexMismatchError(UsageError):
    """The index was built with another encoder / dimension / KG than the one in use."""


class IndexFileError(TiktalkError, ValueError):
    """An index file is missing, truncated or does not match the manifest."""


def parse_kinds(kinds: str | Sequence[str] | None) -> list[str] | None:
    """``"event,phrase"`` or a list -> validated short kind names (None = every kind the KG has)."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UsageError(f"kinds {list(kinds)}: each must be one of {list(KINDS)}")
    return [k for k in KINDS if k in kinds]


def head_table(graph, kinds: Sequence[str] | None = None) -> pl.DataFrame:
    """The searchable heads of ``graph``: id, text (Chinese, else the node id), kind, family.

    Rows are grouped by family (event, concept, emotion) so each family is one id range,
    then sorted by kind order and id: the same KG always gives the same rows.
    """
    chosen = parse_kinds(kinds) or list(KINDS)
    node_kind = {KINDS[k][0]: (i, k, KINDS[k][1]) for i, k in enumerate(chosen)}
    table = (
        graph.nodes.filter(pl.col("kind").is_in(list(node_kind)))
        .select(
            pl.col("id"),
            pl.coalesce(
                pl.when(pl.col("text_zh").str.len_chars() > 0).then(pl.col("text_zh")),
                pl.col("id"),
            ).alias("text"),
            pl.col("kind"),
        )
        .with_columns(
            pl.col("kind").replace_strict({nk: v[2] for nk, v in node_kind.items()}).alias("family"),
            pl.col("kind").replace_strict({nk: v[0] for nk, v in node_kind.items()}).alias("_kind_rank"),
            pl.col("kind").replace_strict({nk: FAMILIES.index(v[2]) for nk, v in node_kind.items()}).alias("_fam_rank"),
        )
        .sort("_fam_rank", "_kind_rank", "id")
        .drop("_kind_rank", "_fam_rank")
    )
    if table.is_empty():
        raise UsageError(f"the KG has no nodes of kinds {chosen} to index")
    return table


def family_ranges(heads: pl.DataFrame) -> dict[str, list[int]]:
    """family -> [lo, hi) row range (heads are grouped by family)."""
    out: dict[str, list[int]] = {}
    fams = heads["family"].to_list()
    for i, fam in enumerate(fams):
        if fam not in out:
            out[fam] = [i, i]
        out[fam][1] = i + 1
    return out


@dataclass
class HeadIndex:
    """A loaded index directory. ``index`` may live on the GPU; ``cpu_index`` always on the CPU."""

    path: Path | None
    manifest: dict
    heads: pl.DataFrame
    cpu_index: faiss.Index
    embeddings: np.ndarray  # (n, dim) float32, memory-mapped when loaded from disk
    hub_penalty: np.ndarray | None = None  # (n,) float32 when built with a background
    piece_passages: list[str] | None = None  # with --pieces: distinct piece passages
    piece_embeddings: np.ndarray | None = None  # (len(piece_passages), dim) float32 unit rows

    @cached_property
    def index(self) -> faiss.Index:
        return to_gpu(self.cpu_index) if self.manifest.get("use_gpu", True) else self.cpu_index

    @property
    def dim(self) -> int:
        return int(self.manifest["encoder"]["dim"])

    @property
    def families(self) -> dict[str, list[int]]:
        return self.manifest["family_ranges"]

    def __len__(self) -> int:
        return self.heads.height

    def search(self, queries: np.ndarray, k: int, family: str | None = None,
               hub_weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(nq, dim) -> (scores (nq, k), row ids (nq, k)); ``family`` restricts to its rows;
        ``hub_weight`` ranks by score - hub_weight x the stored hub penalty (the scores returned too)."""
        if family is not None and family not in self.families:
            raise UsageError(f"family {family!r} is not in this index (it has {list(self.families)})")
        if hub_weight is not None and self.hub_penalty is None:
            raise UsageError(f"{self.path or '<in-memory index>'} has no hub statistics "
                             "(build it with --background to use the hub correction)")
        lo, hi = (0, len(self)) if family is None else self.families[family]
        queries = check_vectors(queries, self.dim, "queries")
        target = self.index if family is None or not on_gpu(self.index) else self.cpu_index  # GPU: no id selectors
        id_range = None if family is None else (lo, hi)
        if hub_weight is not None:
            return search_penalized(target, queries, k, hub_weight * self.hub_penalty, id_range=id_range)
        return search(target, queries, k, id_range=id_range)

    def check_compatible(self, encoder: Encoder | None = None, kg_sha256: str | None = None) -> None:
        """Refuse an encoder or KG other than the one the index was built with, naming both values."""
        enc = self.manifest["encoder"]
        where = self.path or "<in-memory index>"
        if encoder is not None:
            if int(encoder.dim) != int(enc["dim"]):
                raise IndexMismatchError(
                    f"{where}: index dimension {enc['dim']} ({enc['name']}) differs from encoder "
                    f"{encoder.name}'s dimension {encoder.dim}"
                )
            if encoder.fingerprint != enc["fingerprint"]:
                raise IndexMismatchError(
                    f"{where}: index was built with encoder fingerprint {enc['fingerprint']} ({enc['name']}), "
                    f"the encoder in use has {encoder.fingerprint} ({encoder.name})"
                )
        if kg_sha256 is not None and kg_sha256 != self.manifest["kg"]["content_sha256"]:
            raise IndexMismatchError(
                f"{where}: index was built from KG {self.manifest['kg']['content_sha256']}, "
                f"the KG in use is {kg_sha256}"
            )

    @classmethod
    def load(cls, path: str | Path, *, encoder: Encoder | None = None, kg_sha256: str | None = None,
             verify: bool = True, use_gpu: bool = True,
             on_notice: Callable[[str], None] | None = None) -> HeadIndex:
        """Read an index directory; refuse missing/corrupt files and encoder/KG mismatches.

        An index left missing by an interrupted replacement is restored first
        (:func:`tiktalk.io.recover_directory`; ``on_notice`` hears of it). Besides each
        file's sha256 (``verify``), the sizes are cross-checked: rows of heads.parquet,
        rows and width of embeddings.npy, ``ntotal`` and dimension of index.faiss against
        the manifest's counts and encoder dimension.
        """
        path = Path(path)
        note = recover_directory(path)
        if note and on_notice is not None:
            on_notice(note)
        # a concurrent `index build --overwrite` may swap the directory mid-read: load again
        out = read_generation(path, lambda: cls._load_files(path, verify=verify, use_gpu=use_gpu))
        out.check_compatible(encoder, kg_sha256)
        return out

    @classmethod
    def _load_files(cls, path: Path, *, verify: bool, use_gpu: bool) -> HeadIndex:
        if not path.is_dir():
            raise MissingInputError(f"index directory {path} does not exist")
        for name in (MANIFEST_FILE, INDEX_FILE, HEADS_FILE, EMB_FILE):
            if not (path / name).is_file():
                raise IndexFileError(f"{path / name} is missing (rebuild with `tiktalk index build`)")
        try:
            manifest = read_json(path / MANIFEST_FILE)
        except FormatError as err:
            raise IndexFileError(str(err)) from None
        _check_manifest(manifest, path / MANIFEST_FILE)
        if verify:
            for name, expected in manifest["files"].items():
                actual = sha256_file(path / name)
                if actual != expected:
                    raise IndexFileError(f"{path / name}: sha256 {actual} differs from the manifest's {expected} "
                                         "(the file is corrupt or was changed)")
        manifest["use_gpu"] = use_gpu
        try:
            heads = pl.read_parquet(path / HEADS_FILE)
        except (OSError, pl.exceptions.PolarsError) as err:
            raise IndexFileError(f"{path / HEADS_FILE}: cannot read Parquet ({err})") from None
        try:
            embeddings = np.load(path / EMB_FILE, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise IndexFileError(f"{path / EMB_FILE}: cannot read ({err})") from None
        try:
            cpu_index = faiss.read_index(str(path / INDEX_FILE))
        except RuntimeError as err:
            raise IndexFileError(f"{path / INDEX_FILE}: FAISS cannot read it ({str(err).splitlines()[0]})") from None
        _check_sizes(path, manifest, heads, embeddings, cpu_index)
        apply_params(cpu_index, SearchParams(**manifest.get("search_params", {})))
        use_huge_pages(cpu_index)
        out = cls(path=path, manifest=manifest, heads=heads, cpu_index=cpu_index, embeddings=embeddings,
                  hub_penalty=_read_hub_penalty(path, manifest, heads.height))
        if "pieces" in manifest:
            out.piece_passages, out.piece_embeddings = _read_pieces(path, manifest)
        return out


def _check_manifest(manifest: object, file: Path) -> None:
    """The fields ``load`` relies on, with the types it relies on (a hand-edited or foreign
    manifest fails here, naming the field, instead of deep inside the loader)."""
    if not isinstance(manifest, dict):
        raise IndexFileError(f"{file}: expected a JSON object, got {type(manifest).__name__}")
    for key in ("format_version", "encoder", "factory", "kg", "files", "family_ranges"):
        if key not in manifest:
            raise IndexFileError(f"{file}: field {key!r} is missing")
    if manifest["format_version"] != FORMAT_VERSION:
        raise IndexFileError(f"{file}: format_version {manifest['format_version']!r} is not {FORMAT_VERSION}")
    enc = manifest["encoder"]
    if not (isinstance(enc, dict) and isinstance(enc.get("name"), str) and isinstance(enc.get("fingerprint"), str)
            and type(enc.get("dim")) is int and enc["dim"] > 0):
        raise IndexFileError(f"{file}: field 'encoder' needs name, fingerprint and a positive dim (value {enc!r})")
    kg_info = manifest["kg"]
    if not (isinstance(kg_info, dict) and isinstance(kg_info.get("content_sha256"), str)):
        raise IndexFileError(f"{file}: field 'kg' needs a content_sha256 (value {kg_info!r})")
    if not isinstance(manifest["factory"], str):
        raise IndexFileError(f"{file}: field 'factory' is not a string (value {manifest['factory']!r})")
    files = manifest["files"]
    if not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())):
        raise IndexFileError(f"{file}: field 'files' must map file names to sha256 strings (value {files!r})")
    known = (INDEX_FILE, HEADS_FILE, EMB_FILE, HUB_FILE, PIECE_PASSAGES_FILE, PIECE_EMB_FILE)
    for name, digest in files.items():
        if name not in known:  # also keeps every path a plain name inside the directory
            raise IndexFileError(f"{file}: field 'files' names an unknown file {name!r}")
        if not _SHA256.fullmatch(digest):
            raise IndexFileError(f"{file}: field 'files' holds no sha256 for {name!r} (value {digest!r})")
    # every file the index reads must have its hash recorded: a key deleted must not switch its check off
    needed = [INDEX_FILE, HEADS_FILE, EMB_FILE]
    if "hub_correction" in manifest:
        hub = manifest["hub_correction"]
        if not (isinstance(hub, dict) and hub.get("file") == HUB_FILE):
            raise IndexFileError(f"{file}: field 'hub_correction' must name its file {HUB_FILE!r} inside the "
                                 f"index directory (value {hub!r})")
        needed.append(HUB_FILE)
    if "pieces" in manifest:
        needed += [PIECE_PASSAGES_FILE, PIECE_EMB_FILE]
    lacking = [name for name in needed if name not in files]
    if lacking:
        raise IndexFileError(f"{file}: field 'files' lacks the sha256 of {lacking}; refusing to read them unchecked")
    ranges = manifest["family_ranges"]
    ok = isinstance(ranges, dict) and all(
        f in FAMILIES and isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r) and 0 <= r[0] <= r[1]
        for f, r in ranges.items()
    )
    if not ok:
        raise IndexFileError(f"{file}: field 'family_ranges' must map families to [lo, hi) rows (value {ranges!r})")
    spans = sorted(ranges.values())
    for (lo1, hi1), (lo2, hi2) in itertools.pairwise(spans):
        if lo2 < hi1:
            raise IndexFileError(f"{file}: field 'family_ranges' overlap: rows [{lo1}, {hi1}) and [{lo2}, {hi2}) "
                                 f"(value {ranges!r})")
    params = manifest.get("search_params", {})
    if not isinstance(params, dict):
        raise IndexFileError(f"{file}: field 'search_params' is not an object")
    unknown = sorted(set(params) - {"nprobe", "ef_search"})
    if unknown:
        raise IndexFileError(f"{file}: field 'search_params' has unknown keys {unknown}")
    try:
        SearchParams(**params)
    except UsageError as err:
        raise IndexFileError(f"{file}: field 'search_params': {err}") from None


def _check_sizes(path: Path, manifest: dict, heads: pl.DataFrame, embeddings: np.ndarray,
                 cpu_index: faiss.Index) -> None:
    """Every file must agree with the manifest: rows and dimension, each named with both numbers."""
    dim = manifest["encoder"]["dim"]
    counts = manifest.get("counts")
    rows = sum(counts.values()) if isinstance(counts, dict) and all(type(v) is int for v in counts.values()) else None
    mf = path / MANIFEST_FILE
    missing = [c for c in ("id", "text", "kind", "family") if c not in heads.columns]
    if missing:
        raise IndexFileError(f"{path / HEADS_FILE}: column(s) {missing} missing; has {heads.columns}")
    n = heads.height
    if rows is not None and n != rows:
        raise IndexFileError(f"{path / HEADS_FILE}: {n} rows, but the manifest {mf} counts {rows} heads")
    hi = max((r[1] for r in manifest["family_ranges"].values()), default=0)
    if hi > n:
        raise IndexFileError(f"{mf}: field 'family_ranges' reaches row {hi}, but {HEADS_FILE} has {n} rows")
    families = heads["family"].to_list() if heads["family"].dtype == pl.String else None
    for family, (lo, hi) in manifest["family_ranges"].items():
        if families is None or families[lo:hi].count(family) != hi - lo or families.count(family) != hi - lo:
            raise IndexFileError(f"{mf}: field 'family_ranges' gives {family} rows [{lo}, {hi}), but those are not "
                                 f"exactly the {family} rows of {HEADS_FILE}")
    if embeddings.ndim != 2 or embeddings.shape[0] != n:
        raise IndexFileError(f"{path / EMB_FILE}: shape {embeddings.shape}, but {HEADS_FILE} has {n} rows "
                             f"(expected ({n}, {dim}))")
    if embeddings.shape[1] != dim:
        raise IndexFileError(f"{path / EMB_FILE}: dimension {embeddings.shape[1]}, but the manifest's encoder "
                             f"dimension is {dim}")
    if embeddings.dtype != np.float32:
        raise IndexFileError(f"{path / EMB_FILE}: dtype {embeddings.dtype}, expected float32")
    finite = np.isfinite(embeddings).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise IndexFileError(f"{path / EMB_FILE}: row {row} holds a non-finite value")
    if cpu_index.ntotal != n:
        raise IndexFileError(f"{path / INDEX_FILE}: ntotal {cpu_index.ntotal}, but {HEADS_FILE} has {n} rows")
    if cpu_index.d != dim:
        raise IndexFileError(f"{path / INDEX_FILE}: dimension {cpu_index.d}, but the manifest's encoder "
                             f"dimension is {dim}")


def _read_hub_penalty(path: Path, manifest: dict, n: int) -> np.ndarray | None:
    if "hub_correction" not in manifest:
        return None
    file = path / HUB_FILE  # the manifest must name this one (_check_manifest)
    try:
        penalty = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise IndexFileError(f"{file}: cannot read ({err})") from None
    if penalty.shape != (n,) or penalty.dtype != np.float32:
        raise IndexFileError(f"{file}: shape {penalty.shape} {penalty.dtype}, expected ({n},) float32")
    bad = np.flatnonzero(~np.isfinite(penalty))
    if bad.size:
        raise IndexFileError(f"{file}: hub penalty of row {int(bad[0])} is {penalty[bad[0]]} "
                             f"({bad.size} non-finite values); scores would be NaN")
    return penalty


def _read_pieces(path: Path, manifest: dict) -> tuple[list[str], np.ndarray]:
    files = manifest["files"]
    for name in (PIECE_PASSAGES_FILE, PIECE_EMB_FILE):
        if name not in files or not (path / name).is_file():
            raise IndexFileError(f"{path / name}: the manifest's field 'pieces' needs it, listed in 'files' "
                                 "(rebuild with `tiktalk index build --pieces`)")
    try:
        passages = pl.read_parquet(path / PIECE_PASSAGES_FILE)["passage"].to_list()
        vectors = np.load(path / PIECE_EMB_FILE, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, pl.exceptions.PolarsError) as err:
        raise IndexFileError(f"{path}: cannot read the piece files ({err})") from None
    dim = manifest["encoder"]["dim"]
    if vectors.shape != (len(passages), dim) or vectors.dtype != np.float32:
        raise IndexFileError(f"{path / PIECE_EMB_FILE}: shape {vectors.shape} {vectors.dtype}, expected "
                             f"({len(passages)}, {dim}) float32")
    return passages, vectors


def piece_passages(graph, heads: pl.DataFrame, config) -> list[str]:
    """Every distinct piece passage of the index's heads, in head-row then piece order."""
    from retrieval.pieces import PieceCatalog

    catalog = PieceCatalog(graph, config)
    return list(dict.fromkeys(p.passage for head in heads["id"].to_list() for p in catalog(head)))


def hub_statistics(encoder: Encoder, embeddings: np.ndarray, background: Background, k: int = DEFAULT_HUB_K,
                   query: QueryConfig | None = None, texts: list[str] | None = None, *, batch_size: int = 256,
                   progress: bool = False) -> tuple[np.ndarray, dict]:
    """Penalties (n,) of the heads against ``background`` encoded as queries, and the
    manifest entry: source, counts, k, query construction, and the background's hubness
    (in-sample) without and with the correction (at the default weight); ``texts`` name the
    top hubs; ``progress``: a bar (with ETA) over the background's encoding, the slow part."""
    query = query or QueryConfig()
    queries = background.queries(query)
    if not queries:
        raise UsageError(f"background {background.source} gives no non-empty queries")
    vectors = encode_batches(encoder, queries, "query", batch_size=batch_size, progress=progress,
                             desc=f"encode hub background ({encoder.name})")
    penalty = hub_penalty(embeddings, vectors, k)
    index = build_index(embeddings, "Flat", use_gpu=False)
    measure = min(10, len(embeddings))
    before = hubness(search(index, vectors, measure)[1], len(embeddings))
    after = hubness(search_penalized(index, vectors, measure, DEFAULT_HUB_WEIGHT * penalty)[1], len(embeddings))
    entry = {**background.describe(), "queries": len(queries), "k": k, "query": asdict(query),
             "hubness_in_sample": {"weight": DEFAULT_HUB_WEIGHT, "plain": before.as_dict(texts),
                                   "corrected": after.as_dict(texts)}}
    return penalty, entry


def _reusable_embeddings(source: Path, encoder: Encoder, heads: pl.DataFrame, views: PassageViews,
                         kg_sha256: str) -> np.ndarray | None:
    """Stored embeddings of ``source`` when they were made by this encoder for these exact heads
    with the same views (of the same KG, when a view reads more than the head text)."""
    try:
        manifest = read_json(source / MANIFEST_FILE)
        if manifest["encoder"]["fingerprint"] != encoder.fingerprint:
            return None
        if PassageViews.from_manifest(manifest.get("views")).as_dict() != views.as_dict():
            return None
        if not views.plain and manifest["kg"]["content_sha256"] != kg_sha256:
            return None
        old = pl.read_parquet(source / HEADS_FILE)
        if not old.select("id", "text").equals(heads.select("id", "text")):
            return None
        emb = np.load(source / EMB_FILE, allow_pickle=False)
        if sha256_file(source / EMB_FILE) != manifest["files"][EMB_FILE]:
            return None
        return check_vectors(emb, encoder.dim, f"{source / EMB_FILE}")
    except (OSError, KeyError, TypeError, ValueError, pl.exceptions.PolarsError):  # unusable: re-encode
        return None


def kg_source_fields(given: str | None, graph_path: Path | None) -> dict[str, str | None]:
    """The manifest's record of the KG: ``source`` (``sample`` or an absolute path, so it
    opens from any working directory), ``source_given`` (as typed) and ``source_from``
    (``kg_source`` argument / the graph's own path / none)."""
    if given is not None:
        resolved = given if given == "sample" else str(Path(given).resolve())
        return {"source": resolved, "source_given": given, "source_from": "kg_source argument"}
    if graph_path is not None:
        return {"source": str(Path(graph_path).resolve()), "source_given": str(graph_path),
                "source_from": "the graph's path"}
    return {"source": None, "source_given": None, "source_from": None}


def build_head_index(
    graph,
    encoder: Encoder,
    out: str | Path | None,
    *,
    factory: str = "Flat",
    kinds: str | Sequence[str] | None = None,
    params: SearchParams | None = None,
    reuse_from: str | Path | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    progress: bool = True,
    use_gpu: bool = True,
    kg_source: str | None = None,
    on_notice: Callable[[str], None] | None = None,
    background: Background | None = None,
    hub_k: int = DEFAULT_HUB_K,
    views: str | PassageViews | None = None,
    pieces=None,
) -> HeadIndex:
    """Encode the KG's heads and write the index directory ``out`` (None: keep it in memory).

    Stored embeddings of ``reuse_from`` (default: ``out`` when it exists) are reused when
    their encoder fingerprint and head rows match, so a new factory costs no re-encoding.
    ``kg_source`` (e.g. ``sample`` or a directory) is recorded, resolved to an absolute path,
    so the KG can be reopened from any working directory; ``on_notice`` hears what
    :func:`tiktalk.io.atomic_directory` recovered or removed. ``background`` contexts give
    each head its hub penalty (:func:`hub_statistics`). ``views``: the passage views a head
    is encoded from (:class:`retrieval.views.PassageViews`; None: the default, ``"text"``:
    the head text alone). ``pieces`` (a :class:`retrieval.pieces.PieceConfig`): also encode
    every head's pieces under those settings (a piece selection then encodes none per context).
    """
    params = params or SearchParams()
    views = PassageViews.parse(views)
    if out is not None and Path(out).exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists (pass overwrite=True / --overwrite)")
    heads = head_table(graph, kinds)
    texts = heads["text"].to_list()
    make_index(factory, int(encoder.dim), n_train=len(texts))  # a bad factory fails before any encoding
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    embeddings = None
    source = Path(reuse_from) if reuse_from is not None else (Path(out) if out is not None else None)
    if source is not None and source.is_dir():
        embeddings = _reusable_embeddings(source, encoder, heads, views, graph.content_sha256)
    reused = embeddings is not None
    if embeddings is None:
        embeddings = views.encode(graph, heads, lambda t: encode_batches(
            encoder, t, "passage", batch_size=batch_size, progress=progress, desc=f"encode passages ({encoder.name})"))
    timings["encode_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    index = build_index(embeddings, factory, params, use_gpu=use_gpu)
    timings["index_s"] = time.perf_counter() - t0

    passages, piece_vectors = None, None
    if pieces is not None:
        t0 = time.perf_counter()
        passages = piece_passages(graph, heads, pieces)
        piece_vectors = encode_batches(encoder, passages, "passage", batch_size=batch_size, progress=progress,
                                       desc=f"encode pieces ({encoder.name})")
        timings["pieces_s"] = time.perf_counter() - t0

    penalty, hub_entry = None, None
    if background is not None:
        t0 = time.perf_counter()
        penalty, hub_entry = hub_statistics(encoder, embeddings, background, hub_k, texts=texts,
                                             batch_size=batch_size, progress=progress)
        hub_entry = {"file": HUB_FILE, **hub_entry}
        timings["hub_s"] = time.perf_counter() - t0

    manifest = {
        "format_version": FORMAT_VERSION,
        "encoder": encoder_manifest(encoder),
        "views": views.as_dict(),
        "factory": factory,
        "search_params": params.as_dict(),
        "kg": {"content_sha256": graph.content_sha256, **kg_source_fields(kg_source, graph.path)},
        "kinds": sorted(set(heads["kind"].to_list()), key=[v[0] for v in KINDS.values()].index),
        "counts": dict(heads.group_by("family").len().sort("family").iter_rows()),
        "family_ranges": family_ranges(heads),
        "reused_embeddings": reused,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "versions": library_versions(),
    }
    if hub_entry is not None:
        manifest["hub_correction"] = hub_entry
    if pieces is not None:
        manifest["pieces"] = {"config": pieces.as_dict(), "count": len(passages)}
    result = HeadIndex(path=None, manifest=manifest, heads=heads, cpu_index=index, embeddings=embeddings,
                       hub_penalty=penalty, piece_passages=passages, piece_embeddings=piece_vectors)
    if out is None:
        result.manifest["files"] = {}
        return result
    with atomic_directory(out, overwrite=overwrite, on_notice=on_notice) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        heads.write_parquet(tmp / HEADS_FILE, compression="zstd", statistics=False)
        np.save(tmp / EMB_FILE, embeddings, allow_pickle=False)
        files = [INDEX_FILE, HEADS_FILE, EMB_FILE]
        if penalty is not None:
            np.save(tmp / HUB_FILE, penalty, allow_pickle=False)
            files.append(HUB_FILE)
        if passages is not None:
            pl.DataFrame({"passage": passages}, schema={"passage": pl.String}).write_parquet(
                tmp / PIECE_PASSAGES_FILE, compression="zstd", statistics=False)
            np.save(tmp / PIECE_EMB_FILE, np.ascontiguousarray(piece_vectors, dtype=np.float32), allow_pickle=False)
            files += [PIECE_PASSAGES_FILE, PIECE_EMB_FILE]
        manifest["files"] = {name: sha256_file(tmp / name) for name in files}
        write_json(tmp / MANIFEST_FILE, manifest)
    result.path = Path(out)
    return result
