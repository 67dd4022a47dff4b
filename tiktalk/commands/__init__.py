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
from typing import Any, Self

from tiktalk.options import COUNT, POSITIVE_INT


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars on stderr (under --json they are also off when stderr is not a terminal)")


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars (tqdm, on stderr, with ETA) for long steps: off under ``--no-progress``, and
    under ``--json`` when stderr is not a terminal (a pipe or a log file keeps only the result)."""
    if getattr(args, "no_progress", False):
        return False
    return not getattr(args, "json", False) or sys.stderr.isatty()


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


# ---------------------------------------------------------------- options several commands share


def modalities_arg(text: str) -> tuple[str, ...]:
    """``--modalities`` parsed once, here at the boundary, into the canonical tuple of names
    (:func:`tiktalk.models.modalities.parse_modalities`); the run layer and models take that."""
    from tiktalk.errors import UsageError
    from tiktalk.models.modalities import parse_modalities

    try:
        return parse_modalities(text)
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def device_arg(text: str) -> str:
    """``--device``: cpu, cuda, cuda:N or mps, checked at the boundary (torch is not imported)."""
    import re

    if not re.fullmatch(r"cpu|cuda(:[0-9]{1,3})?|mps", text):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda, cuda:N or mps, got {text[:40]!r}")
    return text


def add_run_input_arguments(p: argparse.ArgumentParser) -> None:
    """A trained run and the split it reads (generate, probe): --run, --step, --data, --split, --knowledge."""
    p.add_argument("--run", required=True, metavar="RUN", help="run directory written by `tiktalk train`")
    p.add_argument("--step", type=COUNT.parse("--step"), default=None, help="use checkpoint step-N instead of RUN/model")
    p.add_argument("--data", default="sample", help="built dataset directory, or 'sample' (default)")
    p.add_argument("--split", default="test", help="split (default test)")
    p.add_argument("--knowledge", default=None, metavar="PARQUET",
                   help="knowledge cache (default: the one the run was trained with)")


def add_budget_options(p: argparse.ArgumentParser, default_model: str | None) -> None:
    """The knowledge budget: a model's (its tokens), optionally another length."""
    p.add_argument("--model", default=default_model, help=model_help(
        "cut the knowledge to this registered model's budget, counted by its tokenizer "
        f"(default: {default_model or 'no model: characters'}; 'none': characters)"))
    p.add_argument("--model-path", default=None, metavar="DIR",
                   help="the saved model (e.g. RUN/model) or init directory whose budget to use "
                        "(default: the model's tiny preset, i.e. its default config)")
    p.add_argument("--max-tokens", type=POSITIVE_INT.parse("--max-tokens"), default=None,
                   help="knowledge budget in tokens of --model's tokenizer, or characters without a model "
                        "(default: the model's budget; no model: uncut)")


# ---------------------------------------------------------------- help texts read from the registries


class RegistryHelp(str):
    """A help text built from a registry when help is shown, not when the parser is built:
    argparse expands a help text with ``%``, which calls :meth:`__mod__`; so ``tiktalk --help``
    imports no registry's module (encoders, KG readers, models) and the text never drifts."""

    def __new__(cls, build: Callable[[], str]) -> Self:
        text = super().__new__(cls, "(read from the registry when shown)")
        text._build = build
        return text

    def __mod__(self, params: Any) -> str:
        return self._build()


def encoder_help(what: str) -> RegistryHelp:
    """``--encoder``: the registered encoder names (retrieval.encoders.ENCODERS)."""

    def build() -> str:
        from retrieval.encoders import DEFAULT_ENCODER, encoder_names

        return (f"encoder {what}: {', '.join(encoder_names())}, or an ensemble a+b / a:0.6+b:0.4 "
                f"(default: the library's, {DEFAULT_ENCODER})")

    return RegistryHelp(build)


def kg_formats_help() -> RegistryHelp:
    """``kg convert``: the registered release formats (kg.readers.FORMATS) and their suffixes."""

    def build() -> str:
        from kg.readers import FORMATS

        formats = ", ".join(f"{name} ({'/'.join(fmt.suffixes)})" for name, fmt in FORMATS.items())
        return f"convert release files ({formats}; files or directories; 'sample') into the canonical directory"

    return RegistryHelp(build)


def views_help(what: str) -> RegistryHelp:
    """``--views``: the registered passage views (retrieval.views.VIEWS) and the default mix."""

    def build() -> str:
        from retrieval.views import DEFAULT_VIEWS, VIEWS

        return (f"passage views {what} ({', '.join(VIEWS.names())}), weighted as name:weight joined by '+' "
                f"(default: {DEFAULT_VIEWS}; 'text' = the head text alone)")

    return RegistryHelp(build)


def model_help(text: str) -> RegistryHelp:
    """``--model``: the registered models (tiktalk.models.base.MODELS), after ``text``."""

    def build() -> str:
        from tiktalk.models.base import model_names

        return f"{text}: {', '.join(model_names())}"

    return RegistryHelp(build)


def importer_option_help(option: str) -> RegistryHelp:
    """A ``data import`` flag (an :class:`~tiktalk.importers.ImportOptions` field): what it means
    for each registered importer that reads it (tiktalk.importers.IMPORTERS)."""

    def build() -> str:
        from tiktalk.importers import IMPORTERS

        return "; ".join(f"{name}: {imp.option_help.get(option, 'read')}"
                         for name, imp in IMPORTERS.items() if option in imp.options) or "read by no importer"

    return RegistryHelp(build)


# ---------------------------------------------------------------- help texts of options declared without one

# Options many commands share mean the same everywhere: one text each, filled in where a
# declaration gave none ("command path" + flag first, then the flag alone).
FALLBACK_HELP: dict[str, str] = {
    "--overwrite": "replace the output if it exists",
    "--trust-pickle": "allow a C3KG.GRAPH pickle as the KG (pickles can run code: only files you trust)",
    "--threads": "FAISS / BLAS threads (default: the library's choice for the cores there are)",
    "--batch-size": "texts or examples per batch",
    "--seed": "random seed",
    "--format": "table files: jsonl or parquet",
    "--split": "the dataset split to use",
    "kg convert sources": "release files or directories (CSV/TSV/JSON/pickle), or 'sample'",
    "index info index": "an index directory",
    "index build --batch-size": "texts per encoder call (default 256)",
    "select train --train-split": "split whose responses the selector learns from (default train)",
    "select train --val-split": "split it is checked on (default val)",
    "data build --video-min-likes": "drop videos with fewer likes (default: the build config's)",
    "data build --comment-min-likes": "drop comments with fewer likes (default: the build config's)",
    "data build --val-fraction": "share of videos hashed into val (default: the build config's)",
    "data build --test-fraction": "share of videos hashed into test (default: the build config's)",
    "data build --split-seed": "salt of the video -> split hash (default: the build config's)",
    "data lccc --out": "output dataset directory (written atomically)",
    "human-eval export --split": "split whose dialogues are sampled (default test)",
    "human-eval export --seed": "seed of the sample and of the blind order",
    "reproduce --epochs": "training epochs per row (default: each model's recipe)",
    "reproduce --batch-size": "micro-batch per row (default: each model's recipe)",
    "reproduce --lr": "learning rate per row (default: each model's recipe)",
    "reproduce --seed": "seed of every row's training",
    "label export --task": "the labelling task the sheet is for",
    "label export --out": "the sheet to write (CSV)",
    "label export --seed": "seed of the sampled items and their order",
    "label score --task": "the labelling task the sheets are for",
}


def fill_missing_help(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> None:
    """Give every option and positional declared without a help text its :data:`FALLBACK_HELP`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                fill_missing_help(sub, (*path, name))
        elif action.help is None:
            flag = action.option_strings[-1] if action.option_strings else action.dest
            action.help = FALLBACK_HELP.get(" ".join((*path, flag))) or FALLBACK_HELP.get(flag)
