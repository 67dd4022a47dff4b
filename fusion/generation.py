"""Maria decoding: greedy and beam search over a step scorer, with and without a cache.

Maria's decoding (SPEC section 3): the response starts as ``[CLS]``; each step feeds
``[CLS] y1 .. yt [MASK]`` followed by the source (context, knowledge, frames, audio) and
reads the prediction at ``[MASK]``; ``[SEP]`` ends the response.

Two scorers give the logits at ``[MASK]``; the search code is shared:

* :class:`FullRecomputeScorer` (the reference, what Maria does): rebuilds the whole
  sequence every step and runs the model's training forward path on it.
* :class:`CachedScorer` (UniLM's decoder): the source never attends to the response, so
  its per-layer keys/values are computed once (per example, shared by its beams). Each
  step runs only two new rows: the last real token (its keys/values are written into a
  preallocated per-beam response cache) and the ``[MASK]`` slot (attends to everything,
  never cached: next step's real token overwrites its place). Attention over the source is
  one batched matmul per layer against the per-example cache, so beams never copy it.

Lengths follow Maria/Oscar's ``max_gen_length``: ``max_length`` counts the ``[CLS]``, so
40 means at most 39 generated tokens including ``[SEP]``, and the last ``[MASK]`` sits at
position 39, the end of a 40-slot response segment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from fusion.collator import build_attention_mask
from fusion.configuration_maria import RESPONSE
from fusion.modeling_maria import additive_mask

if TYPE_CHECKING:
    from fusion.modeling_maria import MariaForDialogue
    from tiktalk.types import DialogueExample


@dataclass
class GenerationConfig:
    """Decoding options (defaults: Maria's)."""

    num_beams: int = 5
    """Beam size; 1 means greedy search."""
    max_length: int = 40
    """Response length cap counting [CLS] (Maria's max_gen_length): <= max_length - 1
    generated tokens including [SEP]. Must not exceed the model's response_budget."""
    min_length: int = 1
    """[SEP] is forbidden until this many tokens were generated."""
    repetition_penalty: float = 3.0
    """CTRL-style: logits of already generated tokens are divided by it (multiplied when negative)."""
    length_penalty: float = 0.3
    """Beam hypotheses are ranked by sum log-prob / (generated length ** length_penalty)."""
    no_repeat_ngram_size: int = 0
    """Forbid repeating any n-gram of this size (0 = off)."""
    use_cache: bool = True
    """Cached decoding (source computed once) instead of full recomputation."""
    batch_size: int = 32
    """Examples decoded together."""

    def __post_init__(self) -> None:
        for name in ("num_beams", "max_length", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GenerationConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_length < 2:
            raise ValueError(f"GenerationConfig.max_length ({self.max_length}) must leave room for one token after [CLS]")
        if not 0 <= self.min_length < self.max_length:
            raise ValueError(
                f"GenerationConfig.min_length ({self.min_length}) must be in [0, max_length={self.max_length})"
            )
        if self.repetition_penalty <= 0:
            raise ValueError(f"GenerationConfig.repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"GenerationConfig.no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size!r}")


class StepScorer(Protocol):
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (N, t+1) = [CLS] y1..yt per beam -> logits (N, V) at the next [MASK]."""

    def reorder(self, beam_index: torch.Tensor) -> None:
        """Beams were re-chosen: row i now continues former row beam_index[i] (N,)."""


def _expand(tensor: torch.Tensor, repeats: int) -> torch.Tensor:
    return tensor.repeat_interleave(repeats, dim=0) if repeats > 1 else tensor


class FullRecomputeScorer:
    """Reference: the whole [response + MASK + source] sequence through the model every step."""

    def __init__(self, model: MariaForDialogue, source: dict[str, torch.Tensor], num_beams: int):
        self.model = model
        self.mask_id = model.special_ids.mask
        self.source = {k: _expand(v, num_beams) for k, v in source.items()}

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        n_beams, n = tokens.shape
        src = self.source
        device = tokens.device
        response = torch.cat([tokens, tokens.new_full((n_beams, 1), self.mask_id)], dim=1)  # (N, n+1)
        positions = torch.arange(n + 1, device=device).expand(n_beams, -1)
        input_ids = torch.cat([response, src["input_ids"]], dim=1)
        token_type_ids = torch.cat([torch.zeros_like(response), src["token_type_ids"]], dim=1)
        position_ids = torch.cat([positions, src["position_ids"]], dim=1)
        segment_ids = torch.cat([torch.full_like(response, RESPONSE), src["segment_ids"]], dim=1)
        hidden = self.model.embed(input_ids, token_type_ids, position_ids, src.get("frames"), src.get("audio"))
        hidden = self.model.encode(hidden, build_attention_mask(segment_ids))
        return self.model.cls(hidden[:, n])  # (N, V): the [MASK] slot

    def reorder(self, beam_index: torch.Tensor) -> None:
        pass  # beams of one example share its source rows: nothing to move


class CachedScorer:
    """Source keys/values computed once; each step runs the last token and the [MASK] only."""

    def __init__(self, model: MariaForDialogue, source: dict[str, torch.Tensor], num_beams: int, max_length: int):
        self.model = model
        self.layers = model.bert.encoder.layer
        self.mask_id = model.special_ids.mask
        self.num_beams = num_beams
        attention = self.layers[0].attention.self
        self.n_heads, self.head_dim = attention.num_attention_heads, attention.attention_head_size
        hidden = model.embed(
            source["input_ids"], source["token_type_ids"], source["position_ids"], source.get("frames"), source.get("audio")
        )  # (B, S, H)
        batch, length, _ = hidden.shape
        self.batch = batch
        valid = source["segment_ids"] >= 0  # (B, S)
        # Source rows attend to every valid source row (build_attention_mask on non-response segments).
        mask4d = additive_mask(build_attention_mask(source["segment_ids"]), hidden.dtype)  # (B, 1, S, S)
        self.source_bias = torch.zeros((batch, 1, 1, length), dtype=hidden.dtype, device=hidden.device).masked_fill(
            ~valid[:, None, None, :], torch.finfo(hidden.dtype).min
        )  # (B, 1, 1, S)
        self.source_keys, self.source_values = [], []  # per layer (B, nh, S, hd)
        for layer in self.layers:
            self.source_keys.append(self._heads(layer.attention.self.key(hidden)))
            self.source_values.append(self._heads(layer.attention.self.value(hidden)))
            hidden = layer(hidden, attention_mask=mask4d)
        n_rows = batch * num_beams
        shape = (n_rows, self.n_heads, max_length, self.head_dim)
        self.response_keys = [hidden.new_zeros(shape) for _ in self.layers]  # per beam, real tokens only
        self.response_values = [hidden.new_zeros(shape) for _ in self.layers]
        self.t = 0  # position of the next real token

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # (N, L, H) -> (N, nh, L, hd)
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        n_rows, n = tokens.shape
        t = n - 1
        if t != self.t:
            raise RuntimeError(f"CachedScorer expects one new token per step (cache at {self.t}, got {t})")
        device = tokens.device
        input_ids = torch.stack([tokens[:, -1], tokens.new_full((n_rows,), self.mask_id)], dim=1)  # (N, 2)
        positions = torch.tensor([t, t + 1], device=device).expand(n_rows, -1)
        hidden = self.model.bert.embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids), position_ids=positions
        )  # (N, 2, H)
        for index, layer in enumerate(self.layers):
            attention = layer.attention.self
            query = self._heads(attention.query(hidden))  # (N, nh, 2, hd)
            key = self._heads(attention.key(hidden))
            value = self._heads(attention.value(hidden))
            self.response_keys[index][:, :, t] = key[:, :, 0]
            self.response_values[index][:, :, t] = value[:, :, 0]
            context = self._attend(index, query, key[:, :, 1:], value[:, :, 1:], t, attention.scaling)
            context = context.transpose(1, 2).reshape(n_rows, 2, -1)  # (N, 2, H)
            hidden = layer.attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        self.t += 1
        return self.model.cls(hidden[:, 1])  # (N, V)

    def _attend(self, index, query, mask_key, mask_value, t, scaling):
        """query (N, nh, 2, hd); rows: real token at t (sees source + response[:t+1]),
        [MASK] at t+1 (sees those and itself)."""
        batch, beams, nh, hd = self.batch, self.num_beams, self.n_heads, self.head_dim
        # Source part: beams of one example share its cache. (B, nh, K*2, hd) @ (B, nh, hd, S)
        q_by_example = query.view(batch, beams, nh, 2, hd).transpose(1, 2).reshape(batch, nh, beams * 2, hd)
        src_scores = torch.matmul(q_by_example, self.source_keys[index].transpose(-1, -2)) * scaling + self.source_bias
        src_scores = src_scores.view(batch, nh, beams, 2, -1).transpose(1, 2).reshape(batch * beams, nh, 2, -1)
        resp_keys = self.response_keys[index][:, :, : t + 1]  # (N, nh, t+1, hd)
        resp_values = self.response_values[index][:, :, : t + 1]
        resp_scores = torch.matmul(query, resp_keys.transpose(-1, -2)) * scaling  # (N, nh, 2, t+1)
        self_scores = (query * mask_key).sum(-1, keepdim=True) * scaling  # (N, nh, 2, 1)
        self_scores[:, :, 0] = torch.finfo(query.dtype).min  # the real token never sees the [MASK]
        scores = torch.cat([src_scores, resp_scores, self_scores], dim=-1)
        probs = torch.softmax(scores, dim=-1)
        n_src = src_scores.shape[-1]
        p_src, p_resp, p_self = probs[..., :n_src], probs[..., n_src : n_src + t + 1], probs[..., n_src + t + 1 :]
        p_src_by_example = p_src.reshape(batch, beams, nh, 2, n_src).transpose(1, 2).reshape(batch, nh, beams * 2, n_src)
        out_src = torch.matmul(p_src_by_example, self.source_values[index])  # (B, nh, K*2, hd)
        out_src = out_src.view(batch, nh, beams, 2, hd).transpose(1, 2).reshape(batch * beams, nh, 2, hd)
        return out_src + torch.matmul(p_resp, resp_values) + p_self * mask_value

    def reorder(self, beam_index: torch.Tensor) -> None:
        for store in (self.response_keys, self.response_values):
            for index in range(len(store)):
                store[index] = store[index].index_select(0, beam_index)


# -- logits processing ----------------------------------------------------------------------------
def process_logits(
    logits: torch.Tensor, tokens: torch.Tensor, config: GenerationConfig, sep_id: int, banned_ids: torch.Tensor
) -> torch.Tensor:
    """Penalties and bans on raw logits. logits (N, V), tokens (N, t+1) starting with [CLS]."""
    logits = logits.float().clone()
    generated = tokens[:, 1:]  # (N, t)
    if config.repetition_penalty != 1.0 and generated.shape[1]:
        previous = logits.gather(1, generated)
        previous = torch.where(previous > 0, previous / config.repetition_penalty, previous * config.repetition_penalty)
        logits.scatter_(1, generated, previous)
    n = config.no_repeat_ngram_size
    if n and generated.shape[1] >= n:
        rows = generated.tolist()
        for row, seq in enumerate(rows):
            prefix = tuple(seq[len(seq) - n + 1 :]) if n > 1 else ()
            banned = {seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == prefix}
            if banned:
                logits[row, list(banned)] = float("-inf")
    logits[:, banned_ids] = float("-inf")
    if generated.shape[1] < config.min_length:
        logits[:, sep_id] = float("-inf")
    return logits


def _strip(sequence: list[int], sep_id: int, pad_id: int) -> list[int]:
    out = []
    for token in sequence:
        if token == sep_id:
            break
        if token != pad_id:
            out.append(token)
    return out


def greedy_search(scorer: StepScorer, batch_size: int, config: GenerationConfig, special, banned_ids, device) -> list[list[int]]:
    """Argmax each step; rows that produced [SEP] are padded until all are done."""
    tokens = torch.full((batch_size, 1), special.cls, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for _ in range(config.max_length - 1):
        logits = process_logits(scorer.step(tokens), tokens, config, special.sep, banned_ids)
        next_tokens = logits.argmax(dim=-1).masked_fill(finished, special.pad)
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
        finished |= next_tokens == special.sep
        if bool(finished.all()):
            break
    return [_strip(row[1:], special.sep, special.pad) for row in tokens.tolist()]


class _Hypotheses:
    """The best ``num_beams`` finished hypotheses of one example (as transformers' BeamHypotheses)."""

    def __init__(self, num_beams: int, length_penalty: float):
        self.num_beams, self.length_penalty = num_beams, length_penalty
        self.items: list[tuple[float, list[int]]] = []

    def add(self, sequence: list[int], sum_logprobs: float, generated_length: int) -> None:
        score = sum_logprobs / (max(generated_length, 1) ** self.length_penalty)
        self.items.append((score, sequence))
        self.items.sort(key=lambda item: -item[0])
        del self.items[self.num_beams :]

    def is_done(self, best_running_sum: float, generated_length: int) -> bool:
        if len(self.items) < self.num_beams:
            return False
        return self.items[-1][0] >= best_running_sum / (max(generated_length, 1) ** self.length_penalty)

    def best(self) -> list[int]:
        return self.items[0][1]


def beam_search(scorer: StepScorer, batch_size: int, config: GenerationConfig, special, banned_ids, device) -> list[list[int]]:
    """Beam search with length penalty; a hypothesis ends at [SEP] or at max_length."""
    beams = config.num_beams
    n_rows = batch_size * beams
    tokens = torch.full((n_rows, 1), special.cls, dtype=torch.long, device=device)
    beam_scores = torch.zeros((batch_size, beams), dtype=torch.float32, device=device)
    beam_scores[:, 1:] = -1e9  # step 0: every beam is the same [CLS]; expand from the first only
    hypotheses = [_Hypotheses(beams, config.length_penalty) for _ in range(batch_size)]
    done = [False] * batch_size
    for _ in range(config.max_length - 1):
        logits = process_logits(scorer.step(tokens), tokens, config, special.sep, banned_ids)
        log_probs = torch.log_softmax(logits, dim=-1)  # (N, V)
        vocab = log_probs.shape[-1]
        candidates = (log_probs + beam_scores.view(n_rows, 1)).view(batch_size, beams * vocab)
        top_scores, top_index = candidates.topk(2 * beams, dim=1)  # (B, 2K)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        generated_length = tokens.shape[1]  # tokens after [CLS] once this step's token is added
        next_scores, next_tokens, next_beams = [], [], []
        token_rows = tokens.tolist()
        for b in range(batch_size):
            if done[b]:
                next_scores += [0.0] * beams
                next_tokens += [special.pad] * beams
                next_beams += [b * beams] * beams
                continue
            chosen = []
            for rank, (score, flat) in enumerate(zip(top_scores[b], top_index[b])):
                beam, token = divmod(flat, vocab)
                row = b * beams + beam
                if token == special.sep:
                    if rank < beams:
                        hypotheses[b].add(token_rows[row][1:], score, generated_length)
                else:
                    chosen.append((score, token, row))
                if len(chosen) == beams:
                    break
            next_scores += [c[0] for c in chosen]
            next_tokens += [c[1] for c in chosen]
            next_beams += [c[2] for c in chosen]
            done[b] = hypotheses[b].is_done(max(c[0] for c in chosen), generated_length)
        beam_index = torch.tensor(next_beams, dtype=torch.long, device=device)
        tokens = torch.cat([tokens[beam_index], torch.tensor(next_tokens, device=device)[:, None]], dim=1)
        beam_scores = torch.tensor(next_scores, dtype=torch.float32, device=device).view(batch_size, beams)
        scorer.reorder(beam_index)
        if all(done):
            break
    token_rows = tokens.tolist()
    generated_length = tokens.shape[1] - 1
    for b in range(batch_size):
        if done[b]:
            continue
        for k in range(beams):
            hypotheses[b].add(token_rows[b * beams + k][1:], float(beam_scores[b, k]), generated_length)
    return [_strip(h.best(), special.sep, special.pad) for h in hypotheses]


def banned_token_ids(model: MariaForDialogue) -> torch.Tensor:
    """Specials the decoder may never emit: everything bracketed except [SEP]."""
    encoder = model.char_encoder
    sep = model.special_ids.sep
    return torch.tensor(sorted(i for i in encoder.special_ids if i != sep), dtype=torch.long)


@torch.no_grad()
def decode_batch(model: MariaForDialogue, source: dict[str, torch.Tensor], config: GenerationConfig) -> list[list[int]]:
    """Token ids (no [CLS]/[SEP]) per example of one source batch (``collate(..., include_response=False)``)."""
    if config.max_length > model.config.response_budget:
        raise ValueError(
            f"max_length ({config.max_length}) exceeds the response segment ({model.config.response_budget} slots)"
        )
    device = next(model.parameters()).device
    source = {k: v.to(device) for k, v in source.items()}
    batch_size = source["input_ids"].shape[0]
    special = model.special_ids
    banned = banned_token_ids(model).to(device)
    beams = config.num_beams
    if config.use_cache:
        scorer: StepScorer = CachedScorer(model, source, beams, config.max_length)
    else:
        scorer = FullRecomputeScorer(model, source, beams)
    search = greedy_search if beams == 1 else beam_search
    return search(scorer, batch_size, config, special, banned, device)


def generate_ids(
    model: MariaForDialogue,
    examples: Sequence[DialogueExample],
    config: GenerationConfig | None = None,
    show_progress: bool = False,
) -> list[list[int]]:
    """Decode every example in batches of ``config.batch_size``; the model is put in eval mode meanwhile."""
    config = config or GenerationConfig()
    was_training = model.training
    model.eval()
    out: list[list[int]] = []
    starts = range(0, len(examples), config.batch_size)
    if show_progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="generate", unit="batch")
    try:
        for start in starts:
            chunk = examples[start : start + config.batch_size]
            source = model.collate(chunk, train=False, include_response=False)
            out += decode_batch(model, source, config)
    finally:
        model.train(was_training)
    return out


def replace(config: GenerationConfig, **changes) -> GenerationConfig:
    return dataclasses.replace(config, **changes)
