"""The order of training data, a pure function of (seed, epoch), and the examples' features.

Data order: a seeded permutation per epoch, split over ranks like ``DistributedSampler``
(padded cyclically to a multiple of the world size), cut into micro-batches; each micro-batch
is collated with a generator seeded from (seed, epoch, micro-batch, rank), so a batch is
reproducible in any process (see :mod:`tiktalk.models.trainer`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tiktalk.errors import MissingInputError
from tiktalk.models.base import ChatModel
from tiktalk.models.modalities import FEATURE_FIELDS
from tiktalk.models.train_config import TrainConfig
from tiktalk.types import DialogueExample


def epoch_permutation(n_examples: int, seed: int, epoch: int) -> np.ndarray:
    """(n_examples,) int64: the example order of one epoch, a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n_examples)


def rank_micro_batches(
    n_examples: int, seed: int, epoch: int, batch_size: int, rank: int, world_size: int
) -> list[np.ndarray]:
    """This rank's micro-batches (index arrays) of one epoch.

    Like ``DistributedSampler(drop_last=False)``: the permutation is padded cyclically to
    a multiple of the world size, rank r takes every world_size-th index from r; every
    rank thus gets the same number of micro-batches (the last one may be short).
    """
    order = epoch_permutation(n_examples, seed, epoch)
    per_rank = math.ceil(n_examples / world_size)
    padded = np.resize(order, per_rank * world_size)  # np.resize repeats cyclically
    shard = padded[rank::world_size]
    return [shard[i : i + batch_size] for i in range(0, len(shard), batch_size)]


def micro_batches_per_epoch(n_examples: int, batch_size: int, world_size: int) -> int:
    return math.ceil(math.ceil(n_examples / world_size) / batch_size)


def steps_per_epoch(n_examples: int, batch_size: int, world_size: int, grad_accum_steps: int) -> int:
    return math.ceil(micro_batches_per_epoch(n_examples, batch_size, world_size) / grad_accum_steps)


def total_steps(config: TrainConfig, n_examples: int, world_size: int) -> int:
    """Optimizer steps of a run: ``max_steps``, else ``epochs`` passes (accumulation as
    :meth:`TrainConfig.accumulation_steps` resolves it)."""
    if config.max_steps is not None:
        return config.max_steps
    accumulation = config.accumulation_steps(world_size)
    return config.epochs * steps_per_epoch(n_examples, config.batch_size, world_size, accumulation)


def collate_seed(seed: int, epoch: int, micro_index: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, micro_index, rank]).generate_state(1)[0])


class MicroBatches(torch.utils.data.Dataset):
    """Micro-batches of one epoch from ``start`` on; items are (seed, indices)."""

    def __init__(self, batches: list[np.ndarray], start: int, seed: int, epoch: int, rank: int):
        self.items = [
            (collate_seed(seed, epoch, start + i, rank), batch) for i, batch in enumerate(batches[start:])
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


class SeededCollate:
    """(seed, indices) -> (n examples, batch dict); picklable for DataLoader workers.

    ``collate`` gets a fresh CPU generator seeded for this micro-batch: its masking is a pure
    function of the seed, and the global generators (dropout) are left alone.
    """

    def __init__(self, model: ChatModel, examples: Sequence[DialogueExample]):
        self.model = model
        self.examples = examples

    def __call__(self, item):
        seed, indices = item
        chosen = [self.examples[int(i)] for i in indices]
        return len(indices), self.model.collate(chosen, train=True, generator=torch.Generator().manual_seed(seed))


def _has_features(example: DialogueExample, modality: str) -> bool:
    value = getattr(example, FEATURE_FIELDS[modality])
    return value is not None and len(value) > 0


def check_features(
    model_name: str,
    examples: Sequence[DialogueExample],
    modalities: Sequence[str],
    *,
    allow_missing: bool = False,
    sources: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Fraction of ``examples`` that carry features, per feature modality the model reads.

    An example without them would silently train as text-only, so a modality some examples
    lack is an error naming ``sources[modality]`` (where the features were looked for) and
    how many examples and videos lack them, unless ``allow_missing``: then those examples
    get the model's zero-filled feature rows, and the fractions are recorded in run.json.
    """
    present: dict[str, float] = {}
    problems = []
    videos = {ex.video_id for ex in examples if ex.video_id is not None}
    for modality in modalities:
        lacking = [ex for ex in examples if not _has_features(ex, modality)]
        present[modality] = 1 - len(lacking) / len(examples)
        if lacking:
            lacking_videos = {ex.video_id for ex in lacking if ex.video_id is not None}
            of_videos = f" ({len(lacking_videos)} of {len(videos)} videos)" if videos else ""
            where = f" in {sources[modality]}" if sources and modality in sources else ""
            problems.append(
                f"{len(lacking)} of {len(examples)} training examples{of_videos} "
                f"have no {FEATURE_FIELDS[modality]} features{where}"
            )
    if problems and not allow_missing:
        raise MissingInputError(
            f"{model_name} reads {'+'.join(modalities)} features, but " + "; ".join(problems)
            + "; extract them (`tiktalk features extract`) or allow missing features "
            "(--allow-missing-features) to train with zero-filled rows"
        )
    return present


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
