"""What the causal-LM and BLIP-2 baselines share: a causal LM from a local path (or a random
one from a config dict), the ChatGLM-style prompt, and prompt/target tokenisation.

Prompt (defaults; every piece is a config option)::

    知识：{knowledge}\\n                         only if use_knowledge and the example has knowledge
    [Round 0]\\n问：{q}\\n答：{r}\\n              one per earlier (question, answer) pair
    [Round n]\\n问：{last context turn}\\n答：    the query; the target follows

The dialogue context is paired from its end: the last context turn is the query, the
turns before it form (question, answer) pairs backwards. If one turn is left over at
the start (an even-length context), it becomes a round with an empty question, reading
the first comment as an answer to the video itself. Rounds count from ``round_offset``
(0, as ChatGLM-6B's fine-tuning script numbers them).

The knowledge line holds at most ``max_knowledge_tokens`` LM tokens of knowledge (the
model's :class:`~tiktalk.types.KnowledgeBudget`, what ``tiktalk annotate --model`` cuts
to); a longer segment loses whole trailing pieces (``kg.fit_knowledge``). A prompt over
``max_prompt_tokens`` loses the end of its dialogue rounds, never knowledge, as the
ChatGLM-6B fine-tuning scripts cut (``a_ids[: max_source_length - 1]``: the start is kept);
``prompt_keeps="end"`` keeps the latest turns instead.

Lengths follow the ChatGLM-6B fine-tuning the paper's row cites (``ptuning/main.py`` and the
community LoRA project): 64 source tokens, 64 target tokens, generation up to 128 tokens.

Labels are -100 over the prompt (and padding): only the response and its closing EOS
are learned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from baselines._common import default_tokenizer, generation_options, pad_left, pad_right
from kg.linearize import fit_knowledge
from tiktalk.errors import MissingInputError, UsageError
from tiktalk.models.base import ChatModel
from tiktalk.models.config import ModelConfig
from tiktalk.models.saving import resolve_run_dir
from tiktalk.models.scoring import IGNORE_INDEX, require_responses
from tiktalk.types import DialogueExample, KnowledgeBudget

if TYPE_CHECKING:
    from tiktalk.models.saving import SavedModel

CHATGLM_ROUND = "[Round {i}]\n问：{q}\n答：{r}\n"
KNOWLEDGE_TEMPLATE = "知识：{knowledge}\n"

# A tiny random Llama for smoke runs and tests (vocab_size comes from the tokenizer).
TINY_LLAMA: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 512,
}
# What the tiny presets change of the prompt defaults: room for a few turns, short replies
# (a random LM rarely ends one, and tests generate often).
TINY_PROMPT: dict[str, Any] = {"max_prompt_tokens": 96, "max_new_tokens": 25}


@dataclass
class PromptLMConfig(ModelConfig):
    """Options of a causal LM that reads a chat prompt (shared by causal-lm and BLIP-2)."""

    lm_path: str | None = None  # local Hugging Face causal-LM directory, or a causal-lm run (weights loaded)
    # HF config dict of a randomly initialised LM, used when lm_path is None (tiny preset);
    # saved models store their LM's config here so loading needs no lm_path.
    lm_config: dict | None = None
    tokenizer_path: str | None = None  # default: lm_path; neither: the generated char vocab
    trust_remote_code: bool = False  # only when asked: remote code executes on load
    round_template: str = CHATGLM_ROUND  # fields {i}, {q}, {r}; the query round stops at {r}
    round_offset: int = 0
    use_knowledge: bool = True  # put DialogueExample.knowledge (when set) into the prompt
    knowledge_template: str = KNOWLEDGE_TEMPLATE  # field {knowledge}
    max_prompt_tokens: int = 64  # ChatGLM-6B's max_source_length (its [gMASK] / our BOS included)
    prompt_keeps: str = "start"  # an over-long prompt keeps its knowledge line and the "start" (source) or "end" of its rounds
    max_knowledge_tokens: int = 32  # knowledge budget in LM tokens, at most max_prompt_tokens // 2
    max_response_tokens: int = 63  # training target before EOS: ChatGLM-6B's max_target_length 64 with its end token
    max_new_tokens: int = 128  # ChatGLM-6B's generation max_length
    do_sample: bool = True  # ChatGLM-6B chat() defaults: sampling, top_p 0.7, temperature 0.95
    top_p: float = 0.7
    top_k: int = 0
    temperature: float = 0.95

    def validate(self) -> None:
        super().validate()
        self._positive("max_prompt_tokens", "max_response_tokens", "max_new_tokens", "max_knowledge_tokens")
        self._choice("prompt_keeps", ("start", "end"))
        if self.max_knowledge_tokens > self.max_prompt_tokens // 2:
            self._fail("max_knowledge_tokens", self.max_knowledge_tokens,
                       f"must be at most half of max_prompt_tokens ({self.max_prompt_tokens}), "
                       "so the dialogue keeps the other half")
        if self.lm_path is None and self.lm_config is None:
            self._fail("lm_path", None, "give lm_path (a local model directory) or lm_config")
        if self.lm_config is not None and "model_type" not in self.lm_config:
            self._fail("lm_config", self.lm_config, "needs a 'model_type' key")
        try:
            probe = self.round_template.format(i=0, q="\0q", r="\0r")
        except (KeyError, IndexError, ValueError) as err:
            self._fail("round_template", self.round_template,
                       f"may only use the fields {{i}}, {{q}}, {{r}} ({err!r})")
        if "\0q" not in probe or "\0r" not in probe or probe.index("\0q") > probe.index("\0r"):
            self._fail("round_template", self.round_template, "needs {q} before {r}")
        try:
            probe = self.knowledge_template.format(knowledge="\0k")
        except (KeyError, IndexError, ValueError) as err:
            self._fail("knowledge_template", self.knowledge_template,
                       f"may only use the field {{knowledge}} ({err!r})")
        if "\0k" not in probe:
            self._fail("knowledge_template", self.knowledge_template, "needs {knowledge}")
        if not isinstance(self.round_offset, int) or self.round_offset < 0:
            self._fail("round_offset", self.round_offset, "must be an integer >= 0")
        if not 0.0 < self.top_p <= 1.0:
            self._fail("top_p", self.top_p, "must lie in (0, 1]")
        if self.temperature <= 0:
            self._fail("temperature", self.temperature, "must be > 0")


def dialogue_rounds(context: Sequence[str]) -> tuple[list[tuple[str, str]], str]:
    """Context turns -> (earlier (question, answer) rounds, final query); see module doc."""
    if not context:
        return [], ""
    earlier, query = list(context[:-1]), context[-1]
    rounds: list[tuple[str, str]] = []
    if len(earlier) % 2:
        rounds.append(("", earlier.pop(0)))
    rounds += [(earlier[k], earlier[k + 1]) for k in range(0, len(earlier), 2)]
    return rounds, query


def knowledge_prompt(knowledge: str | None, config: PromptLMConfig) -> str:
    """The knowledge line (empty without knowledge or with ``use_knowledge`` off)."""
    return config.knowledge_template.format(knowledge=knowledge) if config.use_knowledge and knowledge else ""


def dialogue_prompt(example: DialogueExample, config: PromptLMConfig) -> str:
    """The rounds and the open query round."""
    rounds, query = dialogue_rounds(example.context)
    parts = [config.round_template.format(i=config.round_offset + k, q=q, r=r) for k, (q, r) in enumerate(rounds)]
    query_template = config.round_template.split("{r}")[0]
    parts.append(query_template.format(i=config.round_offset + len(rounds), q=query))
    return "".join(parts)


def build_prompt(example: DialogueExample, config: PromptLMConfig) -> str:
    """The whole prompt text, before any budget (see module doc)."""
    return knowledge_prompt(example.knowledge, config) + dialogue_prompt(example, config)


def build_lm(config: PromptLMConfig, tokenizer=None):
    """(causal LM, tokenizer) from ``lm_path`` (weights) or ``lm_config`` (random init).

    When ``lm_config`` is given it wins over ``lm_path``: a saved model rebuilds its
    architecture from the stored config and then loads its own safetensors.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    remote = config.trust_remote_code
    lm_dir = resolve_run_dir(config.lm_path) if config.lm_path else None
    if tokenizer is None:
        tokenizer = lm_tokenizer(config)
    if config.lm_config is not None:
        fields = dict(config.lm_config)
        fields.setdefault("vocab_size", len(tokenizer))
        model_type = fields.pop("model_type")
        hf_config = AutoConfig.for_model(model_type, **fields)
        lm = AutoModelForCausalLM.from_config(hf_config, trust_remote_code=remote)
    else:
        if not (lm_dir / "config.json").exists():
            raise MissingInputError(f"lm_path {config.lm_path}: not a Hugging Face causal-LM directory "
                                    "(no config.json), nor a causal-lm run")
        from tiktalk.io import read_json
        from tiktalk.models.saving import AUTO_PREFIX

        lm_type = read_json(lm_dir / "config.json").get("model_type", "")
        if str(lm_type).startswith(AUTO_PREFIX):  # another of our saved models (config.json of ours)
            raise UsageError(f"lm_path {config.lm_path}: holds a saved {lm_type[len(AUTO_PREFIX):]} "
                             "model, not a causal LM (a causal-lm run or a Hugging Face causal-LM directory)")
        lm = AutoModelForCausalLM.from_pretrained(str(lm_dir), trust_remote_code=remote)
    if lm.get_input_embeddings().num_embeddings < len(tokenizer):
        raise UsageError(f"LM vocabulary ({lm.get_input_embeddings().num_embeddings}) is smaller "
                         f"than the tokenizer ({len(tokenizer)} tokens)")
    return lm, tokenizer


def lm_tokenizer(config: PromptLMConfig):
    """The tokenizer :func:`build_lm` reads with: ``tokenizer_path``'s, else ``lm_path``'s (when
    no ``lm_config`` says to build a random LM), else the generated char vocabulary."""
    lm_dir = resolve_run_dir(config.lm_path) if config.lm_path else None
    source = config.tokenizer_path or (lm_dir if config.lm_config is None else None)
    return default_tokenizer(source, config.trust_remote_code)


def lm_config_dict(lm) -> dict[str, Any]:
    """The LM's HF config as a JSON-able dict that :func:`build_lm` accepts."""
    data = lm.config.to_dict()
    for key in ("transformers_version", "architectures", "_name_or_path", "auto_map"):
        data.pop(key, None)
    return data


class PromptEncoder:
    """Prompt/target token ids for one tokenizer and config (special ids resolved once)."""

    def __init__(self, tokenizer, config: PromptLMConfig):
        self.tokenizer, self.config = tokenizer, config
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        if eos is None:
            raise UsageError("the LM tokenizer has neither an EOS nor a SEP token to end responses")
        self.eos_id = eos
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        self.bos_id = tokenizer.bos_token_id  # None for BERT-style char tokenizers
        self._budget: KnowledgeBudget | None = None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def knowledge_budget(self) -> KnowledgeBudget:
        """``max_knowledge_tokens`` tokens of this tokenizer."""
        if self._budget is None:
            vocab = sorted(self.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
            digest = hashlib.sha256("\n".join(t for t, _ in vocab).encode()).hexdigest()[:16]
            name = f"{type(self.tokenizer).__name__}:{len(vocab)}:{digest}"
            self._budget = KnowledgeBudget(self.config.max_knowledge_tokens, self.count_tokens, name)
        return self._budget

    def prompt_ids(self, ex: DialogueExample) -> list[int]:
        """[BOS] + knowledge line (whole pieces within the budget) + the rounds, cut to
        ``max_prompt_tokens`` at their end (``prompt_keeps="start"``) or start (``"end"``)."""
        knowledge = ex.knowledge and fit_knowledge(ex.knowledge, self.knowledge_budget())
        head = self.tokenizer.encode(knowledge_prompt(knowledge, self.config), add_special_tokens=False)
        ids = self.tokenizer.encode(dialogue_prompt(ex, self.config), add_special_tokens=False)
        budget = max(0, self.config.max_prompt_tokens - (self.bos_id is not None) - len(head))
        if len(ids) > budget:
            ids = ids[:budget] if self.config.prompt_keeps == "start" else ids[len(ids) - budget:]
        return ([self.bos_id] if self.bos_id is not None else []) + head + ids

    def target_ids(self, ex: DialogueExample) -> list[int]:
        ids = self.tokenizer.encode(ex.response, add_special_tokens=False)
        return ids[: self.config.max_response_tokens] + [self.eos_id]

    def training_batch(self, examples: Sequence[DialogueExample]) -> dict[str, torch.Tensor]:
        """Right-padded prompt+target: input_ids, attention_mask, labels (B, T)."""
        require_responses(examples)
        seqs, labels = [], []
        for ex in examples:
            prompt, target = self.prompt_ids(ex), self.target_ids(ex)
            seqs.append(prompt + target)
            labels.append([IGNORE_INDEX] * len(prompt) + target)
        return {"input_ids": pad_right(seqs, self.pad_id),
                "attention_mask": pad_right([[1] * len(s) for s in seqs], 0),
                "labels": pad_right(labels, IGNORE_INDEX)}

    def prompt_batch(self, examples: Sequence[DialogueExample]) -> dict[str, torch.Tensor]:
        """Left-padded prompts (so every row ends where generation starts): (B, T)."""
        seqs = [self.prompt_ids(ex) for ex in examples]
        return {"input_ids": pad_left(seqs, self.pad_id),
                "attention_mask": pad_left([[1] * len(s) for s in seqs], 0)}

    def generation_kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``lm.generate``: the config's decoding options, overridden by
        ``max_new_tokens`` (alias ``max_length``), ``do_sample``, ``top_p``, ``top_k``,
        ``temperature``, ``num_beams``, ``repetition_penalty``, ``length_penalty``,
        ``no_repeat_ngram_size``, ``min_length`` (minimum new tokens); others are ignored."""
        c = self.config
        overrides = generation_options(overrides)
        if "min_length" in overrides:
            overrides["min_new_tokens"] = overrides.pop("min_length")
        opts: dict[str, Any] = {"max_new_tokens": c.max_new_tokens, "do_sample": c.do_sample,
                                "top_p": c.top_p, "top_k": c.top_k, "temperature": c.temperature}
        passthrough = ("num_beams", "repetition_penalty", "length_penalty",
                       "no_repeat_ngram_size", "min_new_tokens")
        opts.update({k: v for k, v in overrides.items() if k in opts or k in passthrough})
        if not opts["do_sample"]:  # sampling knobs would only raise warnings
            for key in ("top_p", "top_k", "temperature"):
                opts.pop(key)
        return {**opts, "eos_token_id": self.eos_id, "pad_token_id": self.pad_id}


class PromptLMChat(ChatModel):
    """What the causal-LM and BLIP-2 baselines share as models: knowledge is optional (the
    ``use_knowledge`` switch) and read within the prompt's knowledge budget."""

    optional_modalities: ClassVar[tuple[str, ...]] = ("knowledge",)
    config: PromptLMConfig
    prompts: PromptEncoder

    @classmethod
    def modality_fields(cls, modalities: tuple[str, ...]) -> dict[str, Any]:
        super().modality_fields(modalities)
        return {"use_knowledge": "knowledge" in modalities}

    def modalities(self) -> tuple[str, ...]:
        return self.required_modalities + (("knowledge",) if self.config.use_knowledge else ())

    @classmethod
    def preset_config(cls, fields: dict[str, Any], overrides: dict[str, Any]) -> PromptLMConfig:
        """The config of a preset's ``fields`` with ``overrides`` on top."""
        return cls.config_class.from_dict({**fields, **overrides})

    @classmethod
    def build_preset(cls, fields: dict[str, Any], overrides: dict[str, Any]) -> PromptLMChat:
        return cls(cls.preset_config(fields, overrides))

    @classmethod
    def config_knowledge_budget(cls, fields: dict[str, Any], saved: SavedModel | None,
                                preset: str) -> KnowledgeBudget | None:
        """``max_knowledge_tokens`` tokens of the tokenizer the model would read with: the saved
        one, else :func:`lm_tokenizer`'s choice (None with ``use_knowledge`` off)."""
        if saved is None:
            config = cls.preset_config(dict(cls.presets[preset]), fields)
            tokenizer = None
        else:
            config = cls.config_class.from_dict(saved.config).replace(**fields)
            tokenizer = cls.saved_tokenizer(saved.path, config)
        if not config.use_knowledge:
            return None
        return PromptEncoder(tokenizer or lm_tokenizer(config), config).knowledge_budget()

    def knowledge_budget(self) -> KnowledgeBudget | None:
        """``max_knowledge_tokens`` LM tokens (None with ``use_knowledge`` off)."""
        return self.prompts.knowledge_budget() if self.config.use_knowledge else None
