"""Bar plots of the analyses as PNG bytes (the caller writes them atomically)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence


def bar_plot_png(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
                 paper: Sequence[float] | None = None) -> bytes:
    """A bar per label (and, given ``paper``, the paper's value beside it), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(labels))
    width = 0.4 if paper is not None else 0.7
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(labels) + 1.5), 3.5))
    try:
        ax.bar(x - (width / 2 if paper is not None else 0), values, width, label="this corpus")
        if paper is not None:
            ax.bar(x + width / 2, paper, width, label="paper")
            ax.legend()
        ax.set_xticks(x, list(labels), rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.tight_layout()
        buf = io.BytesIO()
        with warnings.catch_warnings():  # CJK topic names lack glyphs in matplotlib's default font
            warnings.simplefilter("ignore", UserWarning)
            fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return buf.getvalue()
