"""The ``tiktalk`` command line: one parser, subcommands registered by each package.

Each module in :data:`COMMAND_MODULES` exposes ``register(subparsers)``; it adds its
subcommands and sets ``func`` (returning an exit code) on them. Heavy imports happen
inside the handlers, so ``tiktalk --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

# One registry for every subcommand group; order is the order of `tiktalk --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "kg.cli",
    "retrieval.cli",
    "tiktalk.data_cli",
    "tiktalk.demo_cli",
    "tiktalk.eval_cli",
    "tiktalk.bench_cli",
    "tiktalk.reproduce_cli",
    "fusion.cli",
)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def emit(args: argparse.Namespace, result: Any, render: Callable[[Any], str] | None = None) -> None:
    """Print ``result`` as JSON under ``--json``, else as ``render(result)`` (or JSON)."""
    if getattr(args, "json", False) or render is None:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    else:
        print(render(result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiktalk",
        description="tiktalk-kg: C3KG knowledge retrieval, Maria fusion and baselines for "
        "video-grounded Chinese chit-chat. The word 'sample' names the shipped sample "
        "wherever a KG or dataset path is expected.",
    )
    from tiktalk import __version__

    parser.add_argument("--version", action="version", version=f"tiktalk-kg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from tiktalk.errors import FormatError

    try:
        return int(args.func(args) or 0)
    except (FormatError, FileExistsError, FileNotFoundError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"tiktalk {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
