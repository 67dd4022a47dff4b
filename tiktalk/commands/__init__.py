"""The command layer: every ``tiktalk`` subcommand, over the library's public API.

Nothing in the library imports this package. :mod:`tiktalk.commands.main` builds the parser
from :data:`tiktalk.commands.main.COMMANDS`; each module here has one ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def emit(args: argparse.Namespace, result: Any, render: Callable[[Any], str] | None = None) -> None:
    """Print ``result`` as JSON under ``--json``, else as ``render(result)`` (or JSON).

    Under ``--json`` the document goes to the stdout that :func:`tiktalk.commands.main.main`
    kept aside (everything else printed meanwhile went to stderr).
    """
    if getattr(args, "json", False) or render is None:
        out = getattr(args, "json_stdout", None) or sys.stdout
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str), file=out)
    else:
        print(render(result))


def print_notice(message: str) -> None:
    """What the library did on the user's behalf (a restored directory, removed leftovers, a
    taken-over lock): one line on stderr, so stdout keeps only the result."""
    print(f"tiktalk: note: {message}", file=sys.stderr)


@contextlib.contextmanager
def writing(out: str | Path) -> Iterator[Callable[[str], None]]:
    """Hold the output lock of ``out`` for the whole command; yields the notice printer.

    A second writer of the same ``out`` fails at once (exit 2) naming the holder's pid and
    start time; see :func:`tiktalk.io.output_lock`.
    """
    from tiktalk.io import output_lock

    with output_lock(out, on_notice=print_notice):
        yield print_notice


def add_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """A command group (``tiktalk NAME SUBCOMMAND``) whose subcommand is required."""
    group = sub.add_parser(name, help=help).add_subparsers(
        dest=f"{name.replace('-', '_')}_command", metavar=f"{name.replace('-', '_').upper()}_COMMAND")
    group.required = True
    return group
