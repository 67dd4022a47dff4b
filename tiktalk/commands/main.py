"""The ``tiktalk`` command line: one parser over the command modules of this package.

Each entry of :data:`COMMANDS` is a ``register(subparsers)`` function of a module in
``tiktalk.commands``; it adds its subcommands and sets ``func`` (returning an exit code) on
them. Heavy imports happen inside the handlers, so ``tiktalk --help`` stays fast.

Only the library's own errors (:class:`tiktalk.errors.TiktalkError`) and the filesystem's
refusals (:data:`FILESYSTEM_ERRNOS`: a missing file, a read-only directory, a full disk, a
file past the size limit, a symlink loop, ...) become a one-line message with exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import typing
from collections.abc import Sequence

from tiktalk.commands import fill_missing_help
from tiktalk.registry import Registry

# Every subcommand group, in the order of `tiktalk --help`.
COMMANDS: Registry = Registry("command", entry_points=None, entries={
    name: f"tiktalk.commands.{name}:register"
    for name in ("kg", "retrieval", "select", "data", "demo", "evaluate", "bench", "reproduce", "train", "probe",
                 "analyze", "label")
})


# OSErrors that say what the filesystem refused, not that the program is wrong: the user can
# act on them (free space, fix permissions, name another path). An I/O error (EIO), a rename
# across devices (EXDEV) and the like are not among them: they keep their traceback.
FILESYSTEM_ERRNOS = frozenset({
    errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
    errno.ELOOP, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ENOTEMPTY,
    errno.EBUSY,
})


def filesystem_message(err: OSError) -> str:
    """``PATH: what the system said`` (``SRC -> DST`` for a rename), e.g.
    ``out/kg: File too large``."""
    where = " -> ".join(str(name) for name in (err.filename, err.filename2) if name is not None)
    what = err.strerror or os.strerror(err.errno or 0)
    return f"{where}: {what}" if where else what


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (``tiktalk index build: error:
    argument --batch-size: must be an integer in [1, 2147483647], got '0'``) and exit 2, like
    every other refusal; subcommand parsers inherit the class."""

    def error(self, message: str) -> typing.NoReturn:
        text = " ".join(part.strip() for part in message.splitlines() if part.strip())
        words = self.prog.split()
        sub = " ".join(words[2:])  # `tiktalk CMD: error: SUB: ...`, like the library's errors
        self.exit(2, f"{' '.join(words[:2])}: error: {sub + ': ' if sub else ''}{text}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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


def _undecodable_argument(args: argparse.Namespace) -> tuple[str, str] | None:
    """(option, value) of the first argument that is not valid UTF-8: Python hands such
    bytes of the command line over as lone surrogates, which no file can hold."""
    for name, value in vars(args).items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return name, item
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    undecodable = _undecodable_argument(args)
    if undecodable is not None:
        name, value = undecodable
        print(f"tiktalk {args.command}: error: argument {name}: not valid UTF-8 text ({value[:80]!a})",
              file=sys.stderr)
        return 2
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
    except OSError as err:
        if err.errno not in FILESYSTEM_ERRNOS:
            raise
        print(f"tiktalk {args.command}: error: {filesystem_message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
