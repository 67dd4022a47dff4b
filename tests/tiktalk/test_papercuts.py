"""Issue 23's papercuts: help texts everywhere and true defaults, one-line errors before work."""

from __future__ import annotations

import argparse

import pytest

import kg
from tiktalk.commands.main import build_parser, main


def _options(parser: argparse.ArgumentParser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(path), action


def test_every_option_of_every_command_has_a_help_text():
    missing = [f"{where} {a.option_strings[-1] if a.option_strings else a.dest}"
               for where, a in _options(build_parser()) if not a.help]
    assert missing == []


def test_hub_k_help_states_the_librarys_default(capsys):
    from retrieval.hubness import DEFAULT_HUB_K

    with pytest.raises(SystemExit):
        main(["index", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"hub penalty averages (default {DEFAULT_HUB_K})" in text


def test_evaluate_missing_predictions_is_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    assert main(["evaluate", "--predictions", str(missing), "--data", "sample"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and ("no such file" in err or "does not exist" in err) and "Traceback" not in err


class _NoEncoding:
    name, dim, fingerprint = "refuses", 32, "0" * 64

    def encode(self, texts, kind="query"):
        raise AssertionError("encoded before the factory was checked")


def test_an_impossible_factory_fails_before_any_encoding(tmp_path, capsys):
    from retrieval.index import build_head_index
    from tiktalk.errors import UsageError

    with pytest.raises(UsageError, match=r"factory 'IVF99999,Flat' needs at least 99999 training vectors"):
        build_head_index(kg.load_kg("sample"), _NoEncoding(), None, factory="IVF99999,Flat", progress=False)
    assert main(["index", "build", "--kg", "sample", "--out", str(tmp_path / "i"), "--encoder", "hash:32",
                 "--factory", "IVF99999,Flat", "--workers", "1", "--background", "none"]) == 2
    assert "IVF99999" in capsys.readouterr().err and not (tmp_path / "i").exists()


def test_generate_refuses_to_replace_its_output_without_overwrite(tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    out.write_text("{}\n")
    assert main(["generate", "--run", str(tmp_path / "no-run"), "--out", str(out)]) == 2
    assert f"{out} already exists (pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "{}\n"
