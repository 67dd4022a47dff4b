"""What every benchmark suite shares: where results go, quick mode, machine facts, result files.

Each suite runs its reference first, asserts agreement, then reports ratios, and calls
:func:`write_result` once, which writes ``<out>/<suite>.json`` (``{"suite", "ratios",
"data", "machine"}``) beside the PNG plots the suite made. ``tiktalk bench`` collects them.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

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


def bench_threads() -> int:
    """CPU threads for torch suites (``TIKTALK_BENCH_THREADS``, default 1): on 2 cores shared
    with other jobs, torch's thread sync costs more than it gains on these sizes and makes
    timings erratic."""
    return int(os.environ.get("TIKTALK_BENCH_THREADS", "1"))


def maria_backbone(quick: bool) -> dict[str, int]:
    """The "tiny-ish" Maria backbone of the torch suites: hidden 128, 4 layers (quick: 64, 2)."""
    if quick:
        return {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256}
    return {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512}


CJK_ALPHABET = tuple(chr(c) for c in range(0x4E00, 0x4E00 + 2000))  # 2,000 common CJK characters


def cjk_text(rng: Any, length: int) -> str:
    """``length`` characters drawn uniformly from :data:`CJK_ALPHABET` with ``rng`` (numpy Generator)."""
    return "".join(rng.choice(CJK_ALPHABET, size=length))


def best_time(fn: Callable[[], R], rounds: int = 1, sync: Callable[[], None] | None = None) -> tuple[float, R]:
    """(the fastest of ``rounds`` wall-clock runs of ``fn`` in seconds, the last result).

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before the clock starts and before it
    stops, so queued GPU work is counted where it belongs."""
    best, out = float("inf"), None
    for _ in range(max(1, rounds)):
        if sync is not None:
            sync()
        start = time.perf_counter()
        out = fn()
        if sync is not None:
            sync()
        best = min(best, time.perf_counter() - start)
    return best, out  # type: ignore[return-value]


def device_sync(device: Any) -> Callable[[], None] | None:
    """What :func:`best_time` must call around a timed region on ``device`` (a torch.device):
    ``torch.cuda.synchronize`` on a GPU, nothing on the CPU."""
    if device.type != "cuda":
        return None
    import torch

    return torch.cuda.synchronize


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display on a benchmark machine)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, name: str, dpi: int = 110) -> str:
    """Lay out ``fig``, write it to ``<out>/<name>``, close it; returns ``name`` for :func:`write_result`."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out_dir() / name, dpi=dpi)
    plt.close(fig)
    return name


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
