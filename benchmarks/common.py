"""What every benchmark suite shares: where results go, quick mode, machine facts, result files.

Each suite runs its reference first, asserts agreement, then reports ratios, and calls
:func:`write_result` once, which writes ``<out>/<suite>.json`` (``{"suite", "ratios",
"data", "machine"}``) beside the PNG plots the suite made. ``tiktalk bench`` collects them.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def out_dir() -> Path:
    path = Path(os.environ.get("TIKTALK_BENCH_OUT", ROOT / "benchmarks" / "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data(*parts: str) -> Path | None:
    """A path under the workplace's real public data (``$TIKTALK_SHARED_DATA``, default
    ``../shared/data`` beside the project), or None when absent (a fresh clone)."""
    root = Path(os.environ.get("TIKTALK_SHARED_DATA", ROOT.parent / "shared" / "data"))
    path = root.joinpath(*parts)
    return path if path.exists() else None


def is_quick() -> bool:
    """Quick mode (``TIKTALK_BENCH_QUICK=1`` or ``tiktalk bench --quick``): small sizes."""
    return os.environ.get("TIKTALK_BENCH_QUICK", "0") not in ("", "0", "false")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_hash() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info() -> dict[str, Any]:
    """Library versions, CPU, thread counts and git hash, recorded with every result."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "git": _git_hash(),
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")},
        "versions": {},
    }
    for name in ("numpy", "torch", "faiss", "transformers", "sentence_transformers", "polars"):
        try:
            module = __import__(name)
            info["versions"][name] = getattr(module, "__version__", "?")
        except ImportError:
            continue
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        import faiss

        info["faiss_threads"] = faiss.omp_get_max_threads()
        info["faiss_gpus"] = faiss.get_num_gpus()
    except ImportError:
        pass
    return info


def write_result(suite: str, ratios: dict[str, float], data: dict[str, Any] | None = None,
                 plots: list[str] | None = None) -> Path:
    """Write ``<out>/<suite>.json`` once per suite run; it replaces any earlier result whole,
    so ratios of an older run never mix with this one's."""
    from tiktalk.io import write_json

    path = out_dir() / f"{suite}.json"
    write_json(path, {
        "suite": suite, "quick": is_quick(), "ratios": {k: float(v) for k, v in ratios.items()},
        "data": data or {}, "plots": sorted(plots or []), "machine": machine_info(),
    })
    return path
