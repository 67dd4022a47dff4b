"""Maria training step per Table 7 row (as a ratio to T) and collate time as a share of the step.

A random "tiny-ish" Maria (hidden 128, 4 layers; quick: hidden 64, 2 layers) with the
paper's budgets (180 text tokens, 40 of them the response; 50 frames; audio rows), and
TikTalk-shaped synthetic examples: 2 context turns of ~16 characters, a ~16-character
response, 50 frames (a 34 s video sampled to the cap), 35 VGGish patches (34 s / 0.96 s)
and a long knowledge string that fills its share of the text budget. A step is
forward + backward + AdamW update on one collated batch; collate is timed on the same
examples (with a seeded generator). The paper's Table 7 minutes per epoch
(T 10, T+I 17.5, T+I+A 24, T+I+K 30, T+I+A+K 37; 4x V100) are stored beside ours as ratios.

    TIKTALK_BENCH_QUICK=1 .venv/bin/pytest benchmarks/bench_train_step.py --benchmark-enable -m ""
    (or: tiktalk bench train [--quick]); results in $TIKTALK_BENCH_OUT (default benchmarks/results/)
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch

from benchmarks.common import (
    bench_threads,
    best_time,
    cjk_text,
    device_sync,
    is_quick,
    maria_backbone,
    pyplot,
    save_plot,
    write_result,
)
from fusion.modeling_maria import MariaForDialogue
from kg.linearize import PIECE_SEP
from tiktalk.models.modalities import parse_modalities
from tiktalk.types import DialogueExample

QUICK = is_quick()
BACKBONE = maria_backbone(QUICK)
BATCH = 8 if QUICK else 16
STEPS = 3 if QUICK else 8
BURN_IN = 1 if QUICK else 2
SEED = 0
THREADS = bench_threads()
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
PAPER_MINUTES = {"T": 10.0, "T+I": 17.5, "T+I+A": 24.0, "T+I+K": 30.0, "T+I+A+K": 37.0}
ROWS = ["T", "T+I", "T+I+A", "T+I+K", "T+I+A+K", "T+A", "T+K"]
STEP_S: dict[str, float] = {}
COLLATE_S: dict[str, float] = {}
SEQ_LEN: dict[str, int] = {}


def synthetic_examples(n: int, seed: int) -> list[DialogueExample]:
    rng = np.random.default_rng(seed)

    def text(k: int) -> str:
        return cjk_text(rng, k)

    return [
        DialogueExample(
            dialogue_id=f"t{i}",
            context=[text(int(rng.integers(10, 23))) for _ in range(2)],
            response=text(int(rng.integers(10, 23))),
            frames=rng.normal(size=(50, 2048)).astype(np.float32),
            audio=rng.normal(size=(35, 128)).astype(np.float32),
            knowledge=PIECE_SEP.join(text(9) for _ in range(20)),  # whole pieces fill the budget
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def examples():
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield synthetic_examples(BATCH, SEED)
    _write_results()
    torch.set_num_threads(previous_threads)


_sync = device_sync(DEVICE)


@pytest.mark.parametrize("row", ROWS)
def test_train_step(benchmark, examples, row):
    torch.manual_seed(SEED)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities(row), backbone=BACKBONE).to(DEVICE).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, eps=1e-8, weight_decay=0.05)
    generator = torch.Generator().manual_seed(SEED)

    def collate():
        return model.collate(examples, train=True, generator=generator)

    def step(batch):
        batch = {k: v.to(DEVICE) for k, v in batch.items()}
        output = model(**batch)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return output

    batch = collate()
    SEQ_LEN[row] = int(batch["attention_mask"].shape[1])
    for _ in range(BURN_IN):
        output = step(batch)
    assert torch.isfinite(output.loss)
    assert (output.loss_mkp is not None) == ("K" in row)
    collate_times, step_times = [], []
    for _ in range(STEPS):
        seconds, batch = best_time(collate)
        collate_times.append(seconds)
        step_times.append(best_time(lambda b=batch: step(b), sync=_sync)[0])
    COLLATE_S[row] = statistics.median(collate_times)
    STEP_S[row] = statistics.median(step_times)
    benchmark.pedantic(lambda: step(batch), rounds=1, iterations=1)
    print(f"{row}: L={SEQ_LEN[row]} step {STEP_S[row] * 1000:.1f} ms, collate {COLLATE_S[row] * 1000:.1f} ms "
          f"({100 * COLLATE_S[row] / (COLLATE_S[row] + STEP_S[row]):.1f}% of step)")


def _write_results() -> None:
    if "T" not in STEP_S:
        return
    plt = pyplot()
    rows = [r for r in ROWS if r in STEP_S]
    step_ratio = {r: STEP_S[r] / STEP_S["T"] for r in rows}
    collate_share = {r: COLLATE_S[r] / (COLLATE_S[r] + STEP_S[r]) for r in rows}
    paper_ratio = {r: PAPER_MINUTES[r] / PAPER_MINUTES["T"] for r in PAPER_MINUTES}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(rows))
    ax1.bar(x - 0.2, [step_ratio[r] for r in rows], 0.4, label="ours (tiny, one step)")
    ax1.bar(x + 0.2, [paper_ratio.get(r, np.nan) for r in rows], 0.4, label="paper Table 7 (min/epoch)")
    ax1.set_xticks(x, rows, rotation=30)
    ax1.set_ylabel("time relative to T")
    ax1.legend()
    ax1.set_title("training step per Table 7 row")
    ax2.bar(x, [100 * collate_share[r] for r in rows], color="tab:green")
    ax2.axhline(5, color="gray", linestyle="--", linewidth=1)
    ax2.set_xticks(x, rows, rotation=30)
    ax2.set_ylabel("collate, % of collate + step")
    ax2.set_title("data pipeline share (goal < 5%)")
    png = save_plot(fig, "train_step.png")
    ratios = {f"step_ratio_{r}": v for r, v in step_ratio.items()}
    ratios.update({f"collate_share_{r}": v for r, v in collate_share.items()})
    data = {"backbone": BACKBONE, "batch": BATCH, "steps": STEPS, "device": str(DEVICE), "seed": SEED,
            "torch_threads": THREADS, "sequence_length": SEQ_LEN,
            "step_ms": {r: round(1000 * STEP_S[r], 2) for r in rows},
            "collate_ms": {r: round(1000 * COLLATE_S[r], 2) for r in rows},
            "paper_table7_ratio": paper_ratio}
    write_result("train", ratios, data, [png])
