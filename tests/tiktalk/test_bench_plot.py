"""The bench's latency/recall plot reads: plain-millisecond log labels that do not overlap, recall on 0-1."""

from __future__ import annotations

from itertools import pairwise


def test_latency_plot_axes_are_readable() -> None:
    from benchmarks.bench_retrieval import latency_figure

    latency = {"n": 20_000, "d": 384, "search": {  # a near-1 recall cluster over less than two decades
        "Flat": {"p50_ms": 1.9, "recall_at_10": 1.0}, "HNSW32": {"p50_ms": 0.12, "recall_at_10": 0.99},
        "IVF256,Flat": {"p50_ms": 0.35, "recall_at_10": 0.98}, "IVF256,PQ48": {"p50_ms": 0.21, "recall_at_10": 0.97}}}
    fig = latency_figure(latency)
    ax = fig.axes[0]
    assert ax.get_ylim() == (0, 1.05) and ax.get_xscale() == "log"
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lo, hi = ax.get_xlim()
    labels = [t for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
    texts = [t.get_text() for t in labels]
    assert len(texts) >= 3 and all("$" not in t for t in texts), texts  # plain numbers, not 10^x mathtext
    assert {"0.1", "0.2", "0.5", "1", "2"} <= set(texts), texts
    assert not any(t.get_text() for t in ax.get_xticklabels(minor=True))
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in pairwise(boxes)), texts  # no two labels overlap
    import matplotlib.pyplot as plt

    plt.close(fig)
