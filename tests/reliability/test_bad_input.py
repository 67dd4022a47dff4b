"""Issue 12's bad inputs, one test each: a one-line error (exit 2) naming file, line, field and
value, and no output; or, where the input is fine, a correct result. Each of these was a
traceback or a silent wrong result before."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import networkx as nx
import polars as pl
import pytest

import kg
from retrieval.retriever import Retriever
from tests.cli_contract import expect_error, run_cli

ROOT = Path(__file__).resolve().parents[2]
INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "idx"
    result = run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32", "--json"])
    assert result.code == 0, result.err
    return out


def _annotate(index_dir: Path, data: Path, out: Path, *extra: str):
    return run_cli(["annotate", "--index", str(index_dir), "--data", str(data), "--out", str(out), "--json", *extra])


# ----------------------------------------------------------------------------- kg convert


def test_header_with_unclosed_quote(tmp_path: Path) -> None:
    src = tmp_path / "ATOMIC_Chinese.tsv"
    src.write_text('\thead\trelation\t"tail\n0\t有人吃饭\txNeed\t饿了\n', encoding="utf-8")
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(src), "--out", str(out)]), [out],
                 r"ATOMIC_Chinese\.tsv:1: unreadable header: unexpected end of data")


def test_header_field_over_csv_limit(tmp_path: Path) -> None:
    src = tmp_path / "ATOMIC_Chinese.tsv"
    src.write_text("\thead\trelation\ttail" + "x" * 140_000 + "\n0\t有人吃饭\txNeed\t饿了\n", encoding="utf-8")
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(src), "--out", str(out)]), [out],
                 r"ATOMIC_Chinese\.tsv:1: unreadable header: field larger than field limit \(131072\)")


def test_flow_weight_above_int64(tmp_path: Path) -> None:
    src = tmp_path / "flow_edges.tsv"
    src.write_text(f"source\ttarget\ttype\tweight\n披萨\t奶酪\tnext_entity\t{INT64_MAX + 1}\n", encoding="utf-8")
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(src), "--out", str(out)]), [out],
                 rf"flow_edges\.tsv:2: field 'weight': weight above the int64 maximum {INT64_MAX} "
                 rf"\(value '{INT64_MAX + 1}'\)")


def test_merged_flow_weights_above_int64(tmp_path: Path) -> None:
    """Each weight fits; the duplicate edges merged across two files do not."""
    for name in ("a.tsv", "b.tsv"):
        (tmp_path / name).write_text(f"source\ttarget\ttype\tweight\n披萨\t奶酪\tnext_entity\t{INT64_MAX}\n",
                                     encoding="utf-8")
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv"), "--out",
                                str(out)]), [out],
                 r"a\.tsv, b\.tsv: field 'weight': edge '披萨' -> '奶酪' \(next_entity\): the weights merged "
                 rf"from duplicate edges sum above the int64 maximum.*\(value {2 * INT64_MAX}\)")


def test_flow_edges_without_weight_column_are_refused(tmp_path: Path) -> None:
    """Once read as ATOMIC-2020, turning the header into edges of type 'type'/'target'."""
    src = tmp_path / "edges.tsv"
    src.write_text("source\ttarget\ttype\n披萨\t奶酪\tnext_entity\n", encoding="utf-8")
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(src), "--out", str(out)]), [out],
                 r"edges\.tsv:1: field 'weight': missing column; header has \['source', 'target', 'type'\]")


def test_nul_byte_in_a_field(tmp_path: Path) -> None:
    src = tmp_path / "flow_edges.tsv"
    src.write_bytes("source\ttarget\ttype\tweight\n披萨\t奶\x00酪\tnext_entity\t3\n".encode())
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(src), "--out", str(out)]), [out],
                 r"flow_edges\.tsv:2: NUL byte at byte \d+ \(binary or corrupt file\) \(value b'")


@pytest.mark.parametrize(("name", "raw", "match"), [
    ("flow_edges.tsv", b"\xef\xbb\xbf", r"flow_edges\.tsv:1: file is empty \(truncated\?\)"),
    ("atomic2020.tsv", b"head\trelation\ttail\n", r"atomic2020\.tsv:1: no triples \(truncated\?\)"),
    ("atomic2020.tsv", b"PersonX eats\txNeed\tnone\n", r"atomic2020\.tsv: the sources hold no nodes"),
])
def test_sources_without_a_single_node_are_refused(tmp_path: Path, name: str, raw: bytes, match: str) -> None:
    """Found by the slow fuzz tier: a file holding only a BOM converted into an empty KG, exit 0."""
    src = tmp_path / name
    src.write_bytes(raw)
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(src), "--out", str(out)]), [out], match)


def _pickled(graph: nx.DiGraph, path: Path, **planted) -> Path:
    graph.__dict__.update(planted)  # what a hostile or odd pickle can put in the instance dict
    path.write_bytes(pickle.dumps(graph, protocol=4))
    return path


def test_trusted_pickle_with_odd_cached_views_reads_its_tables(tmp_path: Path) -> None:
    """networkx caches views (edges, nodes, adj...) in the instance dict; planted values there
    are ignored: only the node and successor tables are read."""
    graph = nx.DiGraph()
    graph.add_edge("披萨", "奶酪", type="next_entity", weight=4)
    src = _pickled(graph, tmp_path / "C3KG.GRAPH", edges="not a view", nodes=7, adj=None, succ="x")
    out = tmp_path / "kg"
    result = run_cli(["kg", "convert", str(src), "--trust-pickle", "--out", str(out), "--json"])
    assert result.code == 0, result.err
    edges = kg.load_kg(out).edges
    assert edges.select("source", "target", "type", "weight").rows() == [("披萨", "奶酪", "next_entity", 4)]


@pytest.mark.parametrize(("planted", "match"), [
    ({"_succ": "x", "_adj": "x"}, r"C3KG\.GRAPH: not a networkx DiGraph: its node or adjacency table is missing"),
    ({"_succ": {"披萨": ["奶酪"]}}, r"C3KG\.GRAPH: the adjacency of node '披萨' is not a dict \(value 'list'\)"),
    ({"_node": {("a", "b"): {}}}, r"C3KG\.GRAPH: field 'node': node is not a string \(value \('a', 'b'\)\)"),
])
def test_trusted_pickle_with_broken_tables(tmp_path: Path, planted: dict, match: str) -> None:
    graph = nx.DiGraph()
    graph.add_edge("披萨", "奶酪", type="next_entity", weight=4)
    src = _pickled(graph, tmp_path / "C3KG.GRAPH", **planted)
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(src), "--trust-pickle", "--out", str(out)]), [out], match)


@pytest.mark.parametrize("weight", [float("inf"), float("nan"), 2.5, INT64_MAX + 1, -1, "3"])
def test_trusted_pickle_with_bad_weight(tmp_path: Path, weight) -> None:
    graph = nx.DiGraph()
    graph.add_edge("披萨", "奶酪", type="next_entity", weight=weight)
    src = _pickled(graph, tmp_path / "C3KG.GRAPH")
    out = tmp_path / "kg"
    expect_error("kg", run_cli(["kg", "convert", str(src), "--trust-pickle", "--out", str(out)]), [out],
                 r"C3KG\.GRAPH: field 'weight': edge '披萨' -> '奶酪' has a bad 'weight' \(a count from 0 to")


# ----------------------------------------------------------------------------- JSONL input


def test_jsonl_nested_100k_deep(tmp_path: Path, index_dir: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"dialogue_id": "a", "context": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    out = tmp_path / "k.parquet"
    expect_error("annotate", _annotate(index_dir, data, out), [out],
                 r"d\.jsonl:1: not valid JSON \(nested deeper than 64 levels\)")


@pytest.mark.parametrize(("raw", "match"), [
    (b'{"dialogue_id": "a", "context": ["ok"]}\n{"dialogue_id": "b", "context": ["\xff"]}\n',
     r"d\.jsonl:2: not valid UTF-8 at byte 34 of the line \(value b'"),
    (b'{"dialogue_id": "a", "context": ["\\ud800"]}\n',
     r"d\.jsonl:1: a string holds a lone surrogate '\\ud800' \(not encodable as UTF-8\)"),
    (b'{"dialogue_id": "a", "context": ["x"]}\n{"dialogue_id": "b", "context": ["y"' + b"9" * 5000 + b"]}\n",
     r"d\.jsonl:2: not valid JSON"),
    (b'{"dialogue_id": "a", "context": ["a\x00b"]}\n', r"d\.jsonl:1: not valid JSON \(Invalid control character"),
])
def test_jsonl_decoding_errors_name_file_and_line(tmp_path: Path, index_dir: Path, raw: bytes, match: str) -> None:
    data = tmp_path / "d.jsonl"
    data.write_bytes(raw)
    out = tmp_path / "k.parquet"
    expect_error("annotate", _annotate(index_dir, data, out), [out], match)


def test_jsonl_with_bom_is_accepted(tmp_path: Path, index_dir: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + '{"dialogue_id": "a", "context": ["周末去爬山"]}\n'.encode())
    out = tmp_path / "k.parquet"
    result = _annotate(index_dir, data, out)
    assert result.code == 0, result.err
    assert pl.read_parquet(out)["dialogue_id"].to_list() == ["a"]


def test_empty_jsonl_is_an_error_unless_asked(tmp_path: Path, index_dir: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("\n  \n", encoding="utf-8")
    out = tmp_path / "k.parquet"
    expect_error("annotate", _annotate(index_dir, data, out), [out],
                 r"d\.jsonl: no dialogues to annotate \(pass --allow-empty to write a 0-row table\)")
    result = _annotate(index_dir, data, out, "--allow-empty")
    assert result.code == 0, result.err
    assert pl.read_parquet(out).height == 0


# ----------------------------------------------------------------------------- blank contexts


def test_blank_contexts_get_no_knowledge(tmp_path: Path, index_dir: Path) -> None:
    retriever = Retriever.load(index_dir)
    blank = retriever.retrieve_batch([[], ["", " "], ["\u3000\n"]])
    assert [(r.queries, r.heads, r.knowledge) for r in blank] == [([], [], "")] * 3
    mixed = retriever.retrieve_batch([[" "], ["周末去爬山"]])  # a blank row next to a real one
    assert mixed[0].heads == [] and mixed[0].knowledge == ""
    assert mixed[1].heads and mixed[1].knowledge == retriever.retrieve(["周末去爬山"]).knowledge

    data = tmp_path / "d.jsonl"
    data.write_text('{"dialogue_id": "a", "context": []}\n{"dialogue_id": "b", "context": ["", " "]}\n'
                    '{"dialogue_id": "c", "context": ["周末去爬山"]}\n', encoding="utf-8")
    out = tmp_path / "k.parquet"
    assert _annotate(index_dir, data, out).code == 0
    table = pl.read_parquet(out)
    assert table["knowledge"].to_list()[:2] == ["", ""] and table["heads"].to_list()[:2] == [[], []]
    assert table["knowledge"][2] != ""


# ----------------------------------------------------------------------------- model files


@pytest.fixture(scope="module")
def maria_run(tmp_path_factory) -> Path:
    from fusion.modeling_maria import MariaForDialogue

    run = tmp_path_factory.mktemp("run") / "run"
    MariaForDialogue.from_preset("tiny").save_pretrained(run / "model")
    (run / "run.json").write_text(json.dumps({"model": "maria", "knowledge": None}), encoding="utf-8")
    return run


@pytest.mark.parametrize("cut", [0, 7, 500])
def test_corrupt_model_safetensors(tmp_path: Path, maria_run: Path, cut: int) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(maria_run, run)
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:cut])
    out = tmp_path / "p.jsonl"
    result = run_cli(["generate", "--run", str(run), "--out", str(out), "--limit", "1", "--device", "cpu"])
    expect_error("generate", result, [out],
                 r"model\.safetensors: not a readable safetensors file \(Error while deserializing header")


def test_hostile_bin_with_trust_pickle_is_refused_without_torch_advice(tmp_path: Path) -> None:
    """A real process: the payload never runs and torch's 're-run with weights_only=False'
    advice never reaches the user."""
    from fusion.modeling_maria import CHAR_VOCAB_SIZE, TINY_BACKBONE

    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps(dict(TINY_BACKBONE, vocab_size=CHAR_VOCAB_SIZE)), encoding="utf-8")
    marker = tmp_path / "pwned"
    payload = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')"
    # a pickle whose load calls exec(payload), written by hand so no class of this test is needed
    (bert / "pytorch_model.bin").write_bytes(
        b"\x80\x02cbuiltins\nexec\nq\x00X" + len(payload).to_bytes(4, "little") + payload.encode() + b"\x85R.")
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "tiktalk", "train", "--model", "maria", "--init", str(bert), "--trust-pickle",
         "--out", str(run), "--max-steps", "1"],
        check=False, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "pytorch_model.bin: refused: not a PyTorch state dict of plain tensors" in proc.stderr
    assert "weights_only" not in proc.stderr
    assert not marker.exists() and not run.exists()
