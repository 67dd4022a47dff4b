"""Every registered subcommand builds and renders its help (a bad help string breaks them all)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import tiktalk.commands
from tiktalk.commands.main import COMMANDS, build_parser


def _walk(parser: argparse.ArgumentParser, prefix=()):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, (*prefix, name))


def test_every_subcommand_renders_help() -> None:
    parser = build_parser()
    seen = []
    for path, sub in _walk(parser):
        text = sub.format_help()
        assert text.startswith("usage:"), path
        assert "%%" not in text, path  # a doubled percent sign in a help string that is not %-formatted
        seen.append(" ".join(path))
    assert {"kg convert", "kg stats", "kg flows", "demo", "bench"} <= set(seen)
    modules = {p.stem for p in Path(tiktalk.commands.__file__).parent.glob("*.py")} - {"__init__", "main"}
    assert set(COMMANDS) == modules  # every command module is registered, and only those


def test_every_json_command_has_the_flag() -> None:
    parser = build_parser()
    for path, sub in _walk(parser):
        has_sub = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
        if path and not has_sub and path[0] in {"kg", "retrieve", "evaluate", "bench"}:
            assert any("--json" in a.option_strings for a in sub._actions), path


def test_unknown_command_exits() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["no-such-command"])
