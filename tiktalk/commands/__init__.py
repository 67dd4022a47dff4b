"""The command layer: every ``tiktalk`` subcommand, over the library's public API.

Nothing in the library imports this package. :mod:`tiktalk.commands.main` builds the parser
from :data:`tiktalk.commands.main.COMMANDS`; each module here has one ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def emit(args: argparse.Namespace, result: Any, render: Callable[[Any], str] | None = None) -> None:
    """Print ``result`` as JSON under ``--json``, else as ``render(result)`` (or JSON)."""
    if getattr(args, "json", False) or render is None:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    else:
        print(render(result))
