"""Response scoring, one loop for every model: ``ChatModel.score`` -> :func:`score_in_batches`.

A model supplies only how one batch is scored (``score_batch``); batching, eval mode,
no gradients and restoring the train/eval mode are done here. :func:`labelled_nll` turns
logits and labels into the per-example (summed NLL in nats, tokens scored) pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from tiktalk.errors import UsageError
from tiktalk.types import DialogueExample

IGNORE_INDEX = -100  # label value that cross-entropy skips (prompt, padding)

ScoreBatch = Callable[[Sequence[DialogueExample]], list[tuple[float, int]]]


def require_responses(examples: Sequence[DialogueExample], why: str = "training") -> None:
    for ex in examples:
        if ex.response is None:
            raise UsageError(f"example {ex.dialogue_id!r}: response is None (needed for {why})")


def score_in_batches(model: torch.nn.Module, examples: Sequence[DialogueExample], batch_size: int,
                     score_batch: ScoreBatch) -> list[tuple[float, int]]:
    """Per example (summed NLL of its response in nats, tokens scored), from ``score_batch`` over
    chunks of ``batch_size`` examples, in eval mode without gradients; the model's train/eval
    mode is restored after."""
    require_responses(examples, "scoring")
    was_training = model.training
    model.eval()
    out: list[tuple[float, int]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                out += score_batch(examples[start : start + batch_size])
    finally:
        model.train(was_training)
    return out


def labelled_nll(logits: torch.Tensor, labels: torch.Tensor, *, shift: bool = True) -> list[tuple[float, int]]:
    """Per row: (summed NLL in nats of the labelled tokens, their count). logits (B, T, V),
    labels (B, T), -100 where not scored (prompt, padding). ``shift``: logits at t predict
    the token at t + 1 (a decoder-only LM); otherwise logits and labels are aligned (an
    encoder-decoder's decoder, as Livebot's)."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels,
                                            ignore_index=IGNORE_INDEX, reduction="none")  # (B, T')
    counts = (labels != IGNORE_INDEX).sum(1)
    return [(float(total), int(n)) for total, n in zip(nll.double().sum(1), counts)]
