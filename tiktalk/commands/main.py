"""The ``tiktalk`` command line: one parser over the command modules of this package.

Each entry of :data:`COMMANDS` is a ``register(subparsers)`` function of a module in
``tiktalk.commands``; it adds its subcommands and sets ``func`` (returning an exit code) on
them. Heavy imports happen inside the handlers, so ``tiktalk --help`` stays fast.

Only the library's own errors (:class:`tiktalk.errors.TiktalkError`) become a one-line
message with exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from tiktalk.commands import fill_missing_help
from tiktalk.registry import Registry

# Every subcommand group, in the order of `tiktalk --help`.
COMMANDS: Registry = Registry("command", entry_points=None, entries={
    name: f"tiktalk.commands.{name}:register"
    for name in ("kg", "retrieval", "select", "data", "demo", "evaluate", "bench", "reproduce", "train", "probe",
                 "analyze", "label")
})


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
    for name in COMMANDS:
        COMMANDS.get(name)(sub)
    fill_missing_help(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from tiktalk.errors import TiktalkError

    # Under --json, stdout carries exactly one JSON document, written by `emit` to the stdout
    # saved here; whatever else runs prints (stage banners, nested commands' reports, library
    # messages) goes to stderr.
    args.json_stdout = sys.stdout if getattr(args, "json", False) else None
    try:
        with contextlib.redirect_stdout(sys.stderr) if args.json_stdout else contextlib.nullcontext():
            return int(args.func(args) or 0)
    except TiktalkError as err:
        # one line, whatever a wrapped message (a parser's, a library's) held
        text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
        print(f"tiktalk {args.command}: error: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
