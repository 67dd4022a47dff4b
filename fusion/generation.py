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

Lengths follow Maria/Oscar's ``max_gen_length``: ``max_length`` counts the ``[CLS]``; the
search runs at most ``max_length - 1`` steps, so the last ``[MASK]`` sits at position
``max_length - 1`` (39: the end of a 40-slot response segment), and a response keeps at most
``max_length - 2`` tokens (see :class:`tiktalk.models.generation.GenerationConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fusion.collator import additive_mask, build_attention_mask
from fusion.configuration_maria import RESPONSE
from tiktalk.errors import UsageError
from tiktalk.models.base import ChatModel
from tiktalk.models.generation import GenerationConfig, StepScorer, beam_search, greedy_search
from tiktalk.types import DialogueExample

# The scorers take a MariaForDialogue; it is typed as the platform's ChatModel so that this
# module and modeling_maria (which calls generate_ids) do not import each other.
MariaForDialogue = ChatModel


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


def banned_token_ids(model: MariaForDialogue, config: GenerationConfig) -> torch.Tensor:
    """Specials the decoder may not emit: none (Maria), or with ``ban_special_tokens`` every
    bracketed token except the end tokens [SEP] and [PAD]."""
    if not config.ban_special_tokens:
        return torch.zeros(0, dtype=torch.long)
    ends = {model.special_ids.sep, model.special_ids.pad}
    return torch.tensor(sorted(i for i in model.text_encoder.special_ids if i not in ends), dtype=torch.long)


@torch.no_grad()
def decode_batch(model: MariaForDialogue, source: dict[str, torch.Tensor], config: GenerationConfig) -> list[list[int]]:
    """Token ids (no [CLS]/[SEP]) per example of one source batch (``collate(..., include_response=False)``)."""
    if config.max_length > model.config.response_budget:
        raise UsageError(
            f"max_length ({config.max_length}) exceeds the response segment ({model.config.response_budget} slots)"
        )
    device = next(model.parameters()).device
    source = {k: v.to(device) for k, v in source.items()}
    batch_size = source["input_ids"].shape[0]
    special = model.special_ids
    banned = banned_token_ids(model, config).to(device)
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



def response_nll(model: MariaForDialogue, examples: Sequence[DialogueExample]) -> list[tuple[float, int]]:
    """Teacher-forced negative log-likelihood of each example's response, in nats: Maria's
    ``score_batch`` (the platform's ``ChatModel.score`` batches it, in eval mode, without gradients).

    Read the way decoding reads it: token t is scored at the [MASK] after ``[CLS] y1..y(t-1)``
    followed by the source, and the closing [SEP] is scored too. Returns ``(sum, n_tokens)``
    per example. The response is truncated to the model's response budget as in training.
    """
    device = next(model.parameters()).device
    special = model.special_ids
    budget = model.config.response_budget
    targets = [model.text_encoder.encode(e.response)[: budget - 2] + [special.sep] for e in examples]
    length = max(len(t) for t in targets)
    target = torch.full((len(examples), length), special.pad, dtype=torch.long, device=device)
    for row, ids in enumerate(targets):
        target[row, : len(ids)] = torch.tensor(ids, device=device)
    valid = target != special.pad  # (B, L)
    source = {k: v.to(device) for k, v in model.collate(examples, train=False, include_response=False).items()}
    scorer = CachedScorer(model, source, 1, length + 1)
    tokens = torch.full((len(examples), 1), special.cls, dtype=torch.long, device=device)
    total = torch.zeros(len(examples), dtype=torch.float64, device=device)
    for t in range(length):
        log_probs = torch.log_softmax(scorer.step(tokens).float(), dim=-1)  # (B, V)
        picked = log_probs.gather(1, target[:, t : t + 1]).squeeze(1)  # (B,)
        total -= torch.where(valid[:, t], picked, torch.zeros_like(picked)).double()
        tokens = torch.cat([tokens, target[:, t : t + 1]], dim=1)
    return [(float(total[row]), len(ids)) for row, ids in enumerate(targets)]
