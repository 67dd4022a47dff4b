"""Two real processes writing the same output: one refuses at once naming the other, nothing
is lost; a killed writer's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from retrieval.index import HeadIndex
from tests.cli_contract import run_cli

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# Runs `tiktalk ARGV...` with the function at SPEC (module:attr or module:Class.method) held
# until the file GATE exists: the writer has taken its lock and cannot finish before the test
# has run its rival. Usage: python -c GATED GATE SPEC ARGV...
GATED = """
import importlib, pathlib, sys, time
gate, spec, argv = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
module, _, path = spec.partition(":")
*owner_path, name = path.split(".")
owner = importlib.import_module(module)
for part in owner_path:
    owner = getattr(owner, part)
real = getattr(owner, name)
def held(*args, **kwargs):
    while not gate.exists():
        time.sleep(0.02)
    return real(*args, **kwargs)
setattr(owner, name, held)
from tiktalk.commands.main import main
sys.exit(main(argv))
"""
HOLD = "import sys; from tiktalk.io import output_lock\nwith output_lock(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.readline()\n"


def tiktalk(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tiktalk", *argv], check=False, capture_output=True, text=True,
                          cwd=ROOT, env=ENV, timeout=300)


def start_gated(gate: Path, spec: str, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", GATED, str(gate), spec, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)


def wait_for_holder(target: Path, pid: int, timeout: float = 120.0) -> None:
    """Until ``pid`` has recorded itself as the holder of ``target``'s output lock."""
    info = target.parent / f".{target.name}.lock.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(info.read_text(encoding="utf-8"))["pid"] == pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never took the lock of {target}")


def assert_refused_naming(proc: subprocess.CompletedProcess, command: str, pid: int) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"tiktalk {command}: error: ")
    assert f"is being written by another process (pid {pid}, started " in proc.stderr


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "idx"
    assert run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32"]).code == 0
    return out


def contexts(path: Path, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    path.write_text("".join(json.dumps({"dialogue_id": d, "context": [f"周末去爬山{d}"]}) + "\n" for d in ids),
                    encoding="utf-8")
    return ids


def parts_dirs(out: Path) -> list[str]:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.parts-")]


def test_concurrent_annotate_one_refuses_nothing_lost(tmp_path: Path, index_dir: Path) -> None:
    """The issue's lost run: two annotates of different inputs to one --out both said 1,000 rows."""
    out, gate = tmp_path / "k.parquet", tmp_path / "gate"
    ids_a, ids_b = contexts(tmp_path / "a.jsonl", "a", 5), contexts(tmp_path / "b.jsonl", "b", 4)
    first = start_gated(gate, "retrieval.retriever:Retriever.retrieve_batch", "annotate", "--index",
                        str(index_dir), "--data", str(tmp_path / "a.jsonl"), "--out", str(out), "--chunk-size", "2")
    try:
        wait_for_holder(out, first.pid)
        second = tiktalk("annotate", "--index", str(index_dir), "--data", str(tmp_path / "b.jsonl"), "--out", str(out))
        assert_refused_naming(second, "annotate", first.pid)
    finally:
        gate.touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert pl.read_parquet(out)["dialogue_id"].to_list() == ids_a  # the first run, whole
    assert parts_dirs(out) == []
    again = tiktalk("annotate", "--index", str(index_dir), "--data", str(tmp_path / "b.jsonl"), "--out", str(out))
    assert again.returncode == 2 and "already exists (pass overwrite=True / --overwrite)" in again.stderr
    assert tiktalk("annotate", "--index", str(index_dir), "--data", str(tmp_path / "b.jsonl"), "--out", str(out),
                   "--overwrite").returncode == 0
    assert pl.read_parquet(out)["dialogue_id"].to_list() == ids_b


def test_racing_identical_annotates_exactly_one_writes(tmp_path: Path, index_dir: Path) -> None:
    """Once: both exit 0 or 'No such file ... part-000004.parquet' and a stranded parts folder."""
    out = tmp_path / "k.parquet"
    ids = contexts(tmp_path / "a.jsonl", "a", 12)
    argv = [sys.executable, "-m", "tiktalk", "annotate", "--index", str(index_dir), "--data",
            str(tmp_path / "a.jsonl"), "--out", str(out), "--chunk-size", "1"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert loser.count("\n") == 1 and ("being written by another process" in loser or "already exists" in loser)
    assert pl.read_parquet(out)["dialogue_id"].to_list() == ids
    assert parts_dirs(out) == []


def test_concurrent_index_builds(tmp_path: Path) -> None:
    """Once: `OSError: Directory not empty` from the second build's rename."""
    out, gate = tmp_path / "idx", tmp_path / "gate"
    build = ["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32", "--overwrite"]
    first = start_gated(gate, "retrieval.index:build_index", *build)
    try:
        wait_for_holder(out, first.pid)
        assert_refused_naming(tiktalk(*build, "--factory", "HNSW32"), "index", first.pid)
    finally:
        gate.touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert HeadIndex.load(out).manifest["factory"] == "Flat"
    # ungated, the two may also run one after the other (both exit 0): never a traceback
    procs = [subprocess.Popen([sys.executable, "-m", "tiktalk", *build], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert 0 in [code for code, _ in results], results
    for code, err in results:
        assert "Traceback" not in err
        assert code == 0 or (code == 2 and "being written by another process" in err), (code, err)
    assert HeadIndex.load(out).manifest["factory"] == "Flat"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".idx.") and p.name != ".idx.lock"] == []


def test_killed_writers_lock_is_taken_over(tmp_path: Path, index_dir: Path) -> None:
    out, gate = tmp_path / "k.parquet", tmp_path / "gate"
    ids = contexts(tmp_path / "a.jsonl", "a", 3)
    argv = ["annotate", "--index", str(index_dir), "--data", str(tmp_path / "a.jsonl"), "--out", str(out)]
    first = start_gated(gate, "retrieval.retriever:Retriever.retrieve_batch", *argv)
    wait_for_holder(out, first.pid)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    second = tiktalk(*argv)
    assert second.returncode == 0, second.stderr
    assert f"took over the output lock of a writer that did not release it (pid {first.pid}" in second.stderr
    assert "that process is gone" in second.stderr
    assert pl.read_parquet(out)["dialogue_id"].to_list() == ids


@pytest.mark.parametrize("command", [
    ["kg", "convert", "sample", "--out", "{out}"],
    ["data", "build", "sample", "--out", "{out}"],
    ["index", "build", "--kg", "sample", "--encoder", "hash:32", "--out", "{out}"],
    ["annotate", "--index", "{index}", "--data", "sample", "--out", "{out}"],
    ["train", "--model", "maria", "--preset", "tiny", "--max-steps", "1", "--out", "{out}"],
], ids=lambda c: " ".join(c[:2]))
def test_every_writing_command_takes_the_lock(tmp_path: Path, index_dir: Path, command: list[str]) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT, env=ENV)
    try:
        assert holder.stdout.readline() == "held\n"
        argv = [a.format(out=out, index=index_dir) for a in command]
        result = run_cli(argv)
        assert result.code == 2, result.err
        assert result.err.count("\n") == 1
        assert f"{out}: is being written by another process (pid {holder.pid}, started " in result.err
        assert not out.exists()
    finally:
        holder.communicate("\n", timeout=60)
