"""Long steps show a bar (with ETA) on stderr unless told not to; ``index eval`` caches its
embeddings by default, per user; ``index eval --cases`` (``--data`` kept as a deprecated alias)."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.encoders import HashEncoder, encode_batches
from tests.cli_contract import run_cli
from tiktalk.commands.main import build_parser

BAR = re.compile(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d")  # tqdm's "n/total [elapsed<ETA"


def test_encode_batches_shows_a_bar_with_eta_only_when_asked(capsys) -> None:
    enc = HashEncoder(16)
    texts = [f"文本{i}" for i in range(10)]
    shown = encode_batches(enc, texts, "query", batch_size=3, progress=True, desc="encode test")
    err = capsys.readouterr().err
    assert "encode test" in err and BAR.search(err) and "10/10" in err
    np.testing.assert_array_equal(shown, enc.encode(texts, kind="query"))  # slicing changes no vector
    encode_batches(enc, texts, "query", batch_size=3, progress=False)
    assert capsys.readouterr().err == ""


class CountingHash(HashEncoder):
    """The hash encoder, counting the texts it encodes."""

    calls = 0

    def encode(self, texts, kind="query"):
        CountingHash.calls += len(texts)
        return super().encode(texts, kind)


@pytest.fixture
def counting(monkeypatch):
    from retrieval import encoders

    monkeypatch.setattr(encoders, "HashEncoder", CountingHash)
    CountingHash.calls = 0
    return CountingHash


def test_index_eval_shows_bars_unless_no_progress_or_json_into_a_pipe(tmp_path: Path) -> None:
    base = ["index", "eval", "--encoder", "hash:32", "--no-cache"]
    shown = run_cli(base)
    assert shown.code == 0 and "encode passages (hash:32)" in shown.err and BAR.search(shown.err), shown.err
    assert "encode querys" not in shown.err and "encode queries (hash:32)" in shown.err
    quiet = run_cli([*base, "--no-progress"])
    assert quiet.code == 0 and not BAR.search(quiet.err) and quiet.out == shown.out
    piped = run_cli([*base, "--json"])  # stderr is a StringIO here: not a terminal
    assert piped.code == 0 and not BAR.search(piped.err)
    assert json.loads(piped.out)["cache"] is None


def test_index_eval_caches_by_default_and_a_new_fingerprint_misses(tmp_path: Path, monkeypatch, counting) -> None:
    monkeypatch.setenv("TIKTALK_CACHE", str(tmp_path / "user-cache"))
    first = run_cli(["index", "eval", "--encoder", "hash:32", "--json"])
    assert first.code == 0, first.err
    encoded = counting.calls
    cache = tmp_path / "user-cache" / "embeddings"
    assert encoded > 0 and json.loads(first.out)["cache"] == str(cache) and list(cache.glob("hash_32-*.npy"))
    again = run_cli(["index", "eval", "--encoder", "hash:32", "--json"])
    assert again.code == 0 and counting.calls == encoded  # every vector read back from the cache
    strip = lambda out: {k: v for k, v in json.loads(out).items() if k != "cache"}
    assert strip(again.out) == strip(first.out)
    other = run_cli(["index", "eval", "--encoder", "hash:48", "--json"])  # another fingerprint: encoded afresh
    assert other.code == 0 and counting.calls > encoded
    before = counting.calls
    fresh = run_cli(["index", "eval", "--encoder", "hash:32", "--no-cache", "--json"])
    assert fresh.code == 0 and counting.calls - before == encoded and json.loads(fresh.out)["cache"] is None
    both = run_cli(["index", "eval", "--encoder", "hash:32", "--no-cache", "--cache", str(tmp_path)])
    assert both.code == 2 and "--cache and --no-cache" in both.err


def test_a_damaged_cache_file_is_encoded_again(tmp_path: Path, counting) -> None:
    from retrieval.evaluate import encode_cached

    enc = counting(16)
    texts = ["一", "二", "三"]
    first = encode_cached(enc, texts, "passage", tmp_path)
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(b"not a numpy file")
    np.testing.assert_array_equal(encode_cached(enc, texts, "passage", tmp_path), first)
    assert counting.calls == 6 and np.load(path).shape == (3, 16)


def test_index_eval_cases_and_its_deprecated_alias_data(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"context": ["想吃披萨"], "gold": "有人买披萨"}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    base = ["index", "eval", "--encoder", "hash:32", "--no-progress", "--json"]
    new = run_cli([*base, "--cases", str(cases)])
    old = run_cli([*base, "--data", str(cases)])
    assert new.code == old.code == 0
    assert json.loads(new.out)["data"]["rows"] == 1 and json.loads(old.out) == json.loads(new.out)
    notes = [line for line in old.err.splitlines() if "note:" in line]
    assert notes == ["tiktalk: note: `index eval --data` is deprecated: use --cases (elsewhere --data names a dataset)"]
    assert "note:" not in new.err
    both = run_cli([*base, "--cases", str(cases), "--data", str(cases)])
    assert both.code == 2 and "--data is the deprecated name of --cases" in both.err


def test_index_build_hub_background_has_a_bar(tmp_path: Path) -> None:
    shown = run_cli(["index", "build", "--kg", "sample", "--encoder", "hash:32", "--out", str(tmp_path / "a")])
    assert shown.code == 0 and "encode hub background (hash:32)" in shown.err and BAR.search(shown.err)
    quiet = run_cli(["index", "build", "--kg", "sample", "--encoder", "hash:32", "--out", str(tmp_path / "b"),
                     "--no-progress"])
    assert quiet.code == 0 and not BAR.search(quiet.err)
    assert np.load(tmp_path / "a" / "hub_penalty.npy").tolist() == np.load(tmp_path / "b" / "hub_penalty.npy").tolist()


@pytest.mark.parametrize("argv", [["demo"], ["reproduce", "--out", "x"], ["index", "eval"], ["annotate", "--index", "i",
                                  "--data", "sample", "--out", "o"]])
def test_progress_switch_of_long_commands(argv, monkeypatch) -> None:
    from tiktalk.commands import show_progress

    parser = build_parser()
    assert show_progress(parser.parse_args(argv)) is True
    assert show_progress(parser.parse_args([*argv, "--no-progress"])) is False
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a log file
    assert show_progress(parser.parse_args([*argv, "--json"])) is False

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert show_progress(parser.parse_args([*argv, "--json"])) is True
