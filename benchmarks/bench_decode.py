"""Maria decoding: cached (source keys/values computed once) vs full recomputation (Maria's way).

A random "tiny-ish" Maria T+I+A+K (hidden 128, 4 layers; quick: hidden 64, 2 layers) with
the paper's full budgets (180 text tokens, 50 frames, 50 audio rows), synthetic seeded
inputs. ``min_length = max_length - 2`` bans the end tokens, so every response reaches the cap
of ``max_length - 2`` tokens (greedy runs that many steps, beam search one more, as Maria's);
``max_length`` counts [CLS] as Maria's ``max_gen_length`` does.
For each (max_length 20 / 40, beam 1 / 5): the reference runs first, the cached decoder
must produce the same tokens, then both are timed (best of a few rounds) and the speedup
``t_full / t_cached`` is reported.

    TIKTALK_BENCH_QUICK=1 .venv/bin/pytest benchmarks/bench_decode.py --benchmark-enable -m ""
    (or: tiktalk bench decode [--quick]); results in $TIKTALK_BENCH_OUT (default benchmarks/results/)
"""

from __future__ import annotations

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
from fusion.generation import decode_batch
from fusion.modeling_maria import MariaForDialogue
from kg.linearize import PIECE_SEP
from tiktalk.models.generation import GenerationConfig
from tiktalk.models.modalities import parse_modalities
from tiktalk.types import DialogueExample

QUICK = is_quick()
BACKBONE = maria_backbone(QUICK)
BATCH = 2 if QUICK else 4
ROUNDS = 1 if QUICK else 2
LENGTHS = (20, 40)
BEAMS = (1, 5)
SEED = 0
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
THREADS = bench_threads()
RESULTS: dict[str, dict[str, float]] = {}


def synthetic_examples(n: int, seed: int) -> list[DialogueExample]:
    """Full-budget inputs: ~3 turns of context, long knowledge, 50 frames, 50 audio rows."""
    rng = np.random.default_rng(seed)

    def text(k: int) -> str:
        return cjk_text(rng, k)

    return [
        DialogueExample(
            dialogue_id=f"b{i}",
            context=[text(int(rng.integers(10, 25))) for _ in range(3)],
            frames=rng.normal(size=(50, 2048)).astype(np.float32),
            audio=rng.normal(size=(50, 128)).astype(np.float32),
            knowledge=PIECE_SEP.join(text(9) for _ in range(15)),  # whole pieces fill the budget
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def setup():
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    model = MariaForDialogue.from_preset("tiny", modalities=parse_modalities("T+I+A+K"), backbone=BACKBONE).to(DEVICE).eval()
    source = model.collate(synthetic_examples(BATCH, SEED), train=False, include_response=False)
    yield model, source
    _write_results()
    torch.set_num_threads(previous_threads)


_sync = device_sync(DEVICE)


@pytest.mark.parametrize("num_beams", BEAMS)
@pytest.mark.parametrize("max_length", LENGTHS)
def test_cached_vs_full_decoding(benchmark, setup, max_length, num_beams):
    model, source = setup
    config = GenerationConfig(num_beams=num_beams, max_length=max_length, min_length=max_length - 2,
                              batch_size=BATCH)
    full_config = GenerationConfig(**{**config.__dict__, "use_cache": False})
    decode_batch(model, source, GenerationConfig(**{**config.__dict__, "max_length": 4, "min_length": 2}))  # burn-in
    t_full, reference = best_time(lambda: decode_batch(model, source, full_config), ROUNDS, _sync)
    t_cached, cached = best_time(lambda: decode_batch(model, source, config), ROUNDS, _sync)
    assert cached == reference  # same tokens, or the speedup means nothing
    assert all(len(seq) == max_length - 2 for seq in cached)
    benchmark.pedantic(lambda: decode_batch(model, source, config), rounds=1, iterations=1)
    RESULTS[f"len{max_length}_beam{num_beams}"] = {
        "max_length": max_length, "num_beams": num_beams, "full_s": t_full, "cached_s": t_cached,
        "speedup": t_full / t_cached,
    }
    print(f"max_length {max_length} beam {num_beams}: full {t_full:.3f}s cached {t_cached:.3f}s "
          f"speedup {t_full / t_cached:.2f}x")


def _write_results() -> None:
    if not RESULTS:
        return
    plt = pyplot()
    keys = sorted(RESULTS, key=lambda k: (RESULTS[k]["max_length"], RESULTS[k]["num_beams"]))
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    full = [1000 * RESULTS[k]["full_s"] / BATCH for k in keys]
    cached = [1000 * RESULTS[k]["cached_s"] / BATCH for k in keys]
    ax.bar(x - 0.2, full, 0.4, label="full recompute (Maria)")
    ax.bar(x + 0.2, cached, 0.4, label="cached source K/V")
    for i, k in enumerate(keys):
        ax.text(x[i], max(full[i], cached[i]), f"{RESULTS[k]['speedup']:.1f}x", ha="center", va="bottom")
    ax.set_xticks(x, [f"len {RESULTS[k]['max_length']}\nbeam {RESULTS[k]['num_beams']}" for k in keys])
    ax.set_ylabel("ms per example")
    ax.set_title(f"Maria decoding, T+I+A+K, hidden {BACKBONE['hidden_size']} x {BACKBONE['num_hidden_layers']} "
                 f"layers, {DEVICE.type}")
    ax.legend()
    png = save_plot(fig, "decode_speedup.png")
    ratios = {f"decode_speedup_{k}": v["speedup"] for k, v in RESULTS.items()}
    data = {"backbone": BACKBONE, "batch": BATCH, "rounds": ROUNDS, "device": str(DEVICE), "seed": SEED,
            "torch_threads": THREADS,
            "budgets": {"text": 180, "response": 40, "frames": 50, "audio": 50},
            "runs": {k: {kk: round(vv, 5) if isinstance(vv, float) else vv for kk, vv in v.items()}
                     for k, v in RESULTS.items()}}
    write_result("decode", ratios, data, [png])
