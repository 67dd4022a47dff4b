"""The command layer: every ``tiktalk`` subcommand, over the library's public API.

Nothing in the library imports this package. :mod:`tiktalk.commands.main` builds the parser
from :data:`tiktalk.commands.main.COMMANDS`; each module here has one ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
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
