"""``tiktalk bench`` plumbing that times nothing: goals, argument splitting, the summary."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.goals import GOALS, goal_for, judge
from tiktalk.commands import bench


def test_goals_judge_each_ratio():
    verdicts = judge({"vs_torch_gemm": 1.1, "vs_c3kg_loop": 99.5, "lccc_hub_share_c3kg_heads": 0.01,
                      "table7_TI_vs_T": 1.4})
    assert verdicts["vs_torch_gemm"] == {"value": 1.1, "goal": "<= 1.1", "pass": True}
    assert verdicts["vs_c3kg_loop"] == {"value": 99.5, "goal": ">= 100", "pass": False}
    assert verdicts["lccc_hub_share_c3kg_heads"]["pass"] is True  # a pattern goal
    assert verdicts["table7_TI_vs_T"] == {"value": 1.4, "goal": None, "pass": None}  # a figure, no goal
    assert goal_for("vs_c3kg_loop") == GOALS["vs_c3kg_loop"]


def test_pytest_args_split_like_a_shell():
    parser = argparse.ArgumentParser()
    bench.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "retrieval", "--pytest-args", '-k "batch or floor" -x'])
    assert args.pytest_args == ["-k", "batch or floor", "-x"]
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "retrieval", "--pytest-args", '-k "unclosed'])


def test_summary_shows_goal_verdict_load_and_table7():
    results = [
        {"suite": "retrieval", "quick": True, "seconds": 41.0, "load_avg_at_start": 1.5,
         "ratios": {"vs_torch_gemm": 1.3}, "goals": judge({"vs_torch_gemm": 1.3}),
         "machine": {"cpu": "AMD EPYC", "cores": 2}},
        {"suite": "table7", "quick": False, "seconds": 90.0, "load_avg_at_start": 0.7,
         "ratios": {"table7_TI_vs_T": 1.2}, "goals": judge({"table7_TI_vs_T": 1.2}),
         "data": {"table": [{"row": "T+I", "vs": "T", "ours_pct": "+20%", "paper_pct": "+75%"}]}},
    ]
    text = bench.summary_markdown(results)
    assert "| `vs_torch_gemm` | 1.300 | <= 1.1 | **FAIL** |" in text
    assert "AMD EPYC (2 cores)" in text and "retrieval 1.5, table7 0.7" in text
    assert "| T+I | T | +20% | +75% |" in text


def test_run_suite_finds_the_result_of_a_relative_out_from_any_directory(tmp_path, monkeypatch):
    import json
    import subprocess
    from pathlib import Path

    def fake_pytest(cmd, cwd, env, check, stdout):  # the suite resolves its out dir against its own cwd
        out = Path(cwd) / env["TIKTALK_BENCH_OUT"]
        assert out.is_absolute() and out.is_relative_to(tmp_path), out  # never the repository's ./bench_results
        out.mkdir(parents=True, exist_ok=True)
        (out / "selection.json").write_text(json.dumps({"suite": "selection", "ratios": {"selection_overhead": 1.0}}))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_pytest)
    monkeypatch.chdir(tmp_path)
    result = bench.run_suite("selection", Path("bench_results"), quick=True)
    assert result["ratios"] == {"selection_overhead": 1.0} and result["goals"]["selection_overhead"]["pass"] is True
    assert (tmp_path / "bench_results" / "selection.json").is_file()
