"""Issue 22.6: what the filesystem refuses (a read-only directory, a file past the size limit,
a symlink loop, an output that is a directory, a parent that is a file, a missing file) is one
line naming the path, exit 2, and nothing left behind; it used to be a traceback (an
``OSError``, or a foreign writer's error: Polars' ``ComputeError``, FAISS' ``RuntimeError``,
safetensors' ``SafetensorError``)."""

from __future__ import annotations

import errno
import os
import re
import resource
import signal
from pathlib import Path

import pytest

from tests.cli_contract import Result, expect_error, leftovers, run_cli, run_cli_process

RAW = Path(__file__).resolve().parents[2] / "tiktalk" / "data" / "sample" / "raw"


def _error_line(result: Result, command: str) -> str:
    """The one error line of exit 2 (progress bars printed before the failure are allowed)."""
    assert result.code == 2, result.err
    lines = [line for line in result.err.splitlines() if line.strip() and not re.search(r"\d+%\|", line)]
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"tiktalk {command}: error: "), lines[0]
    assert "Traceback" not in result.err
    return lines[0]


@pytest.mark.parametrize("blocker", ["file", "symlink loop"])
def test_a_parent_that_is_a_file_or_a_symlink_loop_is_named(tmp_path, blocker):
    part = tmp_path / "part"
    if blocker == "file":
        part.write_text("x", encoding="utf-8")
        why = "is a file, not a directory"
    else:
        os.symlink(tmp_path / "other", part)
        os.symlink(part, tmp_path / "other")
        why = "is a symlink that loops or leads nowhere"
    out = part / "kg"
    expect_error("kg convert", run_cli(["kg", "convert", "sample", "--out", str(out)]), [],
                 rf"cannot write {re.escape(str(out))}: {re.escape(str(part))} {why}$")


def test_an_output_file_that_is_a_directory_is_refused_and_kept(tmp_path, index):
    data = tmp_path / "ctx.jsonl"
    data.write_text('{"dialogue_id": "a", "context": ["你好"]}\n', encoding="utf-8")
    out = tmp_path / "out"
    (out / "inside").mkdir(parents=True)
    result = run_cli(["annotate", "--index", str(index), "--kg", "sample", "--data", str(data), "--out", str(out),
                      "--workers", "1", "--overwrite"])
    assert _error_line(result, "annotate").endswith(f"{out} is a directory; a file is written there")
    assert (out / "inside").is_dir() and leftovers(out) == []


@pytest.fixture
def read_only(monkeypatch, tmp_path) -> Path:
    """A directory whose entries cannot be created, renamed or opened for writing. The tests
    run as root here, which ignores ``chmod``; so the refusal is injected where the kernel
    would give it (``os.open``, ``os.mkdir``, ``os.rename``, ``os.replace``)."""
    frozen = tmp_path / "ro"
    frozen.mkdir()

    def inside(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and Path(os.path.abspath(path)).parent == frozen

    def refuse(real, writes_only=False):
        def call(path, *args, **kwargs):
            flags = args[0] if args else kwargs.get("flags", 0)
            if inside(path) and (not writes_only or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", refuse(os.open, writes_only=True))
    monkeypatch.setattr(os, "mkdir", refuse(os.mkdir))
    monkeypatch.setattr(os, "rename", refuse(os.rename))
    monkeypatch.setattr(os, "replace", refuse(os.replace))
    return frozen


@pytest.mark.parametrize("argv", [
    ["kg", "convert", "sample", "--out", "{ro}/kg"],
    ["data", "build", str(RAW), "--out", "{ro}/ds"],
    ["index", "build", "--kg", "sample", "--out", "{ro}/idx", "--encoder", "hash:32", "--workers", "1"],
], ids=lambda argv: " ".join(argv[:2]))
def test_a_read_only_directory_is_one_line_naming_the_path(read_only, argv):
    argv = [a.format(ro=read_only) for a in argv]
    line = expect_error(argv[0], run_cli(argv), [Path(argv[argv.index("--out") + 1])], r"Permission denied")
    assert str(read_only) in line


def _limit_file_size() -> None:
    """In the child only: the file size limit lowered to 3000 bytes (``ulimit -f``), with
    SIGXFSZ ignored so that a write past it fails with EFBIG instead of killing the process.
    Lowering it in the test process itself broke CI: pytest's own output goes to a log file
    already past 3000 bytes there, and its next write failed with EFBIG."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@pytest.mark.parametrize("argv", [
    ["kg", "convert", "sample", "--out", "{tmp}/kg"],  # Polars' Parquet writer
    ["data", "build", str(RAW), "--out", "{tmp}/ds"],  # safetensors' writer
    ["index", "build", "--kg", "sample", "--out", "{tmp}/idx", "--encoder", "hash:32", "--workers", "1"],
    # FAISS' writer, which keeps no errno
], ids=lambda argv: " ".join(argv[:2]))
def test_a_file_past_the_size_limit_is_one_line_naming_the_output(tmp_path, argv):
    argv = [a.format(tmp=tmp_path) for a in argv]
    out = Path(argv[argv.index("--out") + 1])
    line = _error_line(run_cli_process(argv, preexec_fn=_limit_file_size), argv[0])
    assert line.endswith((f"{out}: File too large", f"{out}: File too large (the file size limit is 3000 bytes)"))
    assert not out.exists() and leftovers(out) == []


def test_filesystem_message_names_both_paths_of_a_rename():
    from tiktalk.commands.main import filesystem_message

    err = OSError(errno.EISDIR, os.strerror(errno.EISDIR), "a.tmp", None, "a")
    assert filesystem_message(err) == "a.tmp -> a: Is a directory"
    assert filesystem_message(OSError(errno.EFBIG, os.strerror(errno.EFBIG))) == "File too large"


def test_an_io_error_keeps_its_traceback(monkeypatch, tmp_path):
    """EIO is not something the user did: it propagates (tests/reliability/test_recovery.py
    relies on it too)."""
    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "injected failure", "x")

    monkeypatch.setattr(os, "rename", fail)
    with pytest.raises(OSError, match="injected failure"):
        run_cli(["kg", "convert", "sample", "--out", str(tmp_path / "kg")])


def test_a_missing_file_is_one_line(tmp_path):
    missing = tmp_path / "nope.tsv"
    expect_error("kg stats", run_cli(["kg", "stats", str(missing)]), [], re.escape(str(missing)))
