"""``tiktalk bench SUITE...``: run the pytest-benchmark suites and gather one report.

Each suite (``benchmarks/bench_<file>.py``) runs its reference first, asserts agreement,
then writes ``<out>/<suite>.json`` with its ratios (see ``benchmarks/common.py``). This
command runs them with pytest-benchmark enabled, then writes ``<out>/summary.md`` with the
ratios, the plots, library versions, CPU, thread counts and the git hash.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tiktalk.commands import add_json_flag, emit
from tiktalk.errors import CommandFailedError

SUITES: dict[str, str] = {
    "retrieval": "bench_retrieval.py",
    "train": "bench_train_step.py",
    "decode": "bench_decode.py",
    "metrics": "bench_metrics.py",
    "scaling": "bench_scaling.py",
    "selection": "bench_selection.py",
}


def benchmarks_dir() -> Path:
    """The installed ``benchmarks`` package (a package of tiktalk-kg, so an install can run it)."""
    import benchmarks

    return Path(benchmarks.__file__).resolve().parent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run benchmark suites; write JSON, PNG plots and a markdown summary")
    p.add_argument("suites", nargs="+", choices=sorted(SUITES) + ["all"], metavar="SUITE",
                   help=f"one or more of {', '.join(SUITES)}, or all")
    p.add_argument("--quick", action="store_true", help="small sizes: all five suites in about 5 minutes on 2 cores")
    p.add_argument("--out", default="bench_results", help="results directory (default ./bench_results)")
    p.add_argument("--pytest-args", default="", help="extra arguments passed to pytest")
    add_json_flag(p)
    p.set_defaults(func=_bench)


def run_suite(name: str, out: Path, quick: bool, extra: list[str] | None = None) -> dict:
    """Run one suite in a subprocess (its own threads and memory); return its result JSON."""
    bench_dir = benchmarks_dir()
    result_file = out / f"{name}.json"
    result_file.unlink(missing_ok=True)  # never report a stale result
    env = dict(os.environ, TIKTALK_BENCH_OUT=str(out), TIKTALK_BENCH_QUICK="1" if quick else "0")
    cmd = [
        sys.executable, "-m", "pytest", str(bench_dir / SUITES[name]), "-q", "-p", "no:cacheprovider",
        "--benchmark-enable", "--benchmark-only", "-m", "", "--override-ini=addopts=",
        f"--benchmark-json={out / f'{name}.pytest-benchmark.json'}", *(extra or []),
    ]
    start = time.perf_counter()
    # pytest's report goes to stderr: under --json, stdout holds exactly one JSON document
    proc = subprocess.run(cmd, cwd=bench_dir.parent, env=env, check=False, stdout=sys.stderr)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise CommandFailedError(f"benchmark suite {name!r} failed (pytest exit {proc.returncode}): {' '.join(cmd)}")
    if not result_file.is_file():
        raise CommandFailedError(f"benchmark suite {name!r} wrote no {result_file}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result["seconds"] = round(seconds, 1)
    return result


def summary_markdown(results: list[dict]) -> str:
    lines = ["# tiktalk-kg benchmark summary", ""]
    if results:
        machine = results[0].get("machine", {})
        lines += [
            (f"- git: `{machine.get('git')}`; CPU: {machine.get('cpu')} ({machine.get('cores')} cores); "
             f"CUDA: {machine.get('cuda')}"),
            (f"- threads: torch {machine.get('torch_threads')}, faiss {machine.get('faiss_threads')}, "
             f"env {machine.get('env_threads')}"),
            "- versions: " + ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items()),
            "",
        ]
    for result in results:
        mode = "quick" if result.get("quick") else "full"
        lines += [f"## {result['suite']} ({mode}, {result.get('seconds', '?')} s)", "", "| ratio | value |", "|---|---|"]
        lines += [f"| `{k}` | {v:.3f} |" for k, v in result["ratios"].items()]
        lines += [""] + [f"![{p}]({p})" for p in result.get("plots", [])] + [""]
    return "\n".join(lines)


def _bench(args: argparse.Namespace) -> int:
    from tiktalk.io import atomic_write_text

    names = list(SUITES) if "all" in args.suites else list(dict.fromkeys(args.suites))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [run_suite(name, out, args.quick, args.pytest_args.split()) for name in names]
    atomic_write_text(out / "summary.md", summary_markdown(results))
    brief = [{"suite": r["suite"], "ratios": r["ratios"], "plots": r.get("plots", []), "seconds": r["seconds"]}
             for r in results]
    emit(args, brief[0] if len(brief) == 1 else brief,
         lambda _: summary_markdown(results) + f"\nwritten: {out / 'summary.md'}")
    return 0
