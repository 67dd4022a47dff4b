"""Atomic writes, output locks and crash recovery, hashing and JSON helpers shared by every package.

Everything the library writes goes to a temporary path first and is moved into place with
``os.replace`` / ``os.rename``, so a crash or a bad input never leaves a half-written
artefact behind (the faiss contrib habit). On top of that (issue 12, "crash, concurrency and
bad input"):

* :func:`output_lock` makes one process the only writer of a target. It is non-blocking: a
  second writer fails at once with :class:`~tiktalk.errors.OutputLockedError`, which names
  the holder. A lock left by a killed writer is taken over (the kernel already released it;
  the holder record it left is replaced and the take-over is reported).
* :func:`atomic_directory` marks its temporary directory complete before it swaps it in, so
  a crash between the two renames of the swap is recoverable: :func:`recover_directory`
  puts the new complete copy (else the previous one) back at the target. The next
  :func:`atomic_directory` calls it first; readers may call it before they open a directory.
* Leftover temporaries of an interrupted write are removed by the next write of the same
  target, but only when that write runs inside ``output_lock(target)`` in this process: the
  lock is what proves that no live writer owns them. Taking the lock is the caller's job::

      with output_lock(out, on_notice=note):
          with atomic_directory(out, overwrite=True, on_notice=note) as tmp:
              ...

Names next to a target ``X`` (all hidden): ``.X.lock`` (the lock file, kept after release
so that waiters share one inode), ``.X.lock.json`` (who holds the lock, only while held),
``.X.<8 chars>.tmp`` (a file being written by :func:`atomic_write_bytes`), ``.X.tmp-<id>``
(a directory being written), ``.X.new-<id>`` (a complete directory about to replace ``X``)
and ``.X.old-<id>`` (the previous ``X`` while it is being replaced).

Notices. Whatever the user should hear about (a taken-over lock, a restored directory,
removed leftovers) is passed as one sentence to the ``on_notice: Callable[[str], None] |
None`` argument of the function that did it; with ``None`` (the default) it is dropped, so
this module never prints or logs anything itself. :func:`recover_directory` also returns its
sentence, and :func:`output_lock` yields an :class:`OutputLock` that records a take-over.

The holder record and the process facts behind it are in :mod:`tiktalk.lock_holder`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tiktalk.errors import (
    FormatError,
    MissingInputError,
    OutputExistsError,
    OutputLockedError,
    TiktalkError,
    UsageError,
)
from tiktalk.lock_holder import LockHolder


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open_input(path) as fh:  # a FIFO would block: refused at once
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def user_cache_dir() -> Path:
    """The per-user cache root: ``$TIKTALK_CACHE``, else ``$XDG_CACHE_HOME/tiktalk``, else
    ``~/.cache/tiktalk`` (created by whoever writes into it)."""
    if os.environ.get("TIKTALK_CACHE"):
        return Path(os.environ["TIKTALK_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg and os.path.isabs(os.path.expanduser(xdg)) else Path.home() / ".cache") / "tiktalk"


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and fixed separators: equal objects give equal bytes."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _notify(on_notice: Callable[[str], None] | None, message: str | None) -> None:
    if message and on_notice is not None:
        on_notice(message)


# Our longest sibling suffix is ``.lock.json`` plus a temporary's ``.<8>.tmp`` around it; a
# name that would not fit the 255-byte limit of a file name is shortened with its hash.
_NAME_MAX = 255
_SUFFIX_ROOM = 40


def sibling_stem(name: str) -> str:
    """``name`` as the hidden siblings of a target spell it: itself, or when ``.NAME.lock.json``
    (and its temporary) would pass 255 bytes, a prefix of it plus ``~`` and 12 hex digits of its
    sha256 (so two long names sharing a prefix still get two locks)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) + _SUFFIX_ROOM <= _NAME_MAX:
        return name
    keep = raw[: _NAME_MAX - _SUFFIX_ROOM - 13].decode("utf-8", "ignore")
    return f"{keep}~{hashlib.sha256(raw).hexdigest()[:12]}"


def _sibling(target: Path, suffix: str) -> Path:
    return target.parent / f".{sibling_stem(target.name)}{suffix}"


def _fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable; a no-op where directories cannot be synced."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush every regular file and directory under ``root`` to disk before it is marked complete."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except PermissionError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


# --------------------------------------------------------------------------- output lock

_HELD: dict[str, int] = {}  # lock key -> pid of the holder in this process (forks inherit it)
_HELD_GUARD = threading.Lock()


def _lock_key(target: Path) -> str:
    return os.path.join(os.path.realpath(target.parent), target.name)


def _holds_lock(target: Path) -> bool:
    """Whether this process holds ``output_lock`` of ``target`` or of a directory above it (a
    run directory's lock covers its ``model/`` and ``checkpoints/step-N``), so no live writer
    owns the target's temporaries."""
    key = Path(_lock_key(target))
    with _HELD_GUARD:
        return any(_HELD.get(str(path)) == os.getpid() for path in (key, *key.parents))


@dataclass(frozen=True)
class OutputLock:
    """What :func:`output_lock` yields. ``takeover`` is the notice when a dead writer's lock
    was taken over (``previous`` is that writer), else ``None``."""

    target: Path
    lock_path: Path
    info_path: Path
    holder: LockHolder
    previous: LockHolder | None = None
    takeover: str | None = None


def _read_holder(info_path: Path) -> LockHolder | None:
    try:
        return LockHolder.from_json(read_json(info_path))
    except (OSError, ValueError):
        return None


def _locked_error(target: Path, lock_path: Path, info_path: Path) -> OutputLockedError:
    """The error for a lock held elsewhere; waits up to 2 s for a new holder to say who it is."""
    deadline = time.monotonic() + 2.0
    while True:
        holder = _read_holder(info_path)
        alive = None if holder is None else holder.alive()
        if (holder is not None and alive is not False) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if holder is None:
        who = "it has not recorded who it is yet"
    elif alive is False:
        who = f"it has not recorded who it is yet; the last recorded holder, {holder.describe()}, is gone"
        holder = None
    else:
        who = holder.describe()
    return OutputLockedError(
        f"is being written by another process ({who}); lock file {lock_path}",
        target=target,
        lock_path=lock_path,
        holder=holder,
    )


@contextlib.contextmanager
def output_lock(
    target: str | Path, *, on_notice: Callable[[str], None] | None = None
) -> Iterator[OutputLock]:
    """Hold the exclusive, non-blocking output lock of ``target`` (a file or directory path).

    The lock is an OS lock (``filelock``) on the sibling ``.X.lock``; while it is held the
    sibling ``.X.lock.json`` records the holder (:class:`~tiktalk.lock_holder.LockHolder`: pid, process start
    time, when it took the lock, command). Raises :class:`~tiktalk.errors.OutputLockedError`
    at once, naming the target and the holder, when another live process holds it, and
    also when this process already holds it (not re-entrant).

    The kernel releases the OS lock of a killed process; the holder record it left behind
    is replaced and the take-over is reported through ``on_notice`` and
    :attr:`OutputLock.takeover`. Inside the ``with`` block, :func:`atomic_write_bytes` /
    :func:`atomic_directory` of this same target recover an interrupted directory swap and
    remove the leftover temporaries of earlier writes.
    """
    import filelock

    target = Path(target)
    make_parent(target)
    lock_path = _sibling(target, ".lock")
    info_path = _sibling(target, ".lock.json")
    key = _lock_key(target)

    def held_here() -> OutputLockedError:
        return OutputLockedError(
            f"is already locked by this process (pid {os.getpid()}); output_lock is not "
            f"re-entrant; lock file {lock_path}",
            target=target,
            lock_path=lock_path,
            holder=_read_holder(info_path),
        )

    if _holds_lock(target):
        raise held_here()
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(blocking=False)
    except filelock.Timeout:
        if _holds_lock(target):  # another thread of this process took it just now
            raise held_here() from None
        raise _locked_error(target, lock_path, info_path) from None
    try:
        previous = _read_holder(info_path)
        takeover = None
        if previous is not None:
            alive = previous.alive()
            if alive and previous.pid != os.getpid():
                raise OutputLockedError(
                    f"is being written by another process ({previous.describe()}), whose lock "
                    f"file {lock_path} was replaced while it held it; wait until it is done",
                    target=target,
                    lock_path=lock_path,
                    holder=previous,
                )
            if alive is None or previous.pid != os.getpid():
                gone = "that process is gone" if alive is False else "it no longer holds the lock"
                takeover = (
                    f"{target}: took over the output lock of a writer that did not release it "
                    f"({previous.describe()}): {gone}"
                )
        holder = LockHolder.current()
        atomic_write_text(info_path, canonical_json(holder.to_json()))
        with _HELD_GUARD:
            _HELD[key] = os.getpid()
        try:
            _notify(on_notice, takeover)
            yield OutputLock(target, lock_path, info_path, holder, previous, takeover)
        finally:
            with _HELD_GUARD:
                _HELD.pop(key, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(info_path)  # before the release: never delete the next holder's record
    finally:
        lock.release()


# --------------------------------------------------------------------------- recovery, leftovers

_ID = "[0-9a-f]{8}"
_MKSTEMP = "[a-z0-9_]{8}"  # tempfile's random names


def _temporaries(target: Path, kinds: str) -> list[Path]:
    """Siblings of ``target`` that are its temporaries of ``kinds`` (``tmp``/``new``/``old``
    directories, ``file`` temporaries), newest first."""
    parent = target.parent
    if not parent.is_dir():
        return []
    name = re.escape(sibling_stem(target.name))
    patterns = []
    dirs = [k for k in ("tmp", "new", "old") if k in kinds]
    if dirs:
        patterns.append(rf"\.{name}\.(?:{'|'.join(dirs)})-{_ID}")
    if "file" in kinds:
        patterns.append(rf"\.{name}\.{_MKSTEMP}\.tmp")
        patterns.append(rf"\.\.{name}\.lock\.json\.{_MKSTEMP}\.tmp")
    regex = re.compile("|".join(patterns))
    found = []
    with os.scandir(parent) as entries:
        for entry in entries:
            if regex.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    found.append((entry.stat(follow_symlinks=False).st_ctime, Path(entry.path)))
    return [path for _, path in sorted(found, key=lambda item: (-item[0], item[1].name))]


def _recover_held(target: Path) -> str | None:
    if os.path.lexists(target):
        return None
    new = _temporaries(target, "new")
    old = _temporaries(target, "old")
    if new:
        os.rename(new[0], target)
        _fsync_dir(target.parent)
        kept = f"; the previous copy {old[0].name} is removed by the next write" if old else ""
        return (
            f"{target} was missing after an interrupted replacement: restored the new complete "
            f"copy from {new[0].name}{kept}"
        )
    if old:
        os.rename(old[0], target)
        _fsync_dir(target.parent)
        return (
            f"{target} was missing after an interrupted replacement: restored the previous copy "
            f"from {old[0].name} (no complete new copy was left)"
        )
    return None


def recover_directory(target: str | Path) -> str | None:
    """Undo an interrupted :func:`atomic_directory` swap; return what was done, or ``None``.

    Only when ``target`` is missing and a sibling ``.X.new-*`` (a complete new copy) or
    ``.X.old-*`` (the previous copy) is left: the newest complete new copy is renamed to
    ``target``, else the newest previous copy. An incomplete ``.X.tmp-*`` is never restored.
    Runs under ``output_lock(target)``: the caller's, when this process holds it, else one
    taken here; when another live process holds it, that writer is mid-swap and finishes
    the job itself, so nothing is done and ``None`` is returned. Safe for readers to call
    before they open ``target``; costs one directory listing when there is nothing to do.
    """
    target = Path(target)
    if os.path.lexists(target) or not _temporaries(target, ("new", "old")):
        return None
    if _holds_lock(target):
        return _recover_held(target)
    try:
        with output_lock(target) as held:
            restored = _recover_held(target)
    except OutputLockedError:
        return None
    notes = [note for note in (held.takeover, restored) if note]
    return "; ".join(notes) or None


def _remove_leftovers(target: Path) -> str | None:
    """Remove every temporary of ``target`` (call only under its output lock, after recovery)."""
    removed, failed = [], []
    for path in _temporaries(target, ("tmp", "new", "old", "file")):
        try:
            _remove_path(path)
            removed.append(path.name)
        except FileNotFoundError:
            pass
        except OSError as err:
            failed.append(f"{path.name} ({err.strerror or err})")
    if not removed and not failed:
        return None
    parts = []
    if removed:
        word = "temporary" if len(removed) == 1 else "temporaries"
        parts.append(
            f"removed {len(removed)} leftover {word} of an interrupted earlier write: "
            + ", ".join(sorted(removed))
        )
    if failed:
        parts.append("could not remove " + ", ".join(failed))
    return f"{target}: " + "; ".join(parts)


def _tidy(target: Path, on_notice: Callable[[str], None] | None) -> None:
    """Before a write under the output lock: recover an interrupted swap, then drop leftovers."""
    _notify(on_notice, recover_directory(target))
    _notify(on_notice, _remove_leftovers(target))


# --------------------------------------------------------------------------- atomic writes


def make_parent(path: str | Path) -> None:
    """Create the directory ``path`` goes into. A part of the way that is a file, or a
    symlink that loops or dangles, is a :class:`~tiktalk.errors.UsageError` naming it
    (``mkdir`` would only say "File exists")."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        for part in [*reversed(parent.parents), parent]:
            if os.path.isdir(part):
                continue
            if os.path.islink(part):
                why = "is a symlink that loops or leads nowhere" if not os.path.exists(part) else \
                    "is a symlink to something that is not a directory"
            elif os.path.lexists(part):
                why = "is a file, not a directory"
            else:
                continue
            raise UsageError(f"cannot write {path}: {part} {why}") from None
        raise


_OS_ERROR_TEXT = re.compile(r"\(os error (\d+)\)")


def filesystem_cause(err: BaseException, target: Path, written: Path | None = None) -> OSError | None:
    """The filesystem refusal behind a failed write of ``target``, as an ``OSError`` naming
    ``target``, or ``None`` when the failure is something else (then it is a bug or the
    caller's own error, and keeps its type).

    An ``OSError`` without a file name (``write`` past the file size limit, EFBIG; a full
    disk, ENOSPC) gets ``target``'s. Writers in other languages lose the type: Rust's
    (Polars, safetensors) keep ``(os error N)`` in their message, and C++'s (FAISS) keep
    nothing, so the files under ``written`` are compared with the file size limit, and the
    free space of its filesystem is looked at.
    """
    if isinstance(err, OSError):
        if err.filename is None:
            err.filename = str(target)
        return None  # already the right type
    if not isinstance(err, Exception) or isinstance(err, TiktalkError):
        return None
    match = _OS_ERROR_TEXT.search(str(err))
    if match:
        code = int(match[1])
        return OSError(code, os.strerror(code), str(target))
    if written is None or not os.path.isdir(written):
        return None
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        limit = -1
    if limit not in (-1, getattr(resource, "RLIM_INFINITY", -1)):
        for root, _, files in os.walk(written):
            if any(os.path.getsize(os.path.join(root, f)) >= limit for f in files):
                return OSError(errno.EFBIG, os.strerror(errno.EFBIG) + f" (the file size limit is {limit} bytes)",
                               str(target))
    with contextlib.suppress(OSError):
        if os.statvfs(written).f_bavail == 0:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    return None



def atomic_write_bytes(
    path: str | Path, data: bytes, *, on_notice: Callable[[str], None] | None = None
) -> None:
    """Write ``data`` to ``path`` through a synced temporary sibling and ``os.replace``.

    The file gets the usual permissions (``0o666`` less the umask). Taking
    ``output_lock(path)`` is the caller's job; when this process holds it, the write first
    restores an interrupted directory swap of ``path`` and removes the leftover temporaries
    of earlier writes of ``path``, telling ``on_notice`` what it did. Without the lock those
    are left alone (another writer may own them).
    """
    path = Path(path)
    make_parent(path)
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory; a file is written there")
    if _holds_lock(path):
        _tidy(path, on_notice)
    fd, tmp = tempfile.mkstemp(prefix=f".{sibling_stem(path.name)}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        filesystem_cause(err, path)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(
    path: str | Path, text: str, *, on_notice: Callable[[str], None] | None = None
) -> None:
    """UTF-8 :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), on_notice=on_notice)


def write_json(
    path: str | Path, obj: Any, *, on_notice: Callable[[str], None] | None = None
) -> None:
    """:func:`canonical_json` written with :func:`atomic_write_text`."""
    atomic_write_text(path, canonical_json(obj), on_notice=on_notice)


class DuplicateKeyError(ValueError):
    """A JSON object names one key twice (``json`` would silently keep the last value)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} appears twice in one object")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a key given twice (:class:`DuplicateKeyError`)."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKeyError(key)
        obj[key] = value
    return obj


def lone_surrogate(obj: Any) -> str | None:
    """The first string (key or value) in ``obj`` holding a lone surrogate (``"\\ud800"`` in
    JSON decodes to one; no UTF-8 writer could store it), else None. Walked without recursion."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


def read_json(path: str | Path) -> Any:
    """Parse a UTF-8 JSON file. Malformed content (bad UTF-8, bad JSON, a key given twice in
    one object, a string holding a lone surrogate, nesting past the recursion limit, an
    integer of more than 4300 digits) raises :class:`~tiktalk.errors.FormatError` naming the
    file and line; a missing file, OSError."""
    with open_input(path) as fh:
        data = fh.read()
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=unique_keys)
    except UnicodeDecodeError as err:
        raise FormatError(f"not valid UTF-8 at byte {err.start}", path=path,
                          line=data.count(b"\n", 0, err.start) + 1) from None
    except json.JSONDecodeError as err:
        raise FormatError(f"not valid JSON ({err.msg}, column {err.colno})", path=path,
                          line=err.lineno) from None
    except DuplicateKeyError as err:
        raise FormatError(f"not valid here: {err}", path=path) from None
    except (ValueError, RecursionError) as err:
        raise FormatError(f"not valid JSON ({type(err).__name__}: {err})", path=path) from None
    bad = lone_surrogate(obj)
    if bad is not None:
        raise FormatError("a string holds a lone surrogate (not encodable as UTF-8)", path=path, value=bad)
    return obj


@contextlib.contextmanager
def atomic_directory(
    out: str | Path,
    overwrite: bool = False,
    *,
    on_notice: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it becomes ``out``, on error it vanishes.

    ``out`` is replaced only after everything inside was written, so readers see either
    the old complete directory or the new complete one. The swap: the filled ``.X.tmp-<id>``
    is synced and renamed to ``.X.new-<id>`` (now marked complete), ``out`` is renamed to
    ``.X.old-<id>``, ``.X.new-<id>`` to ``out``, and the old copy is deleted. When a rename
    of the swap fails the previous ``out`` is put back; a crash between the renames leaves
    no ``out``, which :func:`recover_directory` undoes; it is called here first, so the next
    write does it (before the ``overwrite`` check: a recovered ``out`` exists).

    Taking ``output_lock(out)`` is the caller's job; when this process holds it, leftover
    temporaries of earlier writes of ``out`` are removed first as well, and ``on_notice``
    hears of recoveries and removals.
    """
    out = Path(out)
    make_parent(out)
    if _holds_lock(out):
        _tidy(out, on_notice)
    else:
        _notify(on_notice, recover_directory(out))
    if os.path.lexists(out) and not overwrite:
        raise OutputExistsError(f"{out} already exists (pass overwrite=True / --overwrite)")
    token = uuid.uuid4().hex[:8]
    tmp, new, old = (_sibling(out, f".{kind}-{token}") for kind in ("tmp", "new", "old"))
    tmp.mkdir()
    current: Path | None = tmp  # the temporary copy to delete if the swap does not finish
    moved_old = False
    try:
        yield tmp
        _fsync_tree(tmp)
        os.rename(tmp, new)
        current = new
        if os.path.lexists(out):
            os.rename(out, old)
            moved_old = True
        os.rename(new, out)
        current = None
        _fsync_dir(out.parent)
    except BaseException as err:
        cause = filesystem_cause(err, out, current)
        if current is not None:
            restored = True
            if moved_old and not os.path.lexists(out):
                try:
                    os.rename(old, out)
                    moved_old = False
                except OSError:
                    restored = False  # keep .X.new and .X.old for recover_directory
            if restored:
                shutil.rmtree(current, ignore_errors=True)
        if cause is not None:
            raise cause from err
        raise
    if moved_old:
        with contextlib.suppress(OSError):
            _remove_path(old)


# --------------------------------------------------------------------------- inputs


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def check_regular_file(path: str | Path) -> None:
    """Refuse at once what is not a regular file (a FIFO or device would block a reader, or
    stream for ever), naming the path; a missing file raises :class:`MissingInputError`."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingInputError(f"{path} does not exist") from None
    except OSError as err:
        raise MissingInputError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        what = next((text for test, text in _KINDS if test(mode)), "not a regular file")
        raise MissingInputError(f"{path} is {what}, not a regular file")


@contextlib.contextmanager
def open_input(path: str | Path, mode: str = "rb", **kwargs: Any) -> Iterator[Any]:
    """``open(path, mode)`` for reading an input, refusing a FIFO, device, socket or directory
    before it could block (see :func:`check_regular_file`)."""
    check_regular_file(path)
    with open(path, mode, **kwargs) as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped in after the check
            raise MissingInputError(f"{path} is not a regular file")
        yield fh


def refuse_overlap(out: str | Path, inputs: Iterable[tuple[str, str | Path | None]], *,
                   out_flag: str = "--out", may_write_inside: Iterable[str] = ()) -> None:
    """Refuse, before anything is written, an output that is, contains or lies inside one of
    ``inputs`` (``(flag, path)`` pairs; ``None`` paths and the word ``sample`` are skipped):
    ``--overwrite`` would otherwise delete the input, or write into what is being read.
    ``may_write_inside``: flags of directories a new file may be written into (a run
    directory receiving its predictions); being or containing them is still refused."""
    target = Path(os.path.realpath(out))
    inside_ok = set(may_write_inside)
    for flag, given in inputs:
        if given is None or str(given) == "sample":
            continue
        source = Path(os.path.realpath(given))
        if source == target:
            how = "is"
        elif target in source.parents:
            how = "contains"
        elif source in target.parents and flag not in inside_ok:
            how = "lies inside"
        else:
            continue
        raise UsageError(f"{out_flag} {out} {how} the input {flag} {given}: writing it would destroy or "
                         "change what is being read; choose another output")


# --------------------------------------------------------------------------- one generation

T = TypeVar("T")


def directory_generation(path: str | Path) -> tuple[int, int, int] | None:
    """Which copy of directory ``path`` is in place: (device, inode, ctime). Every
    :func:`atomic_directory` write swaps in a new directory, so this changes with each
    generation; ``None`` while there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def read_generation(path: str | Path, load: Callable[[], T], *, wait_s: float = 10.0) -> T:
    """``load()`` (which reads files of directory ``path``) so that what it returns comes from
    one complete generation of ``path``.

    An :func:`atomic_directory` writer may replace ``path`` while ``load`` runs; then the
    files read may belong to two builds, or vanish (the old copy is deleted). The generation
    is taken before and after; when it changed, or ``path`` was missing because a swap was
    under way, ``load`` runs again (up to ``wait_s`` seconds). An error of ``load`` within
    one unchanged generation is its own.
    """
    deadline = time.monotonic() + wait_s
    path = Path(path)
    pause = 0.005
    while True:
        before = directory_generation(path)
        try:
            result = load()
        except (OSError, TiktalkError):
            if time.monotonic() >= deadline:
                raise
            after = directory_generation(path)
            swapping = before is None and (after is not None or bool(_temporaries(path, ("new", "old"))))
            if after == before and not swapping:
                raise
        else:
            if before is not None and directory_generation(path) == before:
                return result
            if time.monotonic() >= deadline:
                raise UsageError(f"{path} kept being replaced while it was read ({wait_s:g} s); try again")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
