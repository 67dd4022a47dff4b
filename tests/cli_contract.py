"""The command-line contract for bad input, shared by the fuzz suite and the reliability tests.

Every case runs one real command in-process through :func:`tiktalk.commands.main.main` and
must end in exactly one of two ways (:func:`check_outcome`):

* exit 0, and the output reads back as valid (each test says what valid means);
* exit 2 with exactly one line on stderr (``tiktalk CMD: error: ...``) and no output:
  neither the target nor any temporary of it is left, only its ``.X.lock`` file.

Any other exception escapes ``main`` and fails the case with its traceback: none is
tolerated. :data:`CASES` counts the cases per command and exit code; the fuzz suite prints
it at the end of the session (``fuzz cases: ...``) and docs/reliability.md quotes it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tiktalk.commands.main import main

CASES: Counter[tuple[str, int]] = Counter()


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str
    warnings: tuple[str, ...]


def run_cli(argv: Sequence[str]) -> Result:
    """``tiktalk ARGV`` in this process: exit code, stdout, stderr and any warnings raised."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse; never expected with valid flags
            code = exc.code if isinstance(exc.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue(), tuple(str(w.message) for w in caught))


def run_cli_process(argv: Sequence[str], preexec_fn: Callable[[], None] | None = None) -> Result:
    """``python -m tiktalk ARGV`` in a child process (for what must not touch the test process,
    such as a lowered resource limit set by ``preexec_fn`` in the child)."""
    proc = subprocess.run([sys.executable, "-m", "tiktalk", *argv], check=False, capture_output=True, text=True,
                          preexec_fn=preexec_fn, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return Result(proc.returncode, proc.stdout, proc.stderr, ())


def leftovers(target: Path) -> list[str]:
    """Hidden siblings of ``target`` other than its lock file (which is kept by design)."""
    prefix = f".{target.name}"
    return sorted(p.name for p in target.parent.iterdir()
                  if p.name.startswith(prefix) and p.name != f"{prefix}.lock")


def check_outcome(command: str, result: Result, outputs: Sequence[Path], valid: Callable[[], None]) -> None:
    """The contract of every fuzz case (see the module docstring); counts the case."""
    CASES[(command, result.code)] += 1
    _check(command, result, outputs, valid)


def expect_error(command: str, result: Result, outputs: Sequence[Path], match: str) -> str:
    """Exit 2, one line matching the regex ``match``, no output; returns the line."""
    assert result.code == 2, f"exit {result.code}; stdout {result.out[:300]!r}; stderr {result.err!r}"
    _check(command, result, outputs, lambda: None)
    assert re.search(match, result.err), f"{match!r} not in {result.err!r}"
    return result.err.strip()


def _check(command: str, result: Result, outputs: Sequence[Path], valid: Callable[[], None]) -> None:
    assert result.code in (0, 2), f"exit {result.code}; stderr: {result.err}"
    if result.code == 0:
        valid()
        for out in outputs:
            assert leftovers(out) == [], f"exit 0 left temporaries of {out}"
        return
    lines = result.err.splitlines()
    assert len(lines) == 1, f"exit 2 must print one line, printed {len(lines)}: {result.err!r}"
    assert lines[0].startswith(f"tiktalk {command.split()[0]}: error: "), lines[0]
    assert not result.warnings, result.warnings
    for out in outputs:
        assert not os.path.lexists(out), f"exit 2 left its output {out}"
        assert leftovers(out) == [], f"exit 2 left temporaries of {out}"


