"""The ChatGLM-6B row as a generic causal-LM baseline.

Modern transformers cannot load ChatGLM-6B natively (its remote code breaks), so this is
any ``AutoModelForCausalLM`` + ``AutoTokenizer`` from a local directory, fine-tuned on
ChatGLM-style prompts (see :mod:`baselines.prompt_lm`), with labels masked over the prompt
and optional LoRA through peft (``lora_r > 0``: only the LoRA matrices train; alpha 32,
dropout 0.1 and the attention's fused query/key/value projection, ``query_key_value`` on
ChatGLM, as the community LoRA fine-tune of ChatGLM-6B sets them; other architectures get
their own projections from :data:`LORA_TARGETS`).
``trust_remote_code`` stays off unless the config asks for it.

``--init`` / :meth:`CausalLMChat.from_pretrained` takes a saved causal-lm directory, a run
directory of ``tiktalk train``, or a plain Hugging Face causal-LM directory (config.json,
safetensors weights, tokenizer files).

A saved directory is itself a Hugging Face causal-LM directory, so a fine-tuned run can be
the language model of ``blip2-*`` (the paper's "BLIP-2 with the fine-tuned ChatGLM-6B") or
of any transformers tool::

    tiktalk_model.json                 the platform's config file (tiktalk.models.saving)
    config.json, model.safetensors     the LM's own save_pretrained (LoRA merged in)
    tokenizer files                    the tokenizer's own save_pretrained
    lora.safetensors                   with LoRA only: the unmerged state (base + adapters),
                                       which loading reads so training resumes exactly
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from baselines._common import decode, has_responses, load_tokenizer
from baselines.prompt_lm import (
    TINY_LLAMA,
    TINY_PROMPT,
    PromptEncoder,
    PromptLMChat,
    PromptLMConfig,
    build_lm,
    lm_config_dict,
)
from tiktalk.errors import MissingInputError, UsageError
from tiktalk.io import atomic_directory
from tiktalk.models.saving import (
    MODEL_FILE,
    SavedModel,
    load_weights,
    save_weights,
    write_model_config,
)
from tiktalk.models.scoring import labelled_nll
from tiktalk.types import DialogueExample


@dataclass
class CausalLMConfig(PromptLMConfig):
    lora_r: int = 0  # 0: full fine-tuning; > 0: LoRA rank (base LM frozen; the LoRA source: 8)
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_target_modules: list[str] | None = None  # None: LORA_TARGETS of the LM's architecture

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.lora_r, int) or self.lora_r < 0:
            self._fail("lora_r", self.lora_r, "must be an integer >= 0 (0 disables LoRA)")
        if self.lora_r:
            self._positive("lora_alpha")
            self._probability("lora_dropout")


@dataclass
class CausalLMOutput:
    loss: torch.Tensor | None  # () mean cross-entropy over response tokens
    logits: torch.Tensor  # (B, T, vocab)
    loss_lm: torch.Tensor | None  # same value as ``loss``


LORA_FILE = "lora.safetensors"

# LoRA's target modules per architecture (the LM config's ``model_type``): the attention's
# query/key/value projections, ChatGLM's fused ``query_key_value`` being the source's choice
# (yuanzhoulvpi2017/zero_nlp simple_thu_chatglm6b/train_chatglm6b.py: r 8, alpha 32, dropout 0.1).
_FUSED_QKV = ["query_key_value"]
_SPLIT_QKV = ["q_proj", "k_proj", "v_proj"]
LORA_TARGETS: dict[str, list[str]] = {
    "chatglm": _FUSED_QKV, "glm": _FUSED_QKV, "bloom": _FUSED_QKV, "gpt_neox": _FUSED_QKV, "falcon": _FUSED_QKV,
    "gpt2": ["c_attn"], "qwen": ["c_attn"], "baichuan": ["W_pack"], "phi3": ["qkv_proj"], "internlm2": ["wqkv"],
    **{name: _SPLIT_QKV for name in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text",
                                     "opt", "gptj", "phi", "olmo", "olmo2", "stablelm", "starcoder2")},
}


def lora_target_modules(lm, config: CausalLMConfig) -> list[str]:
    """The module names LoRA adapts in ``lm``: ``config.lora_target_modules``, else
    :data:`LORA_TARGETS` of its ``model_type``; an error names the model type and its linear
    layers when none is known or none matches."""
    linear_names = sorted({name.rsplit(".", 1)[-1] for name, module in lm.named_modules()
                           if type(module).__name__ in ("Linear", "Conv1D")})
    model_type = getattr(lm.config, "model_type", None)
    targets = config.lora_target_modules or LORA_TARGETS.get(model_type)
    if targets is None:
        raise UsageError(f"CausalLMConfig.lora_target_modules: no LoRA targets known for model type {model_type!r}; "
                         f"name its attention projections (its linear layers: {linear_names})")
    if not set(targets) & set(linear_names):
        raise UsageError(f"CausalLMConfig.lora_target_modules = {targets!r}: no such layer in this {model_type} "
                         f"model (its linear layers: {linear_names})")
    return list(targets)


def apply_lora(lm, config: CausalLMConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=lora_target_modules(lm, config))
    return get_peft_model(lm, lora)


def merged_lora_state(peft_model) -> dict[str, torch.Tensor]:
    """The base model's state dict with every LoRA update added to its weight, under the base
    model's own key names; the model itself is left untouched (merging in place and back
    would move the base weights by rounding)."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    state = dict(base.state_dict())
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            key = f"{name}.base_layer.weight"
            delta = sum(module.get_delta_weight(a) for a in module.active_adapters)
            state[key] = (state[key] + delta.to(state[key].dtype)).detach()
    return {k.replace(".base_layer.", "."): v for k, v in state.items() if ".lora_" not in k}


class CausalLMChat(PromptLMChat):
    name = "causal-lm"
    config_class = CausalLMConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {"lm_config": TINY_LLAMA, **TINY_PROMPT}}
    # ChatGLM-6B full fine-tuning, THUDM/ChatGLM-6B@401bf3a ptuning/README.md: max_steps=3000
    # (L98), learning_rate=1e-4 and per_device_train_batch_size=4 on 4 GPUs (L111-118): 16 per
    # step, with the Hugging Face Trainer's defaults (AdamW, no weight decay, clip 1.0, linear
    # decay, no warmup).
    default_recipe: ClassVar[dict[str, Any]] = {
        "lr": 1e-4,
        "weight_decay": 0.0,
        "batch_size": 4,
        "global_batch_size": 16,
        "max_steps": 3000,
    }
    # With lora_r > 0: the community LoRA fine-tune (zero_nlp simple_thu_chatglm6b/train_chatglm6b.py):
    # per_device_train_batch_size 4 x gradient_accumulation_steps 8 on one GPU, lr 5e-4, weight
    # decay 0.1, 1,000 warmup steps, cosine schedule, one epoch (Trainer defaults: clip 1.0).
    lora_recipe: ClassVar[dict[str, Any]] = {
        "lr": 5e-4,
        "weight_decay": 0.1,
        "warmup_steps": 1000,
        "lr_schedule": "cosine",
        "batch_size": 4,
        "global_batch_size": 32,
        "epochs": 1,
    }

    @classmethod
    def recipe(cls, preset: str | None = None, model_options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full fine-tuning recipe, or with ``lora_r > 0`` among ``model_options`` the LoRA
        source's (:attr:`lora_recipe`); a preset's own recipe on top as for every model."""
        if not (model_options or {}).get("lora_r"):
            return super().recipe(preset, model_options)
        return {**cls.lora_recipe, **(cls.preset_recipes.get(preset, {}) if preset else {})}

    def __init__(self, config: CausalLMConfig, tokenizer=None, lm=None):
        super().__init__()
        if lm is None:
            lm, tokenizer = build_lm(config, tokenizer)
        # Record the LM architecture so a save can be rebuilt without lm_path.
        self.config = config.replace(lm_config=lm_config_dict(lm))
        self.tokenizer = tokenizer
        self.prompts = PromptEncoder(tokenizer, self.config)
        self.lm = apply_lora(lm, config) if config.lora_r else lm

    def save_pretrained(self, path, overwrite: bool = True) -> None:
        """Our config + the LM in Hugging Face form (LoRA merged) + tokenizer (module docstring)."""
        with atomic_directory(path, overwrite=overwrite) as tmp:
            write_model_config(tmp, self.name, self.config)
            if self.config.lora_r:
                base = self.lm.get_base_model()
                base.save_pretrained(str(tmp), state_dict=merged_lora_state(self.lm))
                save_weights(self, tmp, LORA_FILE)
            else:
                self.lm.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))

    @classmethod
    def from_saved(cls, saved: SavedModel, **overrides: Any) -> CausalLMChat:
        """A saved causal-lm directory or its run (``overrides`` change prompt/decoding options)."""
        from transformers import AutoModelForCausalLM

        config = CausalLMConfig.from_dict(saved.config).replace(**cls._config_overrides(overrides))
        tokenizer = load_tokenizer(saved.path, config.trust_remote_code)
        if config.lora_r:  # rebuilt from lm_config, then the unmerged weights
            model = cls(config, tokenizer=tokenizer)
            load_weights(model, saved.path, LORA_FILE)
            return model
        lm = AutoModelForCausalLM.from_pretrained(str(saved.path), trust_remote_code=config.trust_remote_code)
        return cls(config, tokenizer=tokenizer, lm=lm)

    @classmethod
    def from_external(cls, path, saved: SavedModel | None, **overrides: Any) -> CausalLMChat:
        """A plain Hugging Face causal-LM directory (``overrides``: any :class:`CausalLMConfig`
        field, e.g. ``lora_r``)."""
        if saved is not None:
            return super().from_external(path, saved, **overrides)
        if not (path / "config.json").exists():
            raise MissingInputError(f"{path}: neither a saved causal-lm model ({MODEL_FILE}) nor a "
                                    "Hugging Face causal-LM directory (config.json)")
        return cls(CausalLMConfig.from_dict({"lm_path": str(path), **cls._config_overrides(overrides)}))

    def collate(self, examples: Sequence[DialogueExample], train: bool = True,
                generator: torch.Generator | None = None) -> dict[str, Any]:
        """Prompt+response with labels (B, T) when responses exist (required for train=True);
        otherwise left-padded prompts for generation. Deterministic: ``generator`` is not drawn from."""
        if train or has_responses(examples):
            return self.prompts.training_batch(examples)
        return self.prompts.prompt_batch(examples)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> CausalLMOutput:
        # input_ids, attention_mask, labels: (B, T); the LM shifts labels internally.
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        return CausalLMOutput(loss=out.loss, logits=out.logits, loss_lm=out.loss)

    @torch.no_grad()
    def generate(self, examples: Sequence[DialogueExample], **kwargs: Any) -> list[str]:
        """One response per example; kwargs: see :meth:`PromptEncoder.generation_kwargs`
        (seed the global torch RNG for reproducible sampling)."""
        batch = self.prompts.prompt_batch(examples)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            out = self.lm.generate(input_ids=batch["input_ids"].to(device),
                                   attention_mask=batch["attention_mask"].to(device),
                                   **self.prompts.generation_kwargs(kwargs))
        finally:
            self.train(was_training)
        new_tokens = out[:, batch["input_ids"].size(1):]
        return [decode(self.tokenizer, row.tolist()) for row in new_tokens]

    def score_batch(self, examples: Sequence[DialogueExample]) -> list[tuple[float, int]]:
        """Per example: summed NLL (nats) of its response tokens and closing EOS, the labels of
        training (masked over the prompt), and their count."""
        device = next(self.parameters()).device
        batch = self.prompts.training_batch(examples)
        logits = self.lm(input_ids=batch["input_ids"].to(device),
                         attention_mask=batch["attention_mask"].to(device)).logits
        return labelled_nll(logits, batch["labels"].to(device))
