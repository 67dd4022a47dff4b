"""A directory replacement interrupted between its two renames is undone by the next open.

At the command level (a failure injected into ``index build``'s swap) and for every reader:
KG, dataset, index and model directories.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import kg
from retrieval.index import HeadIndex
from tests.cli_contract import run_cli
from tiktalk.dataset import load_dataset


def _fail_renames(monkeypatch: pytest.MonkeyPatch, target: Path) -> list[tuple[str, str]]:
    """Fail the swap's last rename (``.X.new-*`` -> X) and the rollback (``.X.old-*`` -> X): the
    state a crash between the two renames leaves. Returns the log of renames."""
    calls: list[tuple[str, str]] = []
    real = os.rename

    def rename(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if Path(dst).name == target.name and Path(src).name.startswith((f".{target.name}.new-",
                                                                          f".{target.name}.old-")):
            raise OSError(5, "injected failure", str(src))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    return calls


def _hidden(target: Path) -> list[str]:
    return sorted(p.name[: len(target.name) + 6] for p in target.parent.iterdir()
                  if p.name.startswith(f".{target.name}.") and p.name != f".{target.name}.lock")


def test_index_build_failing_between_renames_then_retrieve_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idx = tmp_path / "idx"
    build = ["index", "build", "--kg", "sample", "--out", str(idx), "--encoder", "hash:32", "--json"]
    assert run_cli(build).code == 0
    calls = _fail_renames(monkeypatch, idx)
    with pytest.raises(OSError, match="injected failure"):  # an OS failure is not a bad input: it propagates
        run_cli([*build, "--factory", "HNSW32", "--overwrite"])
    monkeypatch.undo()
    assert [c[0][:9] for c in calls] == [".idx.tmp-", "idx", ".idx.new-", ".idx.old-"]
    assert not idx.exists() and _hidden(idx) == [".idx.new-", ".idx.old-"]

    result = run_cli(["retrieve", "--index", str(idx), "--json", "周末去爬山"])  # the next open
    assert result.code == 0, result.err
    assert result.err.startswith(f"tiktalk: note: {idx} was missing after an interrupted replacement: "
                                 "restored the new complete copy from .idx.new-")
    assert HeadIndex.load(idx).manifest["factory"] == "HNSW32"  # the new build, complete
    # the next write removes the previous copy left beside it, and says so
    rebuilt = run_cli([*build, "--overwrite"])
    assert rebuilt.code == 0 and "removed 1 leftover temporary of an interrupted earlier write: .idx.old-" \
        in rebuilt.err
    assert _hidden(idx) == [] and HeadIndex.load(idx).manifest["factory"] == "Flat"


def test_index_build_failing_before_the_swap_keeps_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idx = tmp_path / "idx"
    build = ["index", "build", "--kg", "sample", "--out", str(idx), "--encoder", "hash:32", "--json"]
    assert run_cli(build).code == 0
    real = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".idx.tmp-"):
            raise OSError(5, "injected failure", str(src))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="injected failure"):
        run_cli([*build, "--factory", "HNSW32", "--overwrite"])
    monkeypatch.undo()
    assert HeadIndex.load(idx).manifest["factory"] == "Flat" and _hidden(idx) == []


def _maria_dir(out: Path) -> Callable[[Path], object]:
    from fusion.modeling_maria import MariaForDialogue

    MariaForDialogue.from_preset("tiny").save_pretrained(out)
    return MariaForDialogue.from_pretrained


def _dialogpt_dir(out: Path) -> Callable[[Path], object]:
    from baselines.dialogpt import DialoGPTChat

    DialoGPTChat.from_preset("tiny").save_pretrained(out)
    return DialoGPTChat.from_pretrained


def _kg_dir(out: Path) -> Callable[[Path], object]:
    kg.convert([kg.sample_dir()], out)
    return kg.load_kg


def _dataset_dir(out: Path) -> Callable[[Path], object]:
    shutil.copytree(load_dataset("sample").root, out)
    return load_dataset


def _index_dir(out: Path) -> Callable[[Path], object]:
    assert run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32"]).code == 0
    return HeadIndex.load


@pytest.mark.parametrize("make", [_kg_dir, _dataset_dir, _index_dir, _maria_dir, _dialogpt_dir],
                         ids=["kg", "dataset", "index", "maria", "dialogpt"])
@pytest.mark.parametrize("left", ["new", "old"])
def test_every_reader_restores_an_interrupted_replacement(tmp_path: Path, make, left: str) -> None:
    """A crash between the renames leaves the target missing beside ``.X.new-*`` (complete) or
    only ``.X.old-*``; opening it puts that copy back."""
    target = tmp_path / "artefact"
    load = make(target)
    os.rename(target, tmp_path / f".artefact.{left}-0123abcd")
    load(target)
    assert target.is_dir() and _hidden(target) == []
