"""``tiktalk bench SUITE...``: run the pytest-benchmark suites and gather one report.

Each suite (``benchmarks/bench_<file>.py``) runs its reference first, asserts agreement,
then writes ``<out>/<suite>.json`` with its ratios (see ``benchmarks/common.py``). This
command runs them with pytest-benchmark enabled, then writes ``<out>/summary.md``: per
ratio its value, goal and pass / fail (:mod:`benchmarks.goals`), the plots, and the
machine (CPU model, cores, load average when the suite started, versions, git hash).
``bench train --table7`` runs Table 7 as the paper measured it (``bench_table7.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tiktalk.commands import add_json_flag, emit
from tiktalk.errors import CommandFailedError, UsageError

SUITES: dict[str, str] = {
    "retrieval": "bench_retrieval.py",
    "train": "bench_train_step.py",
    "decode": "bench_decode.py",
    "metrics": "bench_metrics.py",
    "scaling": "bench_scaling.py",
    "selection": "bench_selection.py",
}
TABLE7_FILE = "bench_table7.py"  # what ``train`` runs under --table7


def benchmarks_dir() -> Path:
    """The installed ``benchmarks`` package (a package of tiktalk-kg, so an install can run it)."""
    import benchmarks

    return Path(benchmarks.__file__).resolve().parent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run benchmark suites; write JSON, PNG plots and a markdown summary")
    p.add_argument("suites", nargs="+", choices=sorted(SUITES) + ["all"], metavar="SUITE",
                   help=f"one or more of {', '.join(SUITES)}, or all")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few rounds (retrieval: about a minute on 2 cores); the full run gives the docs' figures")
    p.add_argument("--table7", action="store_true",
                   help="train: time a Maria epoch-equivalent for M1-M5 at fixed padding (180 text + 50 frames), "
                        "each ratio beside the paper's Table 7")
    p.add_argument("--out", default="bench_results", help="results directory (default ./bench_results)")
    p.add_argument("--pytest-args", default="", type=_pytest_args,
                   help='extra pytest arguments, split as a shell would (e.g. "-k \"a or b\"")')
    add_json_flag(p)
    p.set_defaults(func=_bench)


def _pytest_args(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"cannot split {text!r} as a shell would: {err}") from None


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def run_suite(name: str, out: Path, quick: bool, extra: list[str] | None = None, table7: bool = False) -> dict:
    """Run one suite in a subprocess (its own threads and memory); return its result JSON,
    with ``seconds``, ``load_avg_at_start`` (1-minute) and ``goals`` (per ratio: value, goal,
    pass) added. ``table7`` runs Table 7 in place of the ``train`` suite."""
    from benchmarks.goals import judge

    bench_dir = benchmarks_dir()
    out = Path(out).resolve()  # the suite runs from the repository root, the caller from anywhere
    file, result_name = (TABLE7_FILE, "table7") if table7 and name == "train" else (SUITES[name], name)
    result_file = out / f"{result_name}.json"
    result_file.unlink(missing_ok=True)  # never report a stale result
    env = dict(os.environ, TIKTALK_BENCH_OUT=str(out), TIKTALK_BENCH_QUICK="1" if quick else "0")
    load = load_average()
    cmd = [
        sys.executable, "-m", "pytest", str(bench_dir / file), "-q", "-p", "no:cacheprovider",
        "--benchmark-enable", "--benchmark-only", "-m", "", "--override-ini=addopts=",
        f"--benchmark-json={out / f'{result_name}.pytest-benchmark.json'}", *(extra or []),
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
    result["load_avg_at_start"] = load
    result["goals"] = judge(result["ratios"])
    return result


def _verdict(row: dict) -> str:
    return "-" if row["pass"] is None else ("pass" if row["pass"] else "**FAIL**")


def summary_markdown(results: list[dict]) -> str:
    lines = ["# tiktalk-kg benchmark summary", ""]
    if results:
        machine = results[0].get("machine", {})
        lines += [
            (f"- git: `{machine.get('git')}`; CPU: {machine.get('cpu')} ({machine.get('cores')} cores); "
             f"CUDA: {machine.get('cuda')}"),
            "- load average (1 min) when each suite started: "
            + ", ".join(f"{r['suite']} {r.get('load_avg_at_start')}" for r in results),
            (f"- threads: torch {machine.get('torch_threads')}, faiss {machine.get('faiss_threads')}, "
             f"env {machine.get('env_threads')}"),
            "- versions: " + ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items()),
            "",
        ]
    for result in results:
        mode = "quick" if result.get("quick") else "full"
        lines += [f"## {result['suite']} ({mode}, {result.get('seconds', '?')} s)", "",
                  "| ratio | value | goal | |", "|---|---|---|---|"]
        goals = result.get("goals", {})
        lines += [f"| `{k}` | {v:.3f} | {goals.get(k, {}).get('goal') or '-'} | {_verdict(goals[k]) if k in goals else '-'} |"
                  for k, v in result["ratios"].items()]
        table = result.get("data", {}).get("table")
        if result["suite"] == "table7" and table:
            lines += ["", "| row | against | ours | paper |", "|---|---|---|---|"]
            lines += [f"| {t['row']} | {t['vs']} | {t['ours_pct']} | {t['paper_pct']} |" for t in table]
        lines += [""] + [f"![{p}]({p})" for p in result.get("plots", [])] + [""]
    return "\n".join(lines)


def _bench(args: argparse.Namespace) -> int:
    from tiktalk.io import atomic_write_text

    names = list(SUITES) if "all" in args.suites else list(dict.fromkeys(args.suites))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.table7 and "train" not in names:
        raise UsageError("--table7 belongs to the train suite: tiktalk bench train --table7")
    results = [run_suite(name, out, args.quick, args.pytest_args, table7=args.table7) for name in names]
    atomic_write_text(out / "summary.md", summary_markdown(results))
    brief = []
    for r in results:
        machine = r.get("machine", {})
        entry = {"suite": r["suite"], "quick": r.get("quick"), "ratios": r["ratios"], "goals": r["goals"],
                 "plots": r.get("plots", []), "seconds": r["seconds"],
                 "machine": {"cpu": machine.get("cpu"), "cores": machine.get("cores"),
                             "load_avg_at_start": r["load_avg_at_start"], "cuda": machine.get("cuda")}}
        if r["suite"] == "table7":
            entry["table"] = r.get("data", {}).get("table")
            entry["rows"] = r.get("data", {}).get("rows")
        brief.append(entry)
    emit(args, brief[0] if len(brief) == 1 else brief,
         lambda _: summary_markdown(results) + f"\nwritten: {out / 'summary.md'}")
    return 0
