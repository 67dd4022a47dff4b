"""Who holds an output lock: the holder record (pid, process start, host, command) and whether it lives.

:func:`tiktalk.io.output_lock` writes a :class:`LockHolder` beside the lock while it is held;
a second writer reads it to name the holder in its error, and to tell a live holder from a
killed one (a zombie, or a pid reused by another process, counts as dead). Process facts
come from ``/proc`` where there is one; elsewhere they are unknown (``None``), never guessed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError(errno.ENOENT, "no btime in /proc/stat")


def _proc_stat(pid: int) -> list[bytes]:
    """Fields 3.. of /proc/<pid>/stat (state first); raises OSError where there is none."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        raw = fh.read()
    return raw[raw.rindex(b")") + 2 :].split()


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), ``None`` where that is unknown."""
    try:
        ticks = int(_proc_stat(pid)[19])  # field 22, starttime, in clock ticks since boot
        return round(_boot_time() + ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return None


def _format_time(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


@dataclass(frozen=True)
class LockHolder:
    """Who holds an output lock: written as JSON to ``.X.lock.json`` while the lock is held."""

    pid: int
    host: str
    started: float | None  # process start, seconds since the epoch (None: unknown)
    acquired: float  # when it took the lock
    command: str = ""

    @classmethod
    def current(cls) -> LockHolder:
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=_process_start(os.getpid()),
            acquired=round(time.time(), 2),
            command=" ".join(sys.argv)[:200],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "started": self.started,
            "acquired": self.acquired,
            "command": self.command,
        }

    @classmethod
    def from_json(cls, obj: Any) -> LockHolder | None:
        """The holder in ``obj``, or ``None`` when it is not a holder record."""
        if not isinstance(obj, dict):
            return None
        pid, host, started, acquired = (obj.get(k) for k in ("pid", "host", "started", "acquired"))
        if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str):
            return None
        if started is not None and not isinstance(started, (int, float)):
            return None
        if not isinstance(acquired, (int, float)):
            return None
        command = obj.get("command")
        return cls(pid, host, started, float(acquired), command if isinstance(command, str) else "")

    def alive(self) -> bool | None:
        """Whether this holder's process still runs: ``None`` where that cannot be told.

        A zombie, or a live process whose start time differs from the recorded one (the pid
        was reused), counts as dead.
        """
        if self.host != socket.gethostname() or os.name == "nt":
            return None  # (os.kill on Windows would terminate the process)
        if self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, owned by another account
        except OSError:
            return None
        with contextlib.suppress(OSError, IndexError):
            if _proc_stat(self.pid)[0] in (b"Z", b"X"):
                return False
        if self.started is not None:
            now = _process_start(self.pid)
            if now is not None and abs(now - self.started) > 1.0:
                return False
        return True

    def describe(self) -> str:
        """``pid 123, started 2025-01-02 03:04:05, holding the lock since ..., command '...'``."""
        who = f"pid {self.pid}"
        if self.host != socket.gethostname():
            who += f" on host {self.host}"
        parts = [who]
        parts.append(
            "start time unknown"
            if self.started is None
            else f"started {_format_time(self.started)}"
        )
        parts.append(f"holding the lock since {_format_time(self.acquired)}")
        if self.command:
            shown = self.command if len(self.command) <= 80 else self.command[:77] + "..."
            parts.append(f"command {shown!r}")
        return ", ".join(parts)
