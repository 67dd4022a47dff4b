"""Every benchmark goal in one place: ratio name (a shell-style pattern) -> comparison and bound.

The suites report ratios (``<out>/<suite>.json``); :func:`judge` sets each beside its goal,
so ``tiktalk bench`` shows pass / fail per ratio. A ratio without a goal is a figure for the
docs (e.g. a Table 7 row beside the paper's), shown as such.
"""

from __future__ import annotations

import fnmatch
import operator

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}

GOALS: dict[str, tuple[str, float]] = {
    # retrieval (bench_retrieval.py)
    "vs_c3kg_loop": (">=", 100.0),  # C3KG's per-query loop / our batch search
    "vs_torch_gemm": ("<=", 1.1),  # our exact batch search / torch matmul + topk
    "flat1_vs_floor": ("<=", 1.2),  # one Flat query / the memory-read floor
    "flat1_d896_search_vs_floor": ("<=", 1.2),
    "fp16_recall_at_10": (">=", 0.999),
    "build_share_of_encode": ("<", 0.1),
    "annotate_all_cores_vs_1": (">=", 1.7),  # on 2 cores
    "annotate_non_encoding_share": ("<=", 0.1),
    "paraphrase_test_recall_at_5*": (">=", 0.70),
    "lccc_hub_share_*": ("<=", 0.02),
    # train (bench_train_step.py)
    "collate_share_*": ("<", 0.05),
    # selection (bench_selection.py)
    "selection_overhead": ("<=", 1.2),
    "select_train_vs_5min": ("<=", 1.0),
}


def goal_for(name: str) -> tuple[str, float] | None:
    """The goal of ratio ``name``: an exact entry first, else the first matching pattern."""
    if name in GOALS:
        return GOALS[name]
    return next((goal for pattern, goal in GOALS.items() if fnmatch.fnmatchcase(name, pattern)), None)


def judge(ratios: dict[str, float]) -> dict[str, dict]:
    """ratio -> {"value", "goal" (e.g. ``">= 100"``, None without one), "pass" (None without one)}."""
    out = {}
    for name, value in ratios.items():
        goal = goal_for(name)
        out[name] = {"value": value, "goal": None if goal is None else f"{goal[0]} {goal[1]:g}",
                     "pass": None if goal is None else bool(_OPS[goal[0]](value, goal[1]))}
    return out
