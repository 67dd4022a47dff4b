"""Maria for TikTalk: a UniLM on a BERT backbone with frame, audio and knowledge segments.

Parameter names (what ``state_dict`` holds):

* ``bert.embeddings.*``, ``bert.encoder.*``: transformers' ``BertModel`` (no pooler), the
  same keys as bert-base-chinese's ``BertForPreTraining`` / ``BertForMaskedLM``;
  ``bert.embeddings.token_type_embeddings.weight`` has 5 rows instead of 2 (see
  ``configuration_maria``).
* ``cls.*``: the output layer (``MariaConfig.output_layer``). ``"maria"`` (default):
  ``cls.transform.*`` and ``cls.decoder.weight``, fresh and untied, no bias, as Maria builds
  them (BERT's ``cls.predictions.*`` are ignored on load); ``"tied"``: ``cls.predictions.*``,
  BERT's ``BertOnlyMLMHead``, decoder weight tied to the word embeddings (the tied copy is
  not written to disk).
* ``fusion.*``: everything new (frame / audio projections, optional frame positions).

The batch comes from :mod:`fusion.collator`; decoding lives in :mod:`fusion.generation`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fusion.collator import SpecialIds, additive_mask, collate_examples, knowledge_budget
from fusion.configuration_maria import AUDIO, TINY_BACKBONE, TYPE_VOCAB_SIZE, VISION, MariaConfig
from tiktalk.errors import UsageError
from tiktalk.models.base import ChatModel
from tiktalk.models.modalities import MODALITIES
from tiktalk.models.tokenization import (
    CHAR_VOCAB_SIZE,
    TextEncoder,
    build_char_tokenizer,
    load_tokenizer,
    text_encoder,
)
from tiktalk.types import DialogueExample, KnowledgeBudget

if TYPE_CHECKING:
    from tiktalk.models.saving import SavedModel

# Tied copies: not saved, re-tied on load.
TIED_KEYS = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
# Config fields newer than some saves, and what those saves had.
OLD_SAVE_DEFAULTS = {"output_layer": "tied", "tokenization": "char"}
# BERT checkpoint keys Maria has no use for.
IGNORED_PREFIXES = ("bert.pooler.", "cls.seq_relationship.")


@dataclass
class MariaOutput:
    """Forward output. Losses are token-averaged cross-entropies over the chosen positions.

    ``loss`` averages over every masked position of the batch (one cross-entropy over
    MRP + MCP + MKP positions, as Maria); ``loss_mrp`` / ``loss_mcp`` / ``loss_mkp`` average
    over each objective's positions and are None when the batch has none of them.
    ``logits``: (B, L_t, V) over the text positions when no labels are given; with labels,
    (N, V) at the N labelled positions in row-major order (the head is only run there).
    """

    loss: torch.Tensor | None = None
    loss_mrp: torch.Tensor | None = None
    loss_mcp: torch.Tensor | None = None
    loss_mkp: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    n_masked: dict[str, int] = field(default_factory=dict)


class MariaFeatureEmbeddings(nn.Module):
    """Frame / audio rows: linear projection with bias, dropout; no LayerNorm (Maria)."""

    def __init__(self, config: MariaConfig, hidden_size: int):
        super().__init__()
        if config.has("vision"):
            self.frame_projection = nn.Linear(config.frame_dim, hidden_size)
        if config.has("audio"):
            self.audio_projection = nn.Linear(config.audio_dim, hidden_size)
        if config.frame_position_embeddings and (config.has("vision") or config.has("audio")):
            self.frame_positions = nn.Embedding(max(config.max_frames, config.max_audio_frames), hidden_size)
        self.dropout = nn.Dropout(config.feature_dropout)

    def forward(self, features: torch.Tensor, projection: nn.Linear, type_row: torch.Tensor | None) -> torch.Tensor:
        # features: (B, F, D) -> (B, F, H)
        rows = projection(features)
        if hasattr(self, "frame_positions"):
            rows = rows + self.frame_positions(torch.arange(features.shape[1], device=features.device))[None]
        if type_row is not None:
            rows = rows + type_row
        return self.dropout(rows)


def _init_like_bert(module: nn.Module, std: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class MariaOutputLayer(nn.Module):
    """Maria's output layer (``modeling_bert.py`` L491-496): ``transform`` then a decoder
    without bias, its own weights (not the word embeddings'), PyTorch's default init."""

    def __init__(self, bert_config):
        super().__init__()
        from transformers.models.bert.modeling_bert import BertPredictionHeadTransform

        self.transform = BertPredictionHeadTransform(bert_config)
        self.decoder = nn.Linear(bert_config.hidden_size, bert_config.vocab_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden (..., H) -> logits (..., V)
        return self.decoder(self.transform(hidden))


class MariaForDialogue(ChatModel):
    """Maria (UniLM on BERT) with MRP / MCP / MKP objectives and cached decoding."""

    name = "maria"
    # Any non-empty subset (Table 7's rows): the config's ``modalities`` says which.
    required_modalities: ClassVar[tuple[str, ...]] = ()
    optional_modalities: ClassVar[tuple[str, ...]] = MODALITIES
    # ``tiny``: a random tiny BERT (hidden 32, 2 layers, 2 heads) + the generated char vocab, one
    # id per character. (It keeps BERT's tied head and the char tokenisation: its recipe and
    # pinned outputs were measured with them.)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"backbone": dict(TINY_BACKBONE, vocab_size=CHAR_VOCAB_SIZE), "output_layer": "tied",
                 "tokenization": "char"}}
    # Maria's own recipe is TrainConfig's defaults; its batch: 64 per GPU (run_*.py L435) under
    # DataParallel on the paper's 4 V100s (L466), 256 examples per optimizer step.
    default_recipe: ClassVar[dict[str, Any]] = {"global_batch_size": 256}
    preset_recipes: ClassVar[dict[str, dict[str, Any]]] = {
        # Measured on the sample (T+I+K, batch 16): 60 steps at 1e-3 and 300 at 3e-3 or 1e-2 give
        # one reply for all 7 test contexts; 600 steps at 3e-3 with 60 warmup give 4 distinct.
        "tiny": {"lr": 3e-3, "warmup_steps": 60, "max_steps": 600, "batch_size": 16, "global_batch_size": None},
    }
    config_class = MariaConfig

    def __init__(self, config: MariaConfig, tokenizer=None):
        super().__init__()
        from transformers import BertModel
        from transformers.models.bert.modeling_bert import BertOnlyMLMHead

        self.config = config
        bert_config = config.bert_config()
        self.bert_config = bert_config
        self.bert = BertModel(bert_config, add_pooling_layer=False)
        self.bert.config._attn_implementation = config.attn_implementation
        if config.output_layer == "tied":
            self.cls = BertOnlyMLMHead(bert_config)
            _init_like_bert(self.cls, bert_config.initializer_range)
        else:  # Maria initialises nothing of it (no init_weights call): PyTorch's defaults
            self.cls = MariaOutputLayer(bert_config)
        self.fusion = MariaFeatureEmbeddings(config, bert_config.hidden_size)
        _init_like_bert(self.fusion, bert_config.initializer_range)
        self.tie_weights()
        self.tokenizer = tokenizer
        self._encoder: TextEncoder | None = None
        self._special: SpecialIds | None = None

    # -- weights ----------------------------------------------------------------------------
    def tie_weights(self) -> None:
        """With the ``"tied"`` output layer, the MLM decoder shares the word embeddings and the
        head's bias, as BERT does; Maria's own layer ties nothing."""
        if self.config.output_layer != "tied":
            return
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias

    @property
    def vocab_size(self) -> int:
        return self.bert_config.vocab_size

    # -- text side ---------------------------------------------------------------------------
    @property
    def text_encoder(self) -> TextEncoder:
        """Text <-> ids as ``config.tokenization`` says, over ``self.tokenizer``'s vocabulary."""
        if self.tokenizer is None:
            raise UsageError("this MariaForDialogue has no tokenizer; pass one or load with from_pretrained")
        if self._encoder is None:
            self._encoder = text_encoder(self.tokenizer, self.config.tokenization)
            self._special = SpecialIds.from_encoder(self._encoder)
            if self._special.vocab_size > self.vocab_size:
                raise UsageError(
                    f"tokenizer has {self._special.vocab_size} ids but the backbone's vocab_size is {self.vocab_size}"
                )
        return self._encoder

    @property
    def char_encoder(self) -> TextEncoder:
        """The old name of :attr:`text_encoder` (it was one id per character)."""
        return self.text_encoder

    @property
    def special_ids(self) -> SpecialIds:
        self.text_encoder  # noqa: B018 - builds the cache
        assert self._special is not None
        return self._special

    def modalities(self) -> tuple[str, ...]:
        return self.config.modalities

    @classmethod
    def modality_fields(cls, modalities: tuple[str, ...]) -> dict[str, Any]:
        super().modality_fields(modalities)
        return {"modalities": modalities}

    def knowledge_budget(self) -> KnowledgeBudget | None:
        """``config.knowledge_tokens`` tokens as this model's text encoder counts them (None
        without the knowledge modality)."""
        return knowledge_budget(self.text_encoder, self.config) if self.config.has("knowledge") else None

    def collate(
        self,
        examples: Sequence[DialogueExample],
        train: bool = True,
        generator: torch.Generator | None = None,
        include_response: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Examples -> batch for ``forward`` (train=True: masked inputs, labels, objective masks)."""
        return collate_examples(
            examples,
            self.text_encoder,
            self.config,
            train=train,
            generator=generator,
            include_response=include_response,
            special=self.special_ids,
        )

    # -- forward -------------------------------------------------------------------------------
    def embed(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor,
        frames: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Text embeddings (BERT: word + position + type, LayerNorm, dropout) then feature rows.

        input_ids / token_type_ids / position_ids: (B, L_t); frames (B, F, 2048); audio (B, A, 128)
        -> (B, L_t + F + A, H)
        """
        parts = [self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)]
        type_rows = self.bert.embeddings.token_type_embeddings.weight
        if self.config.has("vision"):
            if frames is None:
                frames = parts[0].new_zeros((input_ids.shape[0], 0, self.config.frame_dim))
            row = type_rows[VISION] if self.config.feature_type_embeddings else None
            parts.append(self.fusion(frames.to(parts[0].dtype), self.fusion.frame_projection, row))
        if self.config.has("audio"):
            if audio is None:
                audio = parts[0].new_zeros((input_ids.shape[0], 0, self.config.audio_dim))
            row = type_rows[AUDIO] if self.config.feature_type_embeddings else None
            parts.append(self.fusion(audio.to(parts[0].dtype), self.fusion.audio_projection, row))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def encode(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """BERT encoder under Maria's mask. hidden (B, L, H), attention_mask (B, L, L) -> (B, L, H)."""
        if attention_mask.shape != (hidden.shape[0], hidden.shape[1], hidden.shape[1]):
            raise UsageError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                f"{(hidden.shape[0], hidden.shape[1], hidden.shape[1])}"
            )
        mask = additive_mask(attention_mask, hidden.dtype)
        return self.bert.encoder(hidden, attention_mask=mask).last_hidden_state

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        frames: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mrp_mask: torch.Tensor | None = None,
        mcp_mask: torch.Tensor | None = None,
        mkp_mask: torch.Tensor | None = None,
    ) -> MariaOutput:
        """A batch from :meth:`collate` -> :class:`MariaOutput` (frame/audio/segment masks are
        already folded into ``attention_mask`` and accepted only so ``forward(**batch)`` works)."""
        text_len = input_ids.shape[1]
        hidden = self.embed(input_ids, token_type_ids, position_ids, frames, audio)
        hidden = self.encode(hidden, attention_mask)[:, :text_len]  # (B, L_t, H)
        if labels is None:
            return MariaOutput(logits=self.cls(hidden))
        selected = labels != -100  # (B, L_t)
        logits = self.cls(hidden[selected])  # (N, V)
        token_loss = F.cross_entropy(logits.float(), labels[selected], reduction="none")  # (N,)
        loss = token_loss.mean() if token_loss.numel() else hidden.sum() * 0.0
        output = MariaOutput(loss=loss, logits=logits)
        for name, mask in (("mrp", mrp_mask), ("mcp", mcp_mask), ("mkp", mkp_mask)):
            if mask is None:
                continue
            part = mask[selected]
            count = int(part.sum())
            output.n_masked[name] = count
            if count:
                setattr(output, f"loss_{name}", token_loss[part].mean())
        return output

    # -- generation ------------------------------------------------------------------------------
    def generate(self, examples: Sequence[DialogueExample], **kwargs: Any) -> list[str]:
        """One response per example. kwargs: fields of :class:`fusion.generation.GenerationConfig`
        (num_beams, max_length, min_length, repetition_penalty, length_penalty,
        no_repeat_ngram_size, use_cache, batch_size) and ``show_progress``."""
        from fusion.generation import generate_ids
        from tiktalk.models.generation import GenerationConfig

        show_progress = kwargs.pop("show_progress", False)
        gen_config = kwargs.pop("generation_config", None)
        if gen_config is None:
            gen_config = GenerationConfig(**kwargs)
        elif kwargs:
            gen_config = dataclasses.replace(gen_config, **kwargs)
        sequences = generate_ids(self, examples, gen_config, show_progress=show_progress)
        return [self.text_encoder.decode(seq) for seq in sequences]

    def score_batch(self, examples: Sequence[DialogueExample]) -> list[tuple[float, int]]:
        """Teacher-forced NLL (nats) and token count of each example's response (decoding layout)."""
        from fusion.generation import response_nll

        return response_nll(self, examples)

    # -- save / load (the platform's format: ChatModel.save_pretrained / from_pretrained) ---------
    def saved_config(self) -> MariaConfig:
        """The config with the backbone as a dict (a run directory is self-contained) and the
        tokenizer's size (checked on load)."""
        config = MariaConfig.from_dict(self.config.to_dict())
        config.backbone = self.config.backbone_dict()
        if self.tokenizer is not None:
            config.tokenizer_vocab_size = len(self.tokenizer)
        return config

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, trust_pickle: bool = False,
                        **overrides: Any) -> MariaForDialogue:
        """A saved Maria directory, or a local BERT directory (e.g. bert-base-chinese).

        A BERT directory with only ``pytorch_model.bin`` (a pickle) is read only with
        ``trust_pickle=True`` (CLI: ``--trust-pickle``); ``model.safetensors`` needs nothing.

        From a BERT directory, ``overrides`` are MariaConfig fields (e.g. ``modalities=("text",
        "knowledge")``); BERT's keys load unchanged, new ``fusion.*`` parameters start random,
        extra token-type rows as documented in ``configuration_maria``. The load report
        (loaded / initialised / ignored keys) is kept in ``model.load_report``.
        """
        return super().from_pretrained(path, trust_pickle=trust_pickle, **overrides)

    @classmethod
    def from_saved(cls, saved: SavedModel, *, trust_pickle: bool = False, **overrides: Any) -> MariaForDialogue:
        """(``trust_pickle`` is for BERT directories; a saved Maria is safetensors.) A save from
        before ``output_layer`` / ``tokenization`` existed had BERT's tied head and one id per
        character (:data:`OLD_SAVE_DEFAULTS`)."""
        saved = _with_old_defaults(saved)
        model = super().from_saved(saved, **overrides)
        model.load_report = {"loaded": sorted(k for k in model.state_dict() if k not in TIED_KEYS),
                             "initialised": [], "ignored": []}
        return model

    @classmethod
    def saved_tokenizer(cls, path: Path, config: MariaConfig):
        return _tokenizer_for(path, config.tokenizer_vocab_size)

    @classmethod
    def from_external(cls, path: Path, saved: SavedModel | None, *, trust_pickle: bool = False,
                      **overrides: Any) -> MariaForDialogue:
        """A local BERT directory (``config.json`` + weights + vocabulary)."""
        if saved is None and (path / "config.json").exists():
            return cls._from_bert_dir(path, trust_pickle=trust_pickle, **overrides)
        if saved is not None:
            return super().from_external(path, saved, **overrides)
        from tiktalk.models.saving import MODEL_FILE

        raise UsageError(f"{path}: neither a Maria checkpoint ({MODEL_FILE}) nor a BERT directory (config.json)")

    @classmethod
    def _from_bert_dir(cls, path: Path, *, trust_pickle: bool = False, **overrides: Any) -> MariaForDialogue:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
        config = MariaConfig.from_dict({**cls._config_overrides(overrides), "backbone": data})  # unknown fields named
        tokenizer = _tokenizer_for(path, data.get("vocab_size"))
        model = cls(config, tokenizer=tokenizer)
        state = _read_bert_weights(path, trust_pickle)
        model.load_report = model.load_bert_state_dict(state, source=str(path))
        return model

    def load_bert_state_dict(self, state: dict[str, torch.Tensor], source: str = "state dict") -> dict[str, list[str]]:
        """Copy a BERT checkpoint into the model; returns {loaded, initialised, ignored} key lists.

        With Maria's output layer, BERT's MLM head (``cls.predictions.*``) is ignored: the
        layer stays fresh, as Maria re-creates its decoder after loading."""
        state = normalise_bert_keys(state)
        own = self.state_dict()
        ignored_prefixes = IGNORED_PREFIXES + (("cls.predictions.",) if self.config.output_layer != "tied" else ())
        loaded, ignored = [], []
        with torch.no_grad():
            for key, value in state.items():
                if key.startswith(ignored_prefixes) or key.endswith("position_ids") or key in TIED_KEYS:
                    ignored.append(key)
                    continue
                if key not in own:
                    raise UsageError(f"{source}: unexpected BERT key {key!r}")
                target = own[key]
                if key == "bert.embeddings.token_type_embeddings.weight" and value.shape[0] < TYPE_VOCAB_SIZE:
                    target.copy_(expand_token_type_rows(value, TYPE_VOCAB_SIZE))
                elif value.shape != target.shape:
                    raise UsageError(
                        f"{source}: {key} has shape {tuple(value.shape)}, the model expects {tuple(target.shape)}"
                    )
                else:
                    target.copy_(value)
                loaded.append(key)
        initialised = sorted(k for k in own if k not in set(loaded) and k not in TIED_KEYS)
        not_new = [k for k in initialised if not k.startswith(("fusion.", "cls."))]
        if not_new:
            raise UsageError(f"{source}: BERT checkpoint lacks backbone keys {not_new[:5]} (of {len(not_new)})")
        self.tie_weights()
        return {"loaded": sorted(loaded), "initialised": initialised, "ignored": sorted(ignored)}

    @classmethod
    def build_preset(cls, fields: dict[str, Any], overrides: dict[str, Any]) -> MariaForDialogue:
        """``overrides`` are MariaConfig fields; ``backbone`` may be a dict merged into the
        preset's, ``tokenizer_dir`` a directory for the generated char vocabulary."""
        config, tokenizer = cls._preset_config(fields, overrides)
        return cls(config, tokenizer=tokenizer)

    @staticmethod
    def _preset_config(fields: dict[str, Any], overrides: dict[str, Any]):
        """(config, tokenizer) of a preset's ``fields`` with ``overrides`` (see build_preset)."""
        fields, overrides = dict(fields), dict(overrides)
        backbone = dict(fields.pop("backbone"))
        backbone.update(overrides.pop("backbone", None) or {})
        tokenizer = build_char_tokenizer(overrides.pop("tokenizer_dir", None))
        return MariaConfig(backbone=backbone, **{**fields, **overrides}), tokenizer

    @classmethod
    def config_knowledge_budget(cls, fields: dict[str, Any], saved: SavedModel | None,
                                preset: str) -> KnowledgeBudget | None:
        """``knowledge_tokens`` tokens of the vocabulary a preset builds or a save holds, counted
        with the config's ``tokenization``, as the model counts them."""
        if saved is None:
            config, tokenizer = cls._preset_config(cls.presets[preset], fields)
        else:
            config = MariaConfig.from_dict(_with_old_defaults(saved).config)
            if fields:
                config = config.replace(**fields)
            tokenizer = cls.saved_tokenizer(saved.path, config)
        return knowledge_budget(text_encoder(tokenizer, config.tokenization), config) if config.has("knowledge") else None


def _with_old_defaults(saved: SavedModel) -> SavedModel:
    """``saved`` with :data:`OLD_SAVE_DEFAULTS` for the fields its config predates."""
    missing = {k: v for k, v in OLD_SAVE_DEFAULTS.items() if k not in saved.config}
    return dataclasses.replace(saved, config={**saved.config, **missing}) if missing else saved


def expand_token_type_rows(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """BERT's (2, H) token-type table -> (n_rows, H): knowledge row from the context row, feature rows 0."""
    out = torch.zeros((n_rows, rows.shape[1]), dtype=rows.dtype)
    out[: rows.shape[0]] = rows
    if rows.shape[0] < 3 <= n_rows:
        out[2] = rows[min(1, rows.shape[0] - 1)]
    return out


def normalise_bert_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old TF-converted names (LayerNorm.gamma/beta) -> weight/bias; bare BertModel keys get ``bert.``."""
    out = {}
    bare = not any(k.startswith("bert.") for k in state)
    for key, value in state.items():
        if key.endswith(".gamma"):
            key = key[: -len(".gamma")] + ".weight"
        elif key.endswith(".beta"):
            key = key[: -len(".beta")] + ".bias"
        if bare and key.startswith(("embeddings.", "encoder.", "pooler.")):
            key = "bert." + key
        out[key] = value
    return out


def _read_bert_weights(path: Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    from tiktalk.models.weights import read_safetensors, read_torch_pickle

    if (path / "model.safetensors").exists():
        return read_safetensors(path / "model.safetensors")
    if (path / "pytorch_model.bin").exists():
        return read_torch_pickle(path / "pytorch_model.bin", trust_pickle=trust_pickle)  # tensors only
    raise UsageError(f"{path}: no model.safetensors or pytorch_model.bin")


def _tokenizer_for(path: Path, vocab_size: int | None):
    if (path / "vocab.txt").exists() or (path / "tokenizer.json").exists():
        return load_tokenizer(path, expected_vocab_size=vocab_size)
    if vocab_size == CHAR_VOCAB_SIZE:
        return build_char_tokenizer()
    raise UsageError(f"{path}: no vocab.txt / tokenizer.json and vocab_size {vocab_size} is not the generated char vocab")

