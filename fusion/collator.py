"""Maria's sequence building and masking, as pure functions (SPEC section 3).

One example becomes (response budget R = ``config.response_budget``)::

    slots 0..R-1      [CLS] r1 .. rn [SEP] [PAD] ..     segment 0 (response), positions 0..R-1
    then              u1 [SEP] u2 [SEP] ..              segment 1 (context),  positions R, R+1, ..
    then              knowledge [SEP]                   segment 2 (knowledge), positions continue
    [PAD] up to the batch's longest text
    then frames       (F rows, zero-padded)              segment 3 (vision)
    then audio        (A rows, zero-padded)              segment 4 (audio)

The response segment always has R slots, so a source token's position never depends on
the response: the decoder can compute the source once. The knowledge segment is the text
``kg.linearize`` cut to :func:`knowledge_budget` (``MariaForDialogue.knowledge_budget()``),
taken whole; the collator never cuts a piece (see :func:`encode_knowledge`).
``segment_ids`` (-1 = padding) drive the attention mask and the masking objectives.

Randomness only comes from the ``generator`` argument (a ``torch.Generator``), drawn in a
fixed order, so a seeded generator gives the same batch every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fusion.configuration_maria import (
    AUDIO,
    CONTEXT,
    KNOWLEDGE,
    PAD_SEGMENT,
    RESPONSE,
    VISION,
    MariaConfig,
)
from kg.linearize import fit_knowledge
from tiktalk.errors import UsageError
from tiktalk.models.tokenization import TextEncoder
from tiktalk.types import DialogueExample, KnowledgeBudget

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    cls: int
    sep: int
    mask: int
    vocab_size: int
    first_regular: int  # random replacement tokens are drawn from [first_regular, vocab_size)

    @classmethod
    def from_encoder(cls, encoder: TextEncoder) -> SpecialIds:
        v = encoder.vocab
        specials = [i for t, i in v.items() if t.startswith("[") and t.endswith("]")]
        return cls(
            pad=v["[PAD]"],
            cls=v["[CLS]"],
            sep=v["[SEP]"],
            mask=v["[MASK]"],
            vocab_size=max(v.values()) + 1,
            first_regular=max(specials) + 1,
        )


@dataclass
class EncodedExample:
    """Token ids per segment after truncation; features subsampled to the budgets."""

    response: list[int] | None  # without [CLS]/[SEP]
    context: list[int]  # turns joined by [SEP], ending with [SEP]
    knowledge: list[int]  # ending with [SEP]
    frames: np.ndarray | None  # (F, frame_dim) float32
    audio: np.ndarray | None  # (A, audio_dim) float32


def knowledge_budget(encoder: TextEncoder, config: MariaConfig) -> KnowledgeBudget:
    """Maria's knowledge budget: ``config.knowledge_tokens`` tokens as ``encoder`` counts them."""
    return KnowledgeBudget(config.knowledge_tokens, lambda text: len(encoder.encode(text)), encoder.fingerprint)


def encode_knowledge(text: str, encoder: TextEncoder, config: MariaConfig) -> list[int]:
    """Knowledge ids (no [SEP]) within ``config.knowledge_tokens``: a segment linearised for
    this budget as it is; a longer one (made under another budget) loses whole trailing
    pieces (``kg.fit_knowledge``), never part of one."""
    ids = encoder.encode(text)
    if len(ids) <= config.knowledge_tokens:
        return ids
    return encoder.encode(fit_knowledge(text, knowledge_budget(encoder, config)))


def uniform_subsample(features: np.ndarray, max_rows: int) -> np.ndarray:
    """At most ``max_rows`` rows, evenly spread over the sequence (first and last kept)."""
    n = features.shape[0]
    if n <= max_rows:
        return features
    index = np.linspace(0, n - 1, max_rows).round().astype(np.int64)
    return features[index]


def _check_features(array, dim: int, name: str, example: DialogueExample) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if name == "frames" and array.ndim == 3 and array.shape[2] == dim:
        array = array.mean(axis=1)  # token grids (n, tokens, dim): Maria reads one pooled vector per frame
    if array.ndim != 2 or array.shape[1] != dim:
        raise UsageError(
            f"example {example.dialogue_id!r}: {name} has shape {array.shape}, expected (n, {dim})"
        )
    return array


def encode_example(
    example: DialogueExample, encoder: TextEncoder, config: MariaConfig, special: SpecialIds
) -> EncodedExample:
    """Characters -> ids within the budgets: knowledge whole pieces (see :func:`encode_knowledge`),
    the context its latest tokens, the response its first ones."""
    response = None
    if example.response is not None:
        response = encoder.encode(example.response)[: config.response_budget - 2]
    context: list[int] = []
    if config.has("text"):
        for turn in example.context:
            context += encoder.encode(turn) + [special.sep]
    knowledge: list[int] = []
    if config.has("knowledge") and example.knowledge:
        knowledge = encode_knowledge(example.knowledge, encoder, config)
        knowledge += [special.sep] if knowledge else []
    # the context gets what the knowledge leaves; the most recent turns matter most
    keep_context = min(len(context), config.source_text_budget - len(knowledge))
    context = context[len(context) - keep_context :]
    frames = audio = None
    if config.has("vision") and example.frames is not None:
        frames = uniform_subsample(_check_features(example.frames, config.frame_dim, "frames", example), config.max_frames)
    if config.has("audio") and example.audio is not None:
        audio = uniform_subsample(_check_features(example.audio, config.audio_dim, "audio", example), config.max_audio_frames)
    return EncodedExample(response=response, context=context, knowledge=knowledge, frames=frames, audio=audio)


def build_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """UniLM seq2seq mask from segment ids: (B, L) -> (B, L, L) bool, True = row may attend to column.

    Response rows (segment 0) see earlier-or-same response positions and every non-response
    row; non-response rows see every non-response row and no response row; padding (-1)
    rows and columns are all False. Response positions must precede nothing they may not see:
    causality is by index within the sequence.
    """
    valid = segment_ids >= 0  # (B, L)
    is_response = segment_ids == RESPONSE  # (B, L)
    index = torch.arange(segment_ids.shape[1], device=segment_ids.device)
    not_after = index[:, None] >= index[None, :]  # (L, L): column j <= row i
    visible_column = ~is_response[:, None, :] | (is_response[:, :, None] & not_after[None])
    return valid[:, :, None] & valid[:, None, :] & visible_column


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, Lq, Lk) bool/0-1 -> (B, 1, Lq, Lk) additive float mask (0 or dtype's min).

    Padding rows (all 0) are allowed to see themselves: a fully masked row would give NaN
    under fp16/bf16 autocast (the minimum becomes -inf), and a NaN padding row would then
    poison every row through its keys. Valid rows are unchanged (they already see themselves).
    """
    allowed = attention_mask.bool()
    if allowed.shape[-1] == allowed.shape[-2]:
        allowed = allowed | torch.eye(allowed.shape[-1], dtype=torch.bool, device=allowed.device)
    return torch.zeros(allowed[:, None].shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed[:, None], torch.finfo(dtype).min
    )


def choose_positions(
    candidates: torch.Tensor, prob: float, at_least_one: bool, generator: torch.Generator | None,
    count_extra: int = 0,
) -> torch.Tensor:
    """round(prob * (n + count_extra)) random candidates per row, at most n, >= 1 if asked
    and n > 0; ``round`` halves to even, as Python's (Maria's). (B, L) bool -> (B, L) bool."""
    n = candidates.sum(dim=1)  # (B,)
    k = torch.minimum(torch.round(prob * (n + count_extra).double()).long(), n)
    if at_least_one:
        k = torch.where(n > 0, k.clamp(min=1), k)
    scores = torch.rand(candidates.shape, generator=generator)
    scores = scores.masked_fill(~candidates, 2.0)  # non-candidates sort last
    rank = scores.argsort(dim=1).argsort(dim=1)  # (B, L): rank of each position in its row
    return candidates & (rank < k[:, None])


def apply_masking(
    input_ids: torch.Tensor,
    objectives: dict[str, tuple[torch.Tensor, float, bool]],
    config: MariaConfig,
    special: SpecialIds,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Choose positions per objective, corrupt them 80/10/10, return (inputs, labels, chosen masks).

    ``objectives``: name -> (candidates (B, L) bool, probability, at_least_one, count_extra).
    """
    chosen = {
        name: choose_positions(candidates, prob, at_least_one, generator, count_extra)
        for name, (candidates, prob, at_least_one, count_extra) in objectives.items()
    }
    any_chosen = torch.zeros_like(input_ids, dtype=torch.bool)
    for mask in chosen.values():
        any_chosen |= mask
    labels = torch.where(any_chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    draw = torch.rand(input_ids.shape, generator=generator)  # (B, L): which corruption
    random_tokens = torch.randint(special.first_regular, special.vocab_size, input_ids.shape, generator=generator)
    to_mask = any_chosen & (draw < config.mask_token_prob)
    to_random = any_chosen & (draw >= config.mask_token_prob) & (draw < config.mask_token_prob + config.random_token_prob)
    corrupted = input_ids.masked_fill(to_mask, special.mask)
    corrupted = torch.where(to_random, random_tokens, corrupted)
    return corrupted, labels, chosen


def build_batch(
    encoded: Sequence[EncodedExample],
    config: MariaConfig,
    special: SpecialIds,
    include_response: bool = True,
    train: bool = False,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Encoded examples -> Maria's batch tensors.

    Returns (L_t text length, F frames, A audio rows, L = L_t + F + A):
      input_ids, token_type_ids, position_ids: (B, L_t) long
      segment_ids: (B, L) long, -1 on padding
      attention_mask: (B, L, L) bool
      frames (B, F, frame_dim) float32 + frame_mask (B, F) bool      [vision]
      audio (B, A, audio_dim) float32 + audio_mask (B, A) bool      [audio]
      train=True: labels (B, L_t) (-100 where not predicted) and mrp_mask / mcp_mask /
      mkp_mask (B, L_t) bool, input_ids corrupted.
    ``include_response=False`` drops the response segment (the decoder's source batch);
    source positions still start at ``response_budget``.
    """
    if not encoded:
        raise UsageError("cannot build a batch from zero examples")
    if train and not include_response:
        raise UsageError("train=True needs the response segment (include_response=True)")
    batch_size = len(encoded)
    R = config.response_budget if include_response else 0
    source_lengths = [len(e.context) + len(e.knowledge) for e in encoded]
    text_len = R + max(source_lengths)
    # Filled in numpy (slice assignment is ~10x cheaper than torch's on small pieces), then wrapped.
    input_ids_np = np.full((batch_size, text_len), special.pad, dtype=np.int64)
    segments_np = np.full((batch_size, text_len), PAD_SEGMENT, dtype=np.int64)
    positions_np = np.zeros((batch_size, text_len), dtype=np.int64)
    arange = np.arange(max(text_len, config.response_budget) + config.response_budget, dtype=np.int64)
    for b, example in enumerate(encoded):
        if include_response:
            if example.response is None:
                raise UsageError(f"example {b} has no response; build it with include_response=False")
            n = len(example.response) + 2
            input_ids_np[b, 0] = special.cls
            input_ids_np[b, 1 : n - 1] = example.response
            input_ids_np[b, n - 1] = special.sep
            segments_np[b, :n] = RESPONSE
            positions_np[b, :n] = arange[:n]
        n_context, n_source = len(example.context), len(example.context) + len(example.knowledge)
        if n_source:
            input_ids_np[b, R : R + n_context] = example.context
            input_ids_np[b, R + n_context : R + n_source] = example.knowledge
            segments_np[b, R : R + n_context] = CONTEXT
            segments_np[b, R + n_context : R + n_source] = KNOWLEDGE
            positions_np[b, R : R + n_source] = arange[config.response_budget : config.response_budget + n_source]
    input_ids = torch.from_numpy(input_ids_np)
    text_segments = torch.from_numpy(segments_np)
    position_ids = torch.from_numpy(positions_np)
    token_type_ids = text_segments.clamp(min=0)
    batch: dict[str, torch.Tensor] = {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "position_ids": position_ids,
    }
    segment_parts = [text_segments]
    for modality, key, mask_key, dim, segment in (
        ("vision", "frames", "frame_mask", config.frame_dim, VISION),
        ("audio", "audio", "audio_mask", config.audio_dim, AUDIO),
    ):
        if not config.has(modality):
            continue
        rows = [getattr(e, key) for e in encoded]
        n_rows = max((r.shape[0] for r in rows if r is not None), default=0)
        features_np = np.zeros((batch_size, n_rows, dim), dtype=np.float32)
        row_mask_np = np.zeros((batch_size, n_rows), dtype=bool)
        for b, r in enumerate(rows):
            if r is not None and r.shape[0]:
                features_np[b, : r.shape[0]] = r
                row_mask_np[b, : r.shape[0]] = True
        features, row_mask = torch.from_numpy(features_np), torch.from_numpy(row_mask_np)
        batch[key] = features
        batch[mask_key] = row_mask
        segment_parts.append(torch.where(row_mask, segment, PAD_SEGMENT))
    segment_ids = torch.cat(segment_parts, dim=1)
    batch["segment_ids"] = segment_ids
    batch["attention_mask"] = build_attention_mask(segment_ids)
    if train:
        is_context = text_segments == CONTEXT
        next_is_context = torch.cat([is_context[:, 1:], torch.zeros_like(is_context[:, :1])], dim=1)
        closes_context = is_context & ~next_is_context  # the context's last token: its closing [SEP]
        objectives = {
            # As Maria (run_dialog_generate.py, tensorize_example): the response's count is
            # round(0.7 * (n + 2)) over its n + 1 candidates ([SEP] maskable, [CLS] never), and the
            # context's every token but the closing [SEP] is a candidate, the [SEP]s between
            # turns included; every part gets at least one. Knowledge (ours) follows the context.
            "mrp": ((text_segments == RESPONSE) & (input_ids != special.cls), config.mrp_prob, True, 1),
            "mcp": (is_context & ~closes_context, config.mcp_prob, True, 0),
            "mkp": ((text_segments == KNOWLEDGE) & (input_ids != special.sep), config.mkp_prob, True, 0),
        }
        corrupted, labels, chosen = apply_masking(input_ids, objectives, config, special, generator)
        batch["input_ids"] = corrupted
        batch["labels"] = labels
        for name, mask in chosen.items():
            batch[f"{name}_mask"] = mask
    return batch


def collate_examples(
    examples: Sequence[DialogueExample],
    encoder: TextEncoder,
    config: MariaConfig,
    train: bool = True,
    generator: torch.Generator | None = None,
    include_response: bool = True,
    special: SpecialIds | None = None,
) -> dict[str, torch.Tensor]:
    """DialogueExample list -> batch (see :func:`build_batch`). train=True needs responses;
    with train=False the response segment is kept only if every example has a response."""
    special = special if special is not None else SpecialIds.from_encoder(encoder)
    encoded = [encode_example(e, encoder, config, special) for e in examples]
    if train:
        for example, enc in zip(examples, encoded):
            if enc.response is None:
                raise UsageError(f"example {example.dialogue_id!r} has no response to train on")
    if include_response and any(e.response is None for e in encoded):
        include_response = False
    return build_batch(encoded, config, special, include_response=include_response, train=train, generator=generator)
