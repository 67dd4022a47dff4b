"""Malformed files into every reading command: exit 0 with valid output, or exit 2 with one
line and no output; never a traceback (the contract is in ``tests/fuzz/conftest.py``).

Each test takes a small valid seed, damages it with :mod:`tests.fuzz.mutations` and runs the
real command. The default tier runs a fixed, derandomised set of cases (the whole suite in
well under 30 s); ``-m slow`` runs ten times as many random ones. ``tiktalk data import``
is not fuzzed: it does not exist in this tree yet.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kg
from tests.cli_contract import check_outcome, run_cli
from tests.fuzz.mutations import apply, byte_edits, jsonl_edits
from tiktalk.dataset import load_dataset, sample_raw_dir

TIERS = [pytest.param("fast", id="fast"), pytest.param("slow", id="slow", marks=pytest.mark.slow)]
SLOW_FACTOR = 10


def fuzz(strategy: st.SearchStrategy, body: Callable, tier: str, fast_examples: int) -> None:
    """Run ``body(case)`` on ``fast_examples`` derandomised cases, or 10x as many random ones."""
    slow = tier == "slow"

    @settings(max_examples=fast_examples * (SLOW_FACTOR if slow else 1), derandomize=not slow, database=None,
              deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                    HealthCheck.filter_too_much])
    @given(strategy)
    def run(case):
        with tempfile.TemporaryDirectory() as tmp:
            body(Path(tmp), case)

    run()


def _head_lines(path: Path, n: int) -> bytes:
    return b"\n".join(path.read_bytes().split(b"\n")[: n + 1]) + b"\n"


# ----------------------------------------------------------------------------- kg convert

KG_SEEDS = {name: _head_lines(kg.sample_dir() / name, 25) for name in
            ("ATOMIC_Chinese.tsv", "head_shortSentence.csv", "head_phrase.csv", "flow_edges.tsv")}
# Release files are sniffed by name; these names make the same bytes reach other readers.
KG_NAMES = (*KG_SEEDS, "atomic2020.tsv", "edges.tsv")


def _graph_pickle(protocol: int) -> bytes:
    graph = nx.DiGraph()
    graph.add_edge("有人买披萨", "有人饿了", type="next_utterance", weight=3)
    graph.add_edge("披萨", "奶酪", type="next_entity", weight=1)
    graph.add_node("孤立")
    _ = graph.edges, graph.nodes, graph.adj  # networkx caches these views in the pickled dict
    return pickle.dumps(graph, protocol=protocol)


def _check_kg(out: Path) -> None:
    graph = kg.load_kg(out)  # reads back through every sha256 and schema check
    assert graph.nodes.height > 0


@pytest.mark.parametrize("tier", TIERS)
def test_kg_convert(tier: str) -> None:
    case = st.tuples(st.sampled_from(sorted(KG_SEEDS)), st.sampled_from(KG_NAMES), byte_edits())

    def body(tmp: Path, case) -> None:
        seed, name, edits = case
        src = tmp / name
        src.write_bytes(apply(KG_SEEDS[seed], edits))
        out = tmp / "kg"
        result = run_cli(["kg", "convert", str(src), "--out", str(out), "--json"])
        check_outcome("kg convert", result, [out], lambda: _check_kg(out))

    fuzz(case, body, tier, 150)


@pytest.mark.parametrize("tier", TIERS)
def test_kg_convert_trusted_pickle(tier: str) -> None:
    """``--trust-pickle`` on damaged graph pickles: refused or read, never run, never a traceback."""
    seeds = {p: _graph_pickle(p) for p in (2, 4)}
    case = st.tuples(st.sampled_from(sorted(seeds)), byte_edits())

    def body(tmp: Path, case) -> None:
        protocol, edits = case
        src = tmp / "C3KG.GRAPH"
        src.write_bytes(apply(seeds[protocol], edits))
        out = tmp / "kg"
        result = run_cli(["kg", "convert", str(src), "--trust-pickle", "--out", str(out), "--json"])
        check_outcome("kg convert", result, [out], lambda: _check_kg(out))

    fuzz(case, body, tier, 60)


# ----------------------------------------------------------------------------- annotate


@pytest.fixture(scope="module")
def head_index(fuzz_root: Path) -> Path:
    out = fuzz_root / "idx"
    result = run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32", "--json"])
    assert result.code == 0, result.err
    return out


def _contexts_seed() -> bytes:
    ds = load_dataset("sample")
    titles = dict(zip(ds.videos["video_id"].to_list(), ds.videos["title"].to_list()))
    rows = ds.dialogues.head(5).iter_rows(named=True)
    return "".join(json.dumps({"dialogue_id": r["dialogue_id"], "context": r["context"],
                               "title": titles[r["video_id"]]}, ensure_ascii=False) + "\n"
                   for r in rows).encode()


def _check_annotation(src: Path, out: Path) -> None:
    table = pl.read_parquet(out)
    text = src.read_text(encoding="utf-8-sig")
    rows = [json.loads(line) for line in text.split("\n") if line.strip()]  # (not splitlines: U+2028 is no break)
    assert table["dialogue_id"].to_list() == [r["dialogue_id"] for r in rows]
    for row, heads, knowledge in zip(rows, table["heads"].to_list(), table["knowledge"].to_list()):
        if not any(turn.strip() for turn in row["context"]):
            assert heads == [] and knowledge == "", "a blank context must get no knowledge"


@pytest.mark.parametrize("tier", TIERS)
def test_annotate(tier: str, head_index: Path) -> None:
    seed = _contexts_seed()

    def body(tmp: Path, edits) -> None:
        src = tmp / "contexts.jsonl"
        src.write_bytes(apply(seed, edits))
        out = tmp / "knowledge.parquet"
        result = run_cli(["annotate", "--index", str(head_index), "--data", str(src), "--out", str(out),
                          "--chunk-size", "2", "--json"])
        check_outcome("annotate", result, [out], lambda: _check_annotation(src, out))

    fuzz(jsonl_edits(), body, tier, 80)


# ----------------------------------------------------------------------------- data build


def _raw_seed() -> dict[str, bytes]:
    """The shipped raw sample cut to 4 videos and their comments, 2 synthetic frames each."""
    raw = sample_raw_dir()
    videos = raw.joinpath("videos.jsonl").read_text(encoding="utf-8").splitlines()[:4]
    keep = {json.loads(v)["video_id"] for v in videos}
    comments = [c for c in raw.joinpath("comments.jsonl").read_text(encoding="utf-8").splitlines()
                if json.loads(c)["video_id"] in keep]
    config = json.loads(raw.joinpath("build_config.json").read_text(encoding="utf-8"))
    config.update(synthetic_frames=2, synthetic_audio=2)
    return {"videos.jsonl": ("\n".join(videos) + "\n").encode(),
            "comments.jsonl": ("\n".join(comments) + "\n").encode(),
            "build_config.json": json.dumps(config).encode()}  # one line: field edits reach it


@pytest.mark.parametrize("tier", TIERS)
def test_data_build(tier: str) -> None:
    seed = _raw_seed()
    case = st.tuples(st.sampled_from(sorted(seed)), jsonl_edits())

    def body(tmp: Path, case) -> None:
        name, edits = case
        raw = tmp / "raw"
        raw.mkdir()
        for file, data in seed.items():
            raw.joinpath(file).write_bytes(apply(data, edits) if file == name else data)
        out = tmp / "dataset"
        result = run_cli(["data", "build", str(raw), "--out", str(out), "--json"])
        check_outcome("data build", result, [out], lambda: load_dataset(out))

    fuzz(case, body, tier, 60)


# ----------------------------------------------------------------------------- evaluate


def _predictions_seed() -> dict[str, bytes]:
    test = load_dataset("sample").dialogues.filter(pl.col("split") == "test")
    ids, responses = test["dialogue_id"].to_list(), test["response"].to_list()
    jsonl = "".join(json.dumps({"dialogue_id": d, "response": r[::-1]}, ensure_ascii=False) + "\n"
                    for d, r in zip(ids, responses))
    return {"predictions.jsonl": jsonl.encode(), "predictions.txt": "".join(r + "\n" for r in responses).encode()}


def _check_scores(stdout: str) -> None:
    scores = json.loads(stdout)
    assert scores["n_hypotheses"] > 0 and 0 <= scores["bleu_2"] <= 100


@pytest.mark.parametrize("tier", TIERS)
def test_evaluate(tier: str) -> None:
    seed = _predictions_seed()
    case = st.tuples(st.sampled_from(sorted(seed)), jsonl_edits())

    def body(tmp: Path, case) -> None:
        name, edits = case
        src = tmp / name
        src.write_bytes(apply(seed[name], edits))
        result = run_cli(["evaluate", "--predictions", str(src), "--data", "sample", "--no-meteor", "--json"])
        check_outcome("evaluate", result, [], lambda: _check_scores(result.out))

    fuzz(case, body, tier, 80)


# ----------------------------------------------------------------------------- generate --run


@pytest.fixture(scope="module")
def run_seed(fuzz_root: Path) -> dict[str, bytes]:
    """A Maria run directory (tiny preset, saved untrained) as file name -> bytes; its config
    is rewritten on one line so that field edits reach it."""
    import torch

    from fusion.modeling_maria import MariaForDialogue
    from tiktalk.models.saving import MODEL_FILE

    run = fuzz_root / "run"
    torch.manual_seed(0)  # the same weights, hence the same cases, in every session
    MariaForDialogue.from_preset("tiny").save_pretrained(run / "model")
    (run / "run.json").write_text(json.dumps({"model": "maria", "knowledge": None}), encoding="utf-8")
    config = run / "model" / MODEL_FILE
    config.write_text(json.dumps(json.loads(config.read_text(encoding="utf-8"))), encoding="utf-8")
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _check_predictions(out: Path) -> None:
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 1 and set(lines[0]) == {"dialogue_id", "response"}


@pytest.mark.parametrize("tier", TIERS)
def test_generate_run(tier: str, run_seed: dict[str, bytes]) -> None:
    case = st.tuples(st.sampled_from(sorted(run_seed)), byte_edits() | jsonl_edits())

    def body(tmp: Path, case) -> None:
        name, edits = case
        run = tmp / "run"
        for file, data in run_seed.items():
            (run / file).parent.mkdir(parents=True, exist_ok=True)
            (run / file).write_bytes(apply(data, edits) if file == name else data)
        out = tmp / "predictions.jsonl"
        result = run_cli(["generate", "--run", str(run), "--out", str(out), "--limit", "1", "--beam", "1",
                          "--max-length", "3", "--device", "cpu", "--json"])
        check_outcome("generate", result, [out], lambda: _check_predictions(out))

    fuzz(case, body, tier, 25)
