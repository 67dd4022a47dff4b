"""What a run logs: metrics.jsonl lines (averaged over steps and ranks), the loss plot, the
model's config for run.json."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from tiktalk.errors import UsageError
from tiktalk.io import atomic_write_text
from tiktalk.models.base import ChatModel


def model_config_dict(model: ChatModel) -> Any:
    config = getattr(model, "config", None)
    if config is None:
        return None
    if hasattr(config, "to_dict"):
        raw = config.to_dict()
    elif dataclasses.is_dataclass(config):
        raw = dataclasses.asdict(config)
    else:
        raw = dict(vars(config))
    return json.loads(json.dumps(raw, default=str))  # JSON-safe copy


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> None:
    """Loss curves (loss and each loss_*) against step, written atomically as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    if not rows:
        return
    names = sorted({k for r in rows for k in r if k == "loss" or k.startswith("loss_")})
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        points = [(r["step"], r[name]) for r in rows if name in r]
        ax.plot(*zip(*points), label=name, linewidth=2 if name == "loss" else 1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(Path(metrics_path).parent.name)
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    from tiktalk.io import atomic_write_bytes

    atomic_write_bytes(png_path, buf.getvalue())


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UsageError(f"{path}:{line_no}: not a JSON line ({err})") from err
            step = row.get("step") if isinstance(row, dict) else None
            if isinstance(step, bool) or not isinstance(step, int):
                raise UsageError(f"{path}:{line_no}: not a metrics line (an object with an integer 'step'; "
                                 f"was it edited?)")
            rows.append(row)
    return rows


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines logged after the checkpoint a resumed run restarts from."""
    rows = [r for r in read_metrics(path) if r["step"] <= last_step]
    if path.exists():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


class MetricsWindow:
    """Losses, gradient norms and examples accumulated between two metrics lines.

    Sums stay on the device (no host sync per step) until :meth:`flush`, which gathers
    every rank's window and appends one averaged line to metrics.jsonl.
    """

    def __init__(self, device: torch.device):
        self.grad_norm_sum = torch.zeros((), device=device)
        self.reset()

    def reset(self) -> None:
        self.losses: dict[str, list] = {}  # name -> [sum (0-d tensor), count]
        self.examples = 0
        self.steps = 0
        self.grad_norm_sum.zero_()
        self.start = time.perf_counter()

    def add(self, step_losses: dict[str, torch.Tensor], grad_norm: torch.Tensor, n_examples: int) -> None:
        for name, value in step_losses.items():
            acc = self.losses.setdefault(name, [0.0, 0])
            acc[0] += value
            acc[1] += 1
        self.grad_norm_sum += grad_norm.detach().float()
        self.examples += n_examples
        self.steps += 1

    def flush(self, session: Any, state: Any) -> dict[str, Any]:
        """The line for ``state.global_step`` (written by the main process); starts a new window."""
        from accelerate.utils import gather_object

        row = log_row(
            gather_object([{k: (float(v[0]), v[1]) for k, v in self.losses.items()}]),
            gather_object([self.examples]),
            state.global_step,
            state.epoch,
            session.scheduler.get_last_lr()[0],
            float(self.grad_norm_sum) / self.steps,
            time.perf_counter() - self.start,
            self.steps,
        )
        if session.is_main:
            with open(session.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        # the same line to accelerate's trackers (--report-to; none registered: a no-op)
        session.accelerator.log({f"train/{k}": v for k, v in row.items() if k != "step" and v is not None},
                                step=state.global_step)
        self.reset()
        return row


def log_row(
    loss_windows: list[dict[str, tuple[float, int]]],
    example_counts: list[int],
    step: int,
    epoch: int,
    lr: float,
    grad_norm: float,
    seconds: float,
    steps: int,
) -> dict[str, Any]:
    """Average each loss over steps and ranks (gathered); examples/s counts all ranks."""
    merged: dict[str, list[float]] = {}
    for per_rank in loss_windows:
        for name, (total, count) in per_rank.items():
            acc = merged.setdefault(name, [0.0, 0])
            acc[0] += total
            acc[1] += count
    row: dict[str, Any] = {"step": step, "epoch": epoch}
    for name in sorted(merged, key=lambda n: (n != "loss", n)):
        total, count = merged[name]
        row[name] = total / count
    row.update(
        {
            "lr": lr,
            "grad_norm": grad_norm,
            "examples_per_s": sum(example_counts) / seconds if seconds > 0 else None,
            "step_time_s": seconds / steps,
        }
    )
    return row
