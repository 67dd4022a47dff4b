"""tiktalk.io: atomic writes, the output lock, crash recovery of directory swaps, leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tiktalk
from tiktalk.errors import FormatError, OutputLockedError
from tiktalk.io import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_text,
    canonical_json,
    output_lock,
    read_json,
    recover_directory,
    write_json,
)

ROOT = Path(tiktalk.__file__).resolve().parents[1]

# A child that takes the output lock of argv[1], says "held <pid>" and keeps it until a line
# arrives on stdin; when the lock is taken it prints the error and exits 3.
HOLDER = textwrap.dedent(
    """
    import os, sys
    from tiktalk.errors import OutputLockedError
    from tiktalk.io import output_lock
    try:
        with output_lock(sys.argv[1]):
            print("held", os.getpid(), flush=True)
            sys.stdin.readline()
    except OutputLockedError as err:
        print("locked", err, flush=True)
        sys.exit(3)
    """
)

# A child that replaces argv[1] (holding "old.txt") with a directory holding "new.txt" and
# dies with os._exit (no cleanup at all: a crash) at the os.rename call number argv[2].
CRASHER = textwrap.dedent(
    """
    import os, sys
    from tiktalk.io import atomic_directory
    crash_at, calls, real_rename = int(sys.argv[2]), [0], os.rename
    def rename(src, dst):
        calls[0] += 1
        if calls[0] == crash_at:
            os._exit(17)
        real_rename(src, dst)
    os.rename = rename
    with atomic_directory(sys.argv[1], overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    """
)


def _python(code: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _hold(target: Path) -> subprocess.Popen[str]:
    """Start a child that holds the lock of ``target``; return once it holds it."""
    child = _python(HOLDER, str(target), stdin=subprocess.PIPE)
    line = child.stdout.readline()
    assert line.split() == ["held", str(child.pid)], (line, child.stderr.read())
    return child


def _release(child: subprocess.Popen[str]) -> None:
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.wait(timeout=30) == 0, child.stderr.read()


def _siblings(target: Path) -> list[str]:
    """Names next to ``target`` that belong to it (its temporaries and lock files)."""
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def _old_directory(target: Path) -> None:
    target.mkdir(parents=True)
    (target / "old.txt").write_text("old", encoding="utf-8")


def _contents(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.iterdir())}


# --------------------------------------------------------------------------- output lock


def test_second_process_fails_at_once_naming_holder(tmp_path: Path) -> None:
    target = tmp_path / "out"
    child = _hold(target)
    try:
        started = time.monotonic()
        with pytest.raises(OutputLockedError) as caught, output_lock(target):
            pytest.fail("two holders")
        assert time.monotonic() - started < 2.0
        err = caught.value
        assert isinstance(err, FormatError)
        message = str(err)
        assert message.startswith(f"{target}: is being written by another process (pid {child.pid}")
        assert "started " in message and "holding the lock since " in message
        assert err.holder.pid == child.pid and err.holder.started is not None
        assert err.lock_path == str(tmp_path / ".out.lock")
        assert read_json(tmp_path / ".out.lock.json")["pid"] == child.pid
    finally:
        _release(child)
    assert not (tmp_path / ".out.lock.json").exists()  # the holder removed its record
    notes: list[str] = []
    with output_lock(target, on_notice=notes.append) as lock:
        assert lock.takeover is None and lock.previous is None
        assert lock.holder.pid == os.getpid()
        assert read_json(lock.info_path)["pid"] == os.getpid()
    assert notes == []
    assert _siblings(target) == [".out.lock"]


def test_two_child_processes_contend_one_wins(tmp_path: Path) -> None:
    target = tmp_path / "table.parquet"
    first = _hold(target)
    try:
        second = _python(HOLDER, str(target), stdin=subprocess.PIPE)
        out, err = second.communicate("\n", timeout=60)
        assert second.returncode == 3, (out, err)
        assert out.startswith(f"locked {target}: is being written by another process")
        assert f"(pid {first.pid}, started " in out
    finally:
        _release(first)


def test_stale_lock_of_killed_writer_is_taken_over(tmp_path: Path) -> None:
    target = tmp_path / "model"
    child = _hold(target)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    info = tmp_path / ".model.lock.json"
    assert read_json(info)["pid"] == child.pid  # the dead writer's record is left behind
    notes: list[str] = []
    with output_lock(target, on_notice=notes.append) as lock:
        assert lock.previous is not None and lock.previous.pid == child.pid
        assert lock.takeover == (
            f"{target}: took over the output lock of a writer that did not release it "
            f"({lock.previous.describe()}): that process is gone"
        )
        assert f"pid {child.pid}, started " in lock.takeover
        assert notes == [lock.takeover]
        assert read_json(info)["pid"] == os.getpid()  # the record now names the new holder
    assert not info.exists()


def test_lock_is_not_reentrant_and_is_released_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), output_lock(target):
        with (
            pytest.raises(OutputLockedError, match=r"already locked by this process"),
            output_lock(target),
        ):
            pass
        raise RuntimeError("body failed")
    with output_lock(target) as lock:  # released despite the error
        assert lock.takeover is None


def test_replaced_lock_file_under_live_holder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out"
    child = _hold(target)
    try:
        (tmp_path / ".out.lock").unlink()  # someone deletes the lock file while it is held
        with (
            pytest.raises(OutputLockedError, match=rf"pid {child.pid}.*was replaced while"),
            output_lock(target),
        ):
            pass
        assert read_json(tmp_path / ".out.lock.json")["pid"] == child.pid  # record kept
    finally:
        _release(child)


def test_unreadable_holder_record_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out"
    (tmp_path / ".out.lock.json").write_text("{not json", encoding="utf-8")
    with output_lock(target) as lock:
        assert lock.previous is None and lock.takeover is None
        assert read_json(lock.info_path)["pid"] == os.getpid()


# --------------------------------------------------------------------------- recovery


def _crash(target: Path, at_rename: int) -> None:
    child = _python(CRASHER, str(target), str(at_rename))
    _, err = child.communicate(timeout=60)
    assert child.returncode == 17, err


def test_crash_between_renames_restores_new_complete_copy(tmp_path: Path) -> None:
    target = tmp_path / "kg"
    _old_directory(target)
    _crash(target, at_rename=3)  # after .kg.tmp -> .kg.new and kg -> .kg.old
    assert not target.exists()
    names = _siblings(target)
    assert [n[:8] for n in names] == [".kg.new-", ".kg.old-"]
    message = recover_directory(target)
    assert message == (
        f"{target} was missing after an interrupted replacement: restored the new complete copy "
        f"from {names[0]}; the previous copy {names[1]} is removed by the next write"
    )
    assert _contents(target) == {"new.txt": "new"}
    assert recover_directory(target) is None  # nothing left to do
    notes: list[str] = []
    with (
        output_lock(target),
        atomic_directory(target, overwrite=True, on_notice=notes.append) as tmp,
    ):
        (tmp / "newer.txt").write_text("newer", encoding="utf-8")
    assert notes == [
        f"{target}: removed 1 leftover temporary of an interrupted earlier write: {names[1]}"
    ]
    assert _contents(target) == {"newer.txt": "newer"}
    assert _siblings(target) == [".kg.lock"]


def test_crash_before_old_is_moved_keeps_target(tmp_path: Path) -> None:
    target = tmp_path / "kg"
    _old_directory(target)
    _crash(target, at_rename=2)  # .kg.tmp -> .kg.new done, kg untouched
    assert _contents(target) == {"old.txt": "old"}
    assert recover_directory(target) is None
    assert [n[:8] for n in _siblings(target)] == [".kg.new-"]


def test_previous_copy_restored_when_no_complete_new_copy(tmp_path: Path) -> None:
    # What the atomic_directory before issue 12 left when it crashed between its renames:
    # the previous copy moved aside and a .tmp- directory that was never marked complete.
    target = tmp_path / "kg"
    old = tmp_path / ".kg.old-0123abcd"
    _old_directory(old)
    incomplete = tmp_path / ".kg.tmp-89abcdef"
    incomplete.mkdir()
    (incomplete / "new.txt").write_text("half", encoding="utf-8")
    message = recover_directory(target)
    assert message == (
        f"{target} was missing after an interrupted replacement: restored the previous copy "
        f"from .kg.old-0123abcd (no complete new copy was left)"
    )
    assert _contents(target) == {"old.txt": "old"}
    assert _contents(incomplete) == {"new.txt": "half"}  # left for the next locked write


def test_incomplete_tmp_is_never_restored(tmp_path: Path) -> None:
    target = tmp_path / "kg"
    incomplete = tmp_path / ".kg.tmp-89abcdef"
    incomplete.mkdir()
    (incomplete / "new.txt").write_text("half", encoding="utf-8")
    assert recover_directory(target) is None
    assert not target.exists()
    notes: list[str] = []
    with (
        output_lock(target),
        atomic_directory(target, on_notice=notes.append) as tmp,
    ):  # no overwrite needed
        (tmp / "new.txt").write_text("whole", encoding="utf-8")
    assert notes == [
        f"{target}: removed 1 leftover temporary of an interrupted earlier write: .kg.tmp-89abcdef"
    ]
    assert _contents(target) == {"new.txt": "whole"}


def _failing_rename(monkeypatch: pytest.MonkeyPatch, fail: set[int]) -> list[tuple[str, str]]:
    """Make the os.rename calls numbered in ``fail`` raise; return the log of all calls."""
    calls: list[tuple[str, str]] = []
    real = os.rename

    def rename(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) in fail:
            raise OSError(5, "injected failure", str(src))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    return calls


def test_injected_failure_of_final_rename_puts_old_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "kg"
    _old_directory(target)
    calls = _failing_rename(monkeypatch, {3})
    with (
        pytest.raises(OSError, match="injected failure"),
        atomic_directory(target, overwrite=True) as tmp,
    ):
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert [c[0][:8] for c in calls] == [".kg.tmp-", "kg", ".kg.new-", ".kg.old-"]
    assert _contents(target) == {"old.txt": "old"}
    assert _siblings(target) == []


def test_injected_failure_of_second_rename_keeps_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "kg"
    _old_directory(target)
    _failing_rename(monkeypatch, {2})
    with (
        pytest.raises(OSError, match="injected failure"),
        atomic_directory(target, overwrite=True) as tmp,
    ):
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert _contents(target) == {"old.txt": "old"}
    assert _siblings(target) == []


def test_injected_failure_between_renames_then_recover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "kg"
    _old_directory(target)
    _failing_rename(monkeypatch, {3, 4})  # the swap's last rename and the rollback both fail
    with (
        pytest.raises(OSError, match="injected failure"),
        atomic_directory(target, overwrite=True) as tmp,
    ):
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    monkeypatch.undo()
    assert not target.exists()
    assert [n[:8] for n in _siblings(target)] == [".kg.new-", ".kg.old-"]
    notes: list[str] = []
    # The next write recovers first, so a plain (no overwrite) write finds the target there.
    with pytest.raises(FileExistsError), atomic_directory(target, on_notice=notes.append):
        pass
    assert len(notes) == 1 and notes[0].startswith(f"{target} was missing")
    assert _contents(target) == {"new.txt": "new"}


def test_recover_leaves_a_live_writers_swap_alone(tmp_path: Path) -> None:
    target = tmp_path / "kg"
    new = tmp_path / ".kg.new-0123abcd"
    _old_directory(new)
    child = _hold(target)
    try:
        assert recover_directory(target) is None
        assert not target.exists() and new.is_dir()
    finally:
        _release(child)
    assert recover_directory(target) is not None
    assert _contents(target) == {"old.txt": "old"}


def test_recover_takes_over_dead_writers_lock(tmp_path: Path) -> None:
    target = tmp_path / "kg"
    child = _hold(target)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    _old_directory(tmp_path / ".kg.old-0123abcd")
    message = recover_directory(target)
    assert message is not None
    took_over, restored = message.split("; ", 1)
    assert f"pid {child.pid}" in took_over and took_over.endswith("that process is gone")
    assert restored.startswith(f"{target} was missing")
    assert _contents(target) == {"old.txt": "old"}


# --------------------------------------------------------------------------- leftovers


def test_stale_temporaries_removed_on_next_locked_write_and_reported(tmp_path: Path) -> None:
    target = tmp_path / "kg"
    _old_directory(target)
    stale = [".kg.tmp-aaaaaaaa", ".kg.old-bbbbbbbb", ".kg.new-cccccccc"]
    for name in stale:
        _old_directory(tmp_path / name)
    (tmp_path / ".kg.abc_1234.tmp").write_bytes(b"half")  # an atomic_write_bytes temporary
    (tmp_path / "..kg.lock.json.xyz98765.tmp").write_bytes(b"{")  # of the holder record
    # Temporaries of other targets whose names start alike stay.
    others = [".kg.b.abc_1234.tmp", ".kgx.tmp-aaaaaaaa", ".kg.tmp-aaaaaaaa.tmp", "kg.tmp-aaaaaaaa"]
    for name in others:
        (tmp_path / name).write_bytes(b"other")
    notes: list[str] = []
    with (
        output_lock(target, on_notice=notes.append),
        atomic_directory(target, overwrite=True, on_notice=notes.append) as tmp,
    ):
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    removed = sorted([*stale, ".kg.abc_1234.tmp", "..kg.lock.json.xyz98765.tmp"])
    assert notes == [
        f"{target}: removed 5 leftover temporaries of an interrupted earlier write: "
        + ", ".join(removed)
    ]
    assert _contents(target) == {"new.txt": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*others, ".kg.lock", "kg"])


def test_file_temporaries_removed_by_next_locked_file_write(tmp_path: Path) -> None:
    target = tmp_path / "scores.json"
    (tmp_path / ".scores.json.k2j4_x9q.tmp").write_bytes(b"{")
    notes: list[str] = []
    with output_lock(target):
        write_json(target, {"b": 1, "a": 2}, on_notice=notes.append)
        write_json(target, {"b": 1, "a": 3}, on_notice=notes.append)  # nothing left: no notice
    assert notes == [
        f"{target}: removed 1 leftover temporary of an interrupted earlier write: "
        + ".scores.json.k2j4_x9q.tmp"
    ]
    assert read_json(target) == {"a": 3, "b": 1}
    assert _siblings(target) == [".scores.json.lock"]


def test_temporaries_left_alone_without_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "kg"
    (tmp_path / ".kg.tmp-aaaaaaaa").mkdir()
    (tmp_path / ".kg.abc_1234.tmp").write_bytes(b"half")
    notes: list[str] = []
    with atomic_directory(target, on_notice=notes.append) as tmp:
        (tmp / "a").write_text("a", encoding="utf-8")
    atomic_write_bytes(tmp_path / "kg.json", b"{}", on_notice=notes.append)
    assert notes == []
    assert _siblings(target) == [".kg.abc_1234.tmp", ".kg.tmp-aaaaaaaa"]


# --------------------------------------------------------------------------- unchanged behaviour


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_write_content_and_permissions_follow_umask(
    tmp_path: Path, umask: int, mode: int
) -> None:
    previous = os.umask(umask)
    try:
        path = tmp_path / "sub" / "f.txt"
        atomic_write_text(path, "héllo\n")
        assert path.read_bytes() == "héllo\n".encode()
        assert path.stat().st_mode & 0o777 == mode
        atomic_write_bytes(path, b"\x00\x01")  # replaces
        assert path.read_bytes() == b"\x00\x01"
        assert path.stat().st_mode & 0o777 == mode
    finally:
        os.umask(previous)
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]


def test_write_json_is_canonical_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    obj = {"z": [1, 2], "a": {"é": None}}
    write_json(path, obj)
    assert path.read_text(encoding="utf-8") == canonical_json(obj)
    assert (
        canonical_json(obj) == json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n"
    )
    assert read_json(path) == obj


def test_failed_file_write_keeps_old_content_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")

    def replace(src, dst):
        raise OSError(28, "injected: no space left")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="no space"):
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_atomic_directory_create_refuse_overwrite_and_fail(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "out"
    with atomic_directory(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.tmp-")
        (tmp / "a.txt").write_text("1", encoding="utf-8")
    assert _contents(target) == {"a.txt": "1"}
    with pytest.raises(FileExistsError, match="already exists"), atomic_directory(target):
        pass
    with pytest.raises(RuntimeError), atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2", encoding="utf-8")
        raise RuntimeError("bad input")
    assert _contents(target) == {"a.txt": "1"}
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2", encoding="utf-8")
    assert _contents(target) == {"b.txt": "2"}
    assert _siblings(target) == []


def test_atomic_directory_replaces_a_file_target(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("file", encoding="utf-8")
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("1", encoding="utf-8")
    assert _contents(target) == {"a.txt": "1"}
    assert _siblings(target) == []


def test_a_lock_on_the_directory_above_covers_its_subdirectories(tmp_path):
    """A run's lock lets the trainer's writes of RUN/model remove a killed run's leftovers."""
    run = tmp_path / "run"
    (run / ".model.tmp-deadbeef").mkdir(parents=True)  # a killed writer's half-written model
    notes: list[str] = []
    with output_lock(run), atomic_directory(run / "model", on_notice=notes.append) as tmp:
        (tmp / "w.txt").write_text("new", encoding="utf-8")
    assert (run / "model" / "w.txt").read_text(encoding="utf-8") == "new"
    assert not (run / ".model.tmp-deadbeef").exists() and any("removed" in n for n in notes)
    (run / ".model.tmp-cafebabe").mkdir()
    with atomic_directory(run / "model", overwrite=True):  # no lock held: a live writer may own it
        pass
    assert (run / ".model.tmp-cafebabe").exists()
