"""Issue 22.1 and 22.6: every numeric option is declared once (tiktalk.options) with its type,
range and finiteness; the flag and the config field share it, and a value out of range exits 2
with one line naming the option and the range, before anything runs. Each probe below was a
silent wrong result or a traceback."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from retrieval.retriever import RetrieverConfig
from retrieval.search import SearchParams
from retrieval.selector import TrainSettings
from tests.cli_contract import expect_error, run_cli
from tiktalk.build import BuildConfig
from tiktalk.commands.main import build_parser
from tiktalk.errors import UsageError
from tiktalk.importers import ImportOptions
from tiktalk.models.features import FeatureConfig
from tiktalk.models.train_config import TrainConfig
from tiktalk.options import COUNT, FRACTION, POSITIVE, POSITIVE_INT, SEED, Bounds, field_bounds

INT_RANGE = r"must be an integer in \[1, 2147483647\]"


def test_bounds_describe_and_refuse_non_finite_values():
    assert POSITIVE_INT.describe() == "an integer in [1, 2147483647]"
    assert POSITIVE.describe() == "a finite number > 0"
    assert FRACTION.describe() == "a finite number in [0, 1]"
    assert Bounds(float, 0, 1, high_open=True).describe() == "a finite number in [0, 1)"
    assert SEED.check("--seed", 0) == 0 and COUNT.check("x", 0) == 0
    assert POSITIVE.check("lr", 3) == 3.0 and isinstance(POSITIVE.check("lr", 3), float)
    for bad in (math.nan, math.inf, -math.inf, True, "1", None):
        with pytest.raises(UsageError, match=r"lr must be a finite number > 0, got"):
            POSITIVE.check("lr", bad)
    with pytest.raises(UsageError, match=r"top_k must be an integer in \[1, 2147483647\], got 2.5"):
        POSITIVE_INT.check("top_k", 2.5)
    for text in ("nan", "inf", "-1", "0", "1e400", "2147483648", "9" * 5000, "1.5", "x"):
        with pytest.raises(ValueError):
            POSITIVE_INT.convert(text) if text != "nan" and text != "inf" else POSITIVE.convert(text)


@pytest.mark.parametrize("argv, pattern", [
    (["index", "build", "--out", "{tmp}/i", "--batch-size", "-1"], rf"argument --batch-size: {INT_RANGE}, got '-1'"),
    (["index", "build", "--out", "{tmp}/i", "--batch-size", "0"], rf"argument --batch-size: {INT_RANGE}, got '0'"),
    (["index", "build", "--out", "{tmp}/i", "--nprobe", "-1"], rf"argument --nprobe: {INT_RANGE}"),
    (["index", "build", "--out", "{tmp}/i", "--ef-search", "0"], rf"argument --ef-search: {INT_RANGE}"),
    (["retrieve", "--index", "{tmp}/i", "--top-k", "2147483648", "x"], rf"argument --top-k: {INT_RANGE}"),
    (["retrieve", "--index", "{tmp}/i", "--min-score", "nan", "x"], r"argument --min-score: must be a finite number"),
    (["train", "--out", "{tmp}/r", "--lr", "inf"], r"argument --lr: must be a finite number > 0, got 'inf'"),
    (["train", "--out", "{tmp}/r", "--seed", "-1"], r"argument --seed: must be an integer in \[0, 4294967295\]"),
    (["train", "--out", "{tmp}/r", "--adam-eps", "nan"], r"argument --adam-eps: must be a finite number > 0"),
    (["train", "--out", "{tmp}/r", "--max-grad-norm", "nan"], r"argument --max-grad-norm: must be a finite number >= 0"),
    (["train", "--out", "{tmp}/r", "--adam-beta2", "1"], r"argument --adam-beta2: must be a finite number in \[0, 1\)"),
    (["generate", "--run", "{tmp}/r", "--out", "{tmp}/p", "--batch-size", "-1"], rf"argument --batch-size: {INT_RANGE}"),
    (["generate", "--run", "{tmp}/r", "--out", "{tmp}/p", "--batch-size", "0"], rf"argument --batch-size: {INT_RANGE}"),
    (["generate", "--run", "{tmp}/r", "--out", "{tmp}/p", "--repetition-penalty", "nan"],
     r"argument --repetition-penalty: must be a finite number > 0"),
    (["generate", "--run", "{tmp}/r", "--out", "{tmp}/p", "--length-penalty", "nan"],
     r"argument --length-penalty: must be a finite number"),
    (["generate", "--run", "{tmp}/r", "--out", "{tmp}/p", "--device", "tpu"],
     r"argument --device: must be cpu, cuda, cuda:N or mps, got 'tpu'"),
    (["probe", "knowledge", "--run", "{tmp}/r", "--bootstrap", "0"], rf"argument --bootstrap: {INT_RANGE}"),
    (["data", "build", "sample", "--out", "{tmp}/d", "--val-fraction", "nan"],
     r"argument --val-fraction: must be a finite number in \[0, 1\]"),
    (["data", "import", "x.jsonl", "--out", "{tmp}/d", "--test-fraction", "2"],
     r"argument --test-fraction: must be a finite number in \[0, 1\]"),
    (["select", "train", "--data", "x", "--index", "{tmp}/i", "--out", "{tmp}/s", "--abstain-credit", "-0.5"],
     r"argument --abstain-credit: must be a finite number >= 0, got '-0.5'"),
    (["select", "train", "--data", "x", "--index", "{tmp}/i", "--out", "{tmp}/s", "--abstain-rule", "odds"],
     r"argument --abstain-rule: must be one of context, fitted, step, got 'odds'"),
    (["annotate", "--index", "{tmp}/i", "--data", "x", "--out", "{tmp}/k", "--chunk-size", "0"],
     rf"argument --chunk-size: {INT_RANGE}"),
    (["annotate", "--index", "{tmp}/i", "--data", "x", "--out", "{tmp}/k", "--workers", "-2"],
     rf"argument --workers: {INT_RANGE}"),
])
def test_out_of_range_option_exits_2_naming_option_and_range(tmp_path, argv, pattern):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = run_cli(argv)
    command = argv[0] if argv[0] in ("retrieve", "annotate", "train", "generate") else f"{argv[0]} {argv[1]}"
    expect_error(command, result, [], pattern)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_train_flags_and_train_config_share_one_declaration():
    """Every bounded TrainConfig field's flag refuses exactly what the field refuses, with the same range."""
    parser = build_parser()
    checked = 0
    for f in dataclasses.fields(TrainConfig):
        bounds = field_bounds(f)
        if bounds is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        bad = "-5" if bounds.low is not None else "nan"
        result = run_cli(["train", "--out", "unused", flag, bad])
        assert result.code == 2 and f"argument {flag}: must be {bounds.describe()}" in result.err, result.err
        with pytest.raises(UsageError, match=re.escape(f"TrainConfig.{f.name} must be {bounds.describe()}")):
            TrainConfig(**{f.name: float(bad) if bounds.kind is float else int(bad)})
        checked += 1
    assert checked >= 15 and parser is not None


@pytest.mark.parametrize("make, pattern", [
    (lambda: TrainConfig(lr=math.inf), r"TrainConfig.lr must be a finite number > 0, got inf"),
    (lambda: TrainConfig(max_grad_norm=math.nan), r"TrainConfig.max_grad_norm must be a finite number >= 0"),
    (lambda: TrainConfig(seed=-1), r"TrainConfig.seed must be an integer in \[0, 4294967295\]"),
    (lambda: RetrieverConfig(min_score=math.nan), r"RetrieverConfig.min_score must be a finite number, got nan"),
    (lambda: RetrieverConfig(top_k=0), r"RetrieverConfig.top_k must be an integer in \[1, 2147483647\], got 0"),
    (lambda: SearchParams(ef_search=0), r"SearchParams.ef_search must be an integer in \[1, 2147483647\]"),
    (lambda: FeatureConfig(batch_size=-1), r"FeatureConfig.batch_size must be an integer in \[1, 2147483647\]"),
    (lambda: BuildConfig(val_fraction=math.nan), r"BuildConfig.val_fraction must be a finite number in \[0, 1\]"),
    (lambda: ImportOptions(val_fraction=math.inf), r"ImportOptions.val_fraction must be a finite number in \[0, 1\]"),
    (lambda: TrainSettings(abstain_credit=math.nan), r"TrainSettings.abstain_credit must be a finite number >= 0"),
])
def test_config_objects_refuse_out_of_range_values(make, pattern):
    with pytest.raises(UsageError, match=pattern):
        make()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("index") / "idx"
    result = run_cli(["index", "build", "--kg", "sample", "--out", str(out), "--encoder", "hash:32",
                      "--background", "none", "--json"])
    assert result.code == 0, result.err
    return out


def test_huge_top_k_is_clamped_to_the_index(index_dir):
    """`--top-k 1000000000` grew past 23 GB: the fetch is bounded by the index, the answer is every head."""
    import json

    result = run_cli(["retrieve", "--index", str(index_dir), "--selection", "paper", "--top-k", "1000000000", "--json",
                      "有人买披萨"])
    assert result.code == 0, result.err
    heads = json.loads(result.out)["heads"]
    texts = [h["text"] for h in heads]
    assert 1 < len(heads) <= 390 and len(set(texts)) == len(texts)
    assert all(math.isfinite(h["score"]) for h in heads)
    scores = [h["score"] for h in heads]
    assert scores == sorted(scores, reverse=True)
